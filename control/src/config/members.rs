//! Members given by interface name or by device selector (`{ driver, mac }`,
//! the way Talos' `deviceSelector` picks NICs), and their resolution against
//! the links that exist.

use std::fmt;
use xbond_dataplane::wire::MacAddr;

/// One entry of a bond's `members` list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum MemberSpec {
    Name(String),
    Select(Selector),
}

/// Links whose driver and/or MAC address match. Both given: both must match.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Selector {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// A glob over the address in `aa:bb:cc:dd:ee:ff` form: `*` any run of
    /// characters, `?` one; case does not matter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// What resolution needs to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub driver: Option<String>,
    /// The permanent address if the device has one, else the current one.
    pub mac: Option<MacAddr>,
    /// The device it is enslaved to (a bridge, a kernel bond), if any.
    pub master: Option<String>,
}

/// Why a link may not become a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub name: String,
    /// "the host interface of bond bond0", "a member of bond b1".
    pub why: String,
}

/// The members a bond starts with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolved {
    /// Links to enslave, in config order.
    pub present: Vec<String>,
    /// Names given in the config that do not exist (yet).
    pub missing: Vec<String>,
}

impl MemberSpec {
    pub fn from_toml(v: &toml::Value) -> Result<MemberSpec, String> {
        match v {
            toml::Value::String(s) => {
                if !is_ifname(s) {
                    return Err(format!("'{s}' is not an interface name"));
                }
                Ok(MemberSpec::Name(s.clone()))
            }
            toml::Value::Table(t) => {
                let mut sel = Selector {
                    driver: None,
                    mac: None,
                };
                for (k, v) in t {
                    let s = v
                        .as_str()
                        .ok_or_else(|| format!("selector key {k}: expected a string, got {v}"))?;
                    match k.as_str() {
                        "driver" if !s.is_empty() => sel.driver = Some(s.to_string()),
                        "mac" | "hardwareAddr" => {
                            check_mac_glob(s)?;
                            sel.mac = Some(s.to_ascii_lowercase());
                        }
                        "driver" => return Err("selector driver is empty".into()),
                        other => {
                            return Err(format!(
                                "unknown selector key {other} (expected driver, mac)"
                            ))
                        }
                    }
                }
                if sel.driver.is_none() && sel.mac.is_none() {
                    return Err("a selector needs driver and/or mac".into());
                }
                Ok(MemberSpec::Select(sel))
            }
            other => Err(format!(
                "expected an interface name or a selector table, got {other}"
            )),
        }
    }

    /// The interface name, for a member given by name.
    pub fn name(&self) -> Option<&str> {
        match self {
            MemberSpec::Name(n) => Some(n),
            MemberSpec::Select(_) => None,
        }
    }
}

impl fmt::Display for MemberSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberSpec::Name(n) => f.write_str(n),
            MemberSpec::Select(s) => s.fmt(f),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(d) = &self.driver {
            parts.push(format!("driver = \"{d}\""));
        }
        if let Some(m) = &self.mac {
            parts.push(format!("mac = \"{m}\""));
        }
        write!(f, "{{ {} }}", parts.join(", "))
    }
}

impl Selector {
    pub fn matches(&self, c: &Candidate) -> bool {
        let driver_ok = self
            .driver
            .as_ref()
            .is_none_or(|d| c.driver.as_deref() == Some(d.as_str()));
        let mac_ok = self.mac.as_ref().is_none_or(|g| {
            c.mac
                .is_some_and(|m| glob(g.as_bytes(), m.to_string().as_bytes()))
        });
        driver_ok && mac_ok
    }
}

fn is_ifname(s: &str) -> bool {
    !s.is_empty() && s.len() <= 15 && !s.contains(['/', ' ', ':'])
}

fn check_mac_glob(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '*' | '?'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{s}' is not a MAC address pattern (hex digits, ':', '*' and '?')"
        ))
    }
}

/// Shell-style match of `pat` (`*`, `?`) against all of `text`.
fn glob(pat: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it matched up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Resolve a bond's member list against `links`. Names that do not exist
/// are `missing` (enslaved when they appear); a selector must match at
/// least one link. Links in `reserved` are never taken: a name naming one,
/// or a selector matching one, is an error that says what the link is; so
/// is a link enslaved to another device. Our own host interfaces (in
/// `ours`) are skipped by selectors without complaint: they exist again on
/// a restart.
pub fn resolve(
    specs: &[MemberSpec],
    links: &[Candidate],
    reserved: &[Reserved],
    ours: &[String],
) -> Result<Resolved, String> {
    let mut out = Resolved::default();
    let in_use = |c: &Candidate| -> Option<String> {
        if let Some(r) = reserved.iter().find(|r| r.name == c.name) {
            return Some(r.why.clone());
        }
        c.master.as_ref().map(|m| format!("enslaved to {m}"))
    };
    for spec in specs {
        match spec {
            MemberSpec::Name(n) => match links.iter().find(|c| &c.name == n) {
                Some(c) => {
                    if let Some(why) = in_use(c).or_else(|| {
                        ours.contains(n)
                            .then(|| "an xbond host interface".to_string())
                    }) {
                        return Err(format!("{n} is {why}"));
                    }
                    if !out.present.contains(n) {
                        out.present.push(n.clone());
                    }
                }
                None => out.missing.push(n.clone()),
            },
            MemberSpec::Select(sel) => {
                let matched: Vec<&Candidate> = links
                    .iter()
                    .filter(|c| sel.matches(c) && !ours.contains(&c.name))
                    .collect();
                if matched.is_empty() {
                    return Err(format!("selector {sel} matches no interface"));
                }
                for c in matched {
                    if let Some(why) = in_use(c) {
                        return Err(format!(
                            "selector {sel} matches {}, which is {why}; narrow the selector",
                            c.name
                        ));
                    }
                    if !out.present.contains(&c.name) {
                        out.present.push(c.name.clone());
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, driver: &str, mac: &str) -> Candidate {
        Candidate {
            name: name.into(),
            driver: Some(driver.into()),
            mac: MacAddr::parse(mac),
            master: None,
        }
    }

    fn sel(driver: Option<&str>, mac: Option<&str>) -> MemberSpec {
        MemberSpec::Select(Selector {
            driver: driver.map(Into::into),
            mac: mac.map(Into::into),
        })
    }

    fn links() -> Vec<Candidate> {
        vec![
            link("eth0", "virtio_net", "52:54:00:12:34:56"),
            link("m0", "veth", "02:00:00:00:01:00"),
            link("m1", "veth", "02:00:00:00:01:01"),
            link("bond0", "veth", "02:00:00:00:01:00"),
            link("enp1s0f0", "ixgbe", "10:e7:c6:16:aa:01"),
            link("enp1s0f1", "ixgbe", "10:E7:C6:16:aa:02"),
        ]
    }

    #[test]
    fn glob_matches_like_a_shell() {
        assert!(glob(b"10:e7:c6:16:*", b"10:e7:c6:16:aa:01"));
        assert!(glob(b"10:E7:*", b"10:e7:c6:16:aa:01"));
        assert!(glob(b"*:01", b"10:e7:c6:16:aa:01"));
        assert!(glob(b"10:e7:c6:16:aa:0?", b"10:e7:c6:16:aa:01"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"10:e7:c6:17:*", b"10:e7:c6:16:aa:01"));
        assert!(!glob(b"10:e7:c6:16:aa:0", b"10:e7:c6:16:aa:01"));
        assert!(glob(b"*6:*:0*", b"10:e7:c6:16:aa:01"));
    }

    #[test]
    fn selectors_pick_by_driver_and_mac_in_link_order() {
        let ours = vec!["bond0".to_string()];
        let r = resolve(
            &[sel(Some("veth"), Some("02:00:00:00:01:*"))],
            &links(),
            &[],
            &ours,
        )
        .unwrap();
        assert_eq!(r.present, vec!["m0", "m1"], "our own bond0 is skipped");
        let r = resolve(&[sel(None, Some("10:e7:c6:16:*"))], &links(), &[], &ours).unwrap();
        assert_eq!(r.present, vec!["enp1s0f0", "enp1s0f1"]);
        let r = resolve(&[sel(Some("ixgbe"), None)], &links(), &[], &ours).unwrap();
        assert_eq!(r.present.len(), 2);
    }

    #[test]
    fn a_selector_that_matches_nothing_is_an_error() {
        assert_eq!(
            resolve(&[sel(Some("e1000e"), None)], &links(), &[], &[]).unwrap_err(),
            "selector { driver = \"e1000e\" } matches no interface"
        );
    }

    #[test]
    fn a_link_in_use_is_refused_with_what_uses_it() {
        let reserved = vec![Reserved {
            name: "m1".into(),
            why: "a member of bond b1".into(),
        }];
        assert_eq!(
            resolve(&[sel(Some("veth"), Some("02:00:00:00:01:0?"))], &links(), &reserved, &[]).unwrap_err(),
            "selector { driver = \"veth\", mac = \"02:00:00:00:01:0?\" } matches m1, which is a member of bond b1; narrow the selector"
        );
        let mut l = links();
        l[1].master = Some("br0".into());
        assert_eq!(
            resolve(&[MemberSpec::Name("m0".into())], &l, &[], &[]).unwrap_err(),
            "m0 is enslaved to br0"
        );
        assert_eq!(
            resolve(
                &[MemberSpec::Name("bond0".into())],
                &links(),
                &[],
                &["bond0".into()]
            )
            .unwrap_err(),
            "bond0 is an xbond host interface"
        );
    }

    #[test]
    fn names_that_do_not_exist_are_missing_not_errors() {
        let r = resolve(
            &[MemberSpec::Name("m0".into()), MemberSpec::Name("m9".into())],
            &links(),
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(r.present, vec!["m0"]);
        assert_eq!(r.missing, vec!["m9"]);
    }

    #[test]
    fn selector_syntax_errors_name_the_problem() {
        let t = |s: &str| MemberSpec::from_toml(&s.parse::<toml::Table>().unwrap()["m"]);
        assert!(t("m = { driver = \"veth\", colour = \"red\" }")
            .unwrap_err()
            .contains("unknown selector key colour"));
        assert!(t("m = { mac = \"zz:*\" }")
            .unwrap_err()
            .contains("not a MAC address pattern"));
        assert_eq!(
            t("m = {}").unwrap_err(),
            "a selector needs driver and/or mac"
        );
        assert_eq!(
            t("m = { mac = \"10:E7:C6:*\" }").unwrap(),
            sel(None, Some("10:e7:c6:*"))
        );
    }
}
