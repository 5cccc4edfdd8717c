//! Running xbond as a service: who may use the control socket, and the
//! Prometheus metrics, scraped by a real Prometheus server. Needs root (runs
//! in CI as root).

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use xbond_testbed::*;

const NOBODY: u32 = 65534;

/// A config for bond0 on m0, m1 with `daemon` lines added to `[daemon]`.
fn config(options: &str, daemon: &str) -> String {
    bond_config(M0_M1, options, "").replacen("[bond.bond0]", &format!("{daemon}\n[bond.bond0]"), 1)
}

fn cli_as(
    bin: &AnyoneBin,
    d: &Daemon,
    uid: u32,
    gid: u32,
    caps: &[&str],
    args: &[&str],
) -> std::process::Output {
    let run_dir = d.run_dir.display().to_string();
    let mut all = vec![bin.path.to_str().unwrap(), "--run-dir", &run_dir];
    all.extend_from_slice(args);
    as_user(uid, gid, caps, &all).output().unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn any_user_reads_the_bond_and_only_root_or_cap_net_admin_changes_it() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("acc", 2)?;
    let d = Daemon::start(&t, &config("mode=active-backup miimon=100", ""))?;
    let bin = AnyoneBin::new()?;

    let st = cli_as(&bin, &d, NOBODY, NOBODY, &[], &["status"]);
    assert!(st.status.success(), "{}", text(&st));
    assert!(text(&st).contains("Bonding Mode: fault-tolerance (active-backup)"));
    for args in [
        &["stats"][..],
        &["vlan", "list"],
        &["hash", "--src", "198.18.0.1", "--dst", "198.18.0.2"],
    ] {
        let o = cli_as(&bin, &d, NOBODY, NOBODY, &[], args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }

    let set = cli_as(
        &bin,
        &d,
        NOBODY,
        NOBODY,
        &[],
        &["set", "bond0", "miimon", "50"],
    );
    assert!(!set.status.success());
    let why = text(&set);
    assert!(
        why.contains("needs root or CAP_NET_ADMIN") && why.contains("uid 65534"),
        "{why}"
    );
    let vlan = cli_as(
        &bin,
        &d,
        NOBODY,
        NOBODY,
        &[],
        &["vlan", "add", "bond0", "7"],
    );
    assert!(!vlan.status.success() && text(&vlan).contains("CAP_NET_ADMIN"));
    assert_eq!(d.status()?["miimon"], 100, "the refused change did nothing");

    // CAP_NET_ADMIN without root may change the bond.
    let set = cli_as(
        &bin,
        &d,
        NOBODY,
        NOBODY,
        &["net_admin"],
        &["set", "bond0", "miimon", "50"],
    );
    assert!(set.status.success(), "{}", text(&set));
    assert_eq!(d.status()?["miimon"], 50);
    d.cli(&["set", "bond0", "miimon", "100"])?;
    assert_eq!(d.status()?["miimon"], 100);
    Ok(())
}

#[test]
fn a_socket_group_keeps_other_users_out() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("grp", 2)?;
    let d = Daemon::start(
        &t,
        &config(
            "mode=active-backup miimon=100",
            "socket_group = \"nogroup\"",
        ),
    )?;
    let bin = AnyoneBin::new()?;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(d.run_dir.join("bond0.sock"))?;
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), NOBODY, "owned by nogroup");

    let outsider = cli_as(&bin, &d, 4242, 4242, &[], &["status"]);
    assert!(!outsider.status.success());
    assert!(
        text(&outsider).contains("Permission denied"),
        "{}",
        text(&outsider)
    );
    let member = cli_as(&bin, &d, 4242, NOBODY, &[], &["status"]);
    assert!(member.status.success(), "{}", text(&member));
    Ok(())
}

/// GET `path` from `addr` inside namespace `ns`; the status line and body.
fn http_get(ns: &str, addr: &str, path: &str, accept: &str) -> anyhow::Result<(String, String)> {
    let addr = addr.to_string();
    let req = format!("GET {path} HTTP/1.0\r\nHost: x\r\nAccept: {accept}\r\n\r\n");
    in_ns(ns, move || -> anyhow::Result<(String, String)> {
        let mut s = std::net::TcpStream::connect(&addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(req.as_bytes())?;
        let mut all = String::new();
        s.read_to_string(&mut all)?;
        let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
        Ok((head.to_string(), body.to_string()))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("http thread"))??
}

/// A Prometheus server in a namespace, stopped on drop.
struct Prometheus {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value of a Prometheus instant query with one series in its answer.
fn query(ns: &str, q: &str) -> anyhow::Result<Option<f64>> {
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (_, body) = http_get(
        ns,
        "127.0.0.1:19090",
        &format!("/api/v1/query?query={enc}"),
        "*/*",
    )?;
    let v: serde_json::Value = serde_json::from_str(&body)?;
    let r = &v["data"]["result"];
    Ok(r.as_array()
        .filter(|a| a.len() == 1)
        .and_then(|a| a[0]["value"][1].as_str())
        .and_then(|s| s.parse().ok()))
}

fn wait_query(ns: &str, q: &str, want: f64) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut last = None;
    while t0.elapsed() < Duration::from_secs(30) {
        last = query(ns, q).unwrap_or(None);
        if last == Some(want) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    anyhow::bail!("{q}: wanted {want}, Prometheus says {last:?}")
}

#[test]
fn prometheus_scrapes_the_bond_and_its_queries_follow_a_failover() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("prm", 2)?;
    let d = Daemon::start(
        &t,
        &config(
            "mode=active-backup miimon=50",
            "metrics = \"127.0.0.1:9469\"",
        ),
    )?;
    ping(&t.host, PEER_IP, 2)?;

    // The text format, as promtool reads it.
    let (head, body) = http_get(&t.host, "127.0.0.1:9469", "/metrics", "text/plain")?;
    assert!(
        head.contains("200") && head.contains("text/plain; version=0.0.4"),
        "{head}"
    );
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    promtool.stdin.take().unwrap().write_all(body.as_bytes())?;
    let lint = promtool.wait_with_output()?;
    assert!(
        lint.status.success(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    assert!(
        body.contains("node_bonding_slaves{master=\"bond0\"} 2"),
        "{body}"
    );
    assert!(body.contains(
        "xbond_port_receive_packets_total{bond=\"bond0\",port=\"m0\",role=\"member\",queue=\"0\"}"
    ));
    let (head, om) = http_get(
        &t.host,
        "127.0.0.1:9469",
        "/metrics",
        "application/openmetrics-text; version=1.0.0",
    )?;
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(om.ends_with("# EOF\n"));

    // A real Prometheus server scrapes it every second.
    let dir = std::env::temp_dir().join(format!("{}-prom", t.prefix));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: xbond\n    static_configs:\n      - targets: ['127.0.0.1:9469']\n",
    )?;
    let log = std::fs::File::create(dir.join("prometheus.log"))?;
    let child = ns(
        &t.host,
        &[
            "prometheus",
            &format!("--config.file={}", dir.join("prometheus.yml").display()),
            &format!("--storage.tsdb.path={}", dir.join("data").display()),
            "--web.listen-address=127.0.0.1:19090",
        ],
    )
    .stdout(Stdio::null())
    .stderr(log)
    .spawn()?;
    let _prom = Prometheus {
        child,
        dir: dir.clone(),
    };
    wait_query(&t.host, "node_bonding_slaves{master=\"bond0\"}", 2.0)?;
    wait_query(&t.host, "node_bonding_active{master=\"bond0\"}", 2.0)?;
    wait_query(&t.host, "xbond_active_member_info{member=\"m0\"}", 1.0)?;
    wait_query(&t.host, "xbond_active_member_changes_total", 0.0)?;
    wait_query(&t.host, "up{job=\"xbond\"}", 1.0)?;

    t.switch_port(0, false)?;
    d.wait_active("m1", Duration::from_secs(5))?;
    wait_query(&t.host, "xbond_member_up{member=\"m0\"}", 0.0)?;
    wait_query(&t.host, "node_bonding_active{master=\"bond0\"}", 1.0)?;
    wait_query(&t.host, "xbond_active_member_changes_total", 1.0)?;
    wait_query(
        &t.host,
        "xbond_member_link_failures_total{member=\"m0\"}",
        1.0,
    )?;
    wait_query(&t.host, "xbond_active_member_info{member=\"m1\"}", 1.0)?;
    Ok(())
}

#[test]
fn under_systemd_it_says_ready_feeds_the_watchdog_and_logs_without_timestamps() -> anyhow::Result<()>
{
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("sdn", 2)?;
    // systemd's side of sd_notify: a datagram socket named by NOTIFY_SOCKET.
    let dir = TempDir::new(&format!("{}-notify", t.prefix))?;
    let sock_path = dir.path.join("notify");
    let _ = std::fs::remove_file(&sock_path);
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path)?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let path = sock_path.display().to_string();
    let mut d = Daemon::start_with_env(
        &t,
        &t.host,
        "run",
        &config("mode=active-backup miimon=100", ""),
        &[
            ("NOTIFY_SOCKET", &path),
            ("WATCHDOG_USEC", "400000"),
            ("WATCHDOG_PID", "PID"),
            ("JOURNAL_STREAM", "8:12345"),
        ],
    )?;
    let mut got: Vec<(Instant, String)> = Vec::new();
    let mut buf = [0u8; 4096];
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
    }
    let ready = got
        .iter()
        .position(|(_, m)| m.lines().any(|l| l == "READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 in {got:?}"));
    assert!(got[ready].1.contains("STATUS=running bond0"), "{got:?}");
    // What READY=1 promises: the members are attached, bond0 is up.
    assert!(oper_up(&t.host, "bond0")?, "bond0 is up");
    let st = d.status()?;
    assert_eq!(st["members"].as_array().map(Vec::len), Some(2), "{st}");
    let feeds: Vec<Instant> = got
        .iter()
        .filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1"))
        .map(|(at, _)| *at)
        .collect();
    // Every 200 ms (half of WATCHDOG_USEC) over about 3 s.
    assert!(
        feeds.len() >= 8,
        "watchdog fed {} times: {got:?}",
        feeds.len()
    );
    assert!(
        feeds
            .windows(2)
            .all(|w| w[1] - w[0] < Duration::from_millis(400)),
        "a gap longer than the watchdog period"
    );

    d.stop()?;
    let mut stopping = false;
    while let Ok(n) = sock.recv(&mut buf) {
        stopping |= String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "STOPPING=1");
    }
    assert!(stopping, "STOPPING=1 on SIGTERM");
    let log = d.log_text();
    assert!(log.lines().count() > 3);
    for l in log.lines() {
        assert!(
            l.trim_start().starts_with("INFO") || l.trim_start().starts_with("WARN"),
            "a line without a timestamp of its own: {l}"
        );
    }
    Ok(())
}

/// The Prometheus text of the daemon's metrics at 127.0.0.1:9469.
fn scrape(ns: &str) -> anyhow::Result<String> {
    Ok(http_get(ns, "127.0.0.1:9469", "/metrics", "text/plain")?.1)
}

/// The value of `series` (name and labels as printed) in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn lacp_metrics_against_ovs_say_aggregating_until_a_member_fails() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::with_switch("mla", 2, "none")?;
    let o = Ovs::start(
        &t,
        &[
            "lacp=active",
            "bond_mode=balance-tcp",
            "other_config:lacp-time=fast",
        ],
    )?;
    let d = Daemon::start(
        &t,
        &config(
            "mode=802.3ad miimon=100 lacp_rate=fast xmit_hash_policy=layer3+4",
            "metrics = \"127.0.0.1:9469\"",
        ),
    )?;
    d.wait_distributing(&["m0", "m1"], Duration::from_secs(15))?;
    o.wait_negotiated(Duration::from_secs(15))?;
    let text = scrape(&t.host)?;
    let v = |s: &str| sample(&text, s);
    assert_eq!(
        v(r#"xbond_lacp_aggregating_as_configured{bond="bond0"}"#),
        Some(1.0),
        "{text}"
    );
    for m in ["m0", "m1"] {
        assert_eq!(
            v(&format!(
                r#"xbond_lacp_distributing{{bond="bond0",member="{m}"}}"#
            )),
            Some(1.0)
        );
        for bit in ["synchronization", "collecting", "distributing"] {
            for side in ["actor", "partner"] {
                assert_eq!(
                    v(&format!(
                        r#"xbond_lacp_port_state{{bond="bond0",member="{m}",side="{side}",bit="{bit}"}}"#
                    )),
                    Some(1.0),
                    "{m} {side} {bit}"
                );
            }
        }
        assert!(
            v(&format!(
                r#"xbond_lacp_pdus_received_total{{bond="bond0",member="{m}"}}"#
            ))
            .unwrap_or(0.0)
                > 0.0
        );
    }
    // One partner (OVS's system id) on both members.
    let partners: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("xbond_lacp_partner_info{"))
        .filter_map(|l| l.split("partner_system=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(partners.len(), 2, "{text}");
    assert_eq!(partners[0], partners[1]);
    assert!(!partners[0].ends_with("00:00:00:00:00:00"));

    t.switch_port(1, false)?;
    d.wait_distributing(&["m0"], Duration::from_secs(5))?;
    let text = scrape(&t.host)?;
    let v = |s: &str| sample(&text, s);
    assert_eq!(
        v(r#"xbond_lacp_aggregating_as_configured{bond="bond0"}"#),
        Some(0.0)
    );
    assert_eq!(
        v(r#"xbond_lacp_distributing{bond="bond0",member="m1"}"#),
        Some(0.0)
    );
    assert_eq!(v(r#"node_bonding_active{master="bond0"}"#), Some(1.0));
    Ok(())
}

#[test]
fn alb_metrics_count_the_client_and_transmit_tables() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let t = Topo::new("mal", 2)?;
    let _d = Daemon::start(
        &t,
        &config(
            "mode=balance-alb miimon=100",
            "metrics = \"127.0.0.1:9469\"",
        ),
    )?;
    ping(&t.host, PEER_IP, 3)?;
    ping(&t.peer, BOND_IP, 3)?;
    let t0 = Instant::now();
    loop {
        let text = scrape(&t.host)?;
        let clients = sample(&text, r#"xbond_alb_clients{bond="bond0"}"#);
        let tx = sample(&text, r#"xbond_tlb_transmit_entries{bond="bond0"}"#);
        if clients >= Some(1.0) && tx >= Some(1.0) {
            assert!(text.contains("xbond_alb_arp_replies_rewritten_total{bond=\"bond0\"}"));
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "clients {clients:?}, transmit entries {tx:?}:\n{text}"
        );
        ping(&t.host, PEER_IP, 1)?;
    }
    Ok(())
}

/// Every syscall name in `group` and the groups it names, as systemd
/// expands a `SystemCallFilter=` entry.
fn expand_syscalls(
    entry: &str,
    into: &mut std::collections::BTreeSet<String>,
    seen: &mut Vec<String>,
) {
    if !entry.starts_with('@') {
        into.insert(entry.to_string());
        return;
    }
    if seen.iter().any(|s| s == entry) {
        return;
    }
    seen.push(entry.to_string());
    let out = std::process::Command::new("systemd-analyze")
        .args(["syscall-filter", entry])
        .output()
        .unwrap();
    for l in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
        let l = l.trim();
        if !l.is_empty() && !l.starts_with('#') {
            expand_syscalls(l, into, seen);
        }
    }
}

/// The unit's sandbox holds for what the daemon really does: its start,
/// calls on the control socket, a scrape, a VLAN added and removed, a
/// failover and its stop run under strace, and every syscall made is in
/// `SystemCallFilter=`, every socket family in `RestrictAddressFamilies=`,
/// and no mapping is writable and executable (`MemoryDenyWriteExecute=`).
#[test]
fn the_daemon_stays_inside_the_units_sandbox() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../packaging/systemd/xbond@.service"),
    )?;
    let value = |key: &str| -> Vec<String> {
        unit.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("the unit has no {key}"))
            .split_whitespace()
            .map(ToString::to_string)
            .collect()
    };
    let mut allowed = std::collections::BTreeSet::new();
    for e in value("SystemCallFilter=") {
        expand_syscalls(&e, &mut allowed, &mut Vec::new());
    }
    assert!(
        allowed.len() > 100 && allowed.contains("bpf"),
        "{allowed:?}"
    );
    let families = value("RestrictAddressFamilies=");

    let t = Topo::new("sbx", 2)?;
    let dir = TempDir::new(&format!("{}-trace", t.prefix))?;
    let trace = dir.path.join("strace.out");
    let trace_arg = trace.display().to_string();
    let mut d = Daemon::start_wrapped(
        &t,
        &config(
            "mode=active-backup miimon=100",
            "metrics = \"127.0.0.1:9469\"",
        ),
        &["strace", "-f", "-qq", "-o", &trace_arg],
    )?;
    ping(&t.host, PEER_IP, 2)?;
    d.cli(&["stats"])?;
    d.cli(&["set", "bond0", "miimon", "50"])?;
    d.cli(&["vlan", "add", "bond0", "7"])?;
    d.cli(&["vlan", "del", "bond0", "7"])?;
    scrape(&t.host)?;
    t.switch_port(0, false)?;
    d.wait_active("m1", Duration::from_secs(5))?;
    let st = d.stop()?;
    assert!(st.success(), "{st}\n{}", d.log_text());

    let text = std::fs::read_to_string(&trace)?;
    let mut used = std::collections::BTreeSet::new();
    let mut outside = Vec::new();
    for l in text.lines() {
        // "PID name(args..." or "PID <... name resumed>..."
        let rest = l.split_once(' ').map_or("", |(_, r)| r.trim_start());
        let name = rest
            .strip_prefix("<... ")
            .unwrap_or(rest)
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("");
        if name.is_empty() || rest.starts_with("+++") || rest.starts_with("---") {
            continue;
        }
        used.insert(name.to_string());
        if !allowed.contains(name) {
            outside.push(l.to_string());
        }
        if let Some(args) = rest.strip_prefix("socket(") {
            let fam = args.split(',').next().unwrap_or("");
            assert!(
                families.iter().any(|f| f == fam),
                "socket family {fam} not allowed: {l}"
            );
        }
        let wx = l.contains("PROT_WRITE") && l.contains("PROT_EXEC");
        let x_later = rest.starts_with("mprotect(") && l.contains("PROT_EXEC");
        assert!(!wx && !x_later, "MemoryDenyWriteExecute would refuse: {l}");
    }
    assert!(
        used.contains("bpf") && used.contains("sendmmsg"),
        "{used:?}"
    );
    assert!(
        outside.is_empty(),
        "outside SystemCallFilter: {:?}",
        &outside[..outside.len().min(10)]
    );
    eprintln!("{} distinct syscalls, all allowed: {used:?}", used.len());
    Ok(())
}
