//! Any text given to the importers: a Talos machine config or ifcfg files
//! never panic them; what they print is either refused with a warning or
//! parses as xbond TOML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xbond_control::import::{ifcfg, talos};

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
});

fn check(out: &xbond_control::import::Imported) {
    let refused = out.warnings.iter().any(|w| w.starts_with("xbond would refuse") || w.starts_with("no bond found"));
    if !refused {
        xbond_control::config::Config::parse(&out.toml, "fuzz").expect("the importer checked its output");
    }
}
