//! The systemd units and the example config that the package installs.

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// `systemd-analyze verify` on both units, with ExecStart pointing at the
/// binary under test (verify wants it to exist) and man pages not looked up
/// (CI checks them on the installed package). Any warning fails the test:
/// verify exits 0 on unknown keys and bad values.
#[test]
fn systemd_analyze_verify_passes_on_the_units_without_a_warning() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "systemd-analyze must be installed in CI (apt-get install systemd)"
        );
        eprintln!("!!! SKIPPED: systemd-analyze not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("xbond-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for (unit, as_name) in [
        ("xbond@.service", "xbond@bond0.service"),
        ("xbond.service", "xbond.service"),
    ] {
        let text = std::fs::read_to_string(repo().join("packaging/systemd").join(unit)).unwrap();
        assert!(text.contains("ExecStart=/usr/bin/xbond run "), "{unit}");
        let to = dir.join(as_name);
        std::fs::write(
            &to,
            text.replace("/usr/bin/xbond", env!("CARGO_BIN_EXE_xbond")),
        )
        .unwrap();
        files.push(to);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&files)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn the_units_are_the_service_the_issue_asks_for() {
    for unit in ["xbond@.service", "xbond.service"] {
        let text = std::fs::read_to_string(repo().join("packaging/systemd").join(unit)).unwrap();
        for line in [
            "Type=notify",
            "WatchdogSec=",
            "Restart=on-failure",
            "RuntimeDirectory=xbond",
            "LimitMEMLOCK=infinity",
            "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_BPF\n",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_XDP AF_PACKET AF_INET AF_INET6",
            "Before=network-pre.target systemd-networkd.service NetworkManager.service",
        ] {
            assert!(text.contains(line), "{unit} lacks {line}");
        }
    }
}

#[test]
fn the_example_config_parses() {
    let c = xbond_control::config::Config::load(&repo().join("packaging/bond0.toml.example"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.bonds[0].name, "bond0");
}

/// The example alerts load, and `promtool test rules` shows each firing
/// when it should and not before.
#[test]
fn the_alerting_rules_pass_promtool_and_their_unit_tests() {
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "promtool must be installed in CI (apt-get install prometheus)"
        );
        eprintln!("!!! SKIPPED: promtool not installed");
        return;
    }
    let dir = repo().join("packaging/prometheus");
    for args in [
        &["check", "rules", "xbond-alerts.yml"][..],
        &["test", "rules", "xbond-alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
