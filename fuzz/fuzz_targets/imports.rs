//! Any text given to the importers: Talos, netplan and nmstate YAML, ifcfg
//! files, networkd units, NetworkManager keyfiles and iproute2 scripts never
//! panic them; what they print is either refused with a warning or parses
//! as xbond TOML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xbond_control::import::{ifcfg, iproute2, netplan, networkd, nm, nmstate, talos};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(out) = talos::import_str("fuzz.yaml", &text) {
        check(&out);
    }
    let (a, b) = data.split_at(data.len() / 2);
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    let out = ifcfg::import_files(
        "fuzz",
        vec![
            ("ifcfg-bond0".to_string(), a.to_string()),
            ("ifcfg-eth0".to_string(), b.to_string()),
        ],
    );
    check(&out);
    check(&netplan::import_files("fuzz", vec![("a.yaml".into(), text.to_string())]));
    if let Ok(out) = nmstate::import_str("fuzz.yml", &text) {
        check(&out);
    }
    check(&iproute2::import_str("fuzz.sh", &text));
    // The halves as a bond's unit and a member's, and as keyfiles.
    check(&networkd::import_files(
        "fuzz",
        vec![("b.netdev".into(), a.to_string()), ("m.network".into(), b.to_string())],
    ));
    check(&nm::import_files(
        "fuzz",
        vec![("b.nmconnection".into(), a.to_string()), ("p.nmconnection".into(), b.to_string())],
    ));
});

fn check(out: &xbond_control::import::Imported) {
    let refused = out.warnings.iter().any(|w| w.starts_with("xbond would refuse") || w.starts_with("no bond found"));
    if !refused {
        xbond_control::config::Config::parse(&out.toml, "fuzz").expect("the importer checked its output");
    }
}
