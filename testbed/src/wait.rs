//! Waiting for a condition: one poll loop, and the link-state checks built
//! on it.

use crate::*;

/// `ip link show` flags of `ifname` in `ns_name` contain NO-CARRIER.
pub fn no_carrier(ns_name: &str, ifname: &str) -> anyhow::Result<bool> {
    let out = run(&mut ns(ns_name, &["ip", "link", "show", ifname]))?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("NO-CARRIER"))
}

/// The operational state is UP: the kernel's link watch has processed the
/// carrier (up to a second after it, as for any netdev) and the device
/// transmits again.
pub fn oper_up(ns_name: &str, ifname: &str) -> anyhow::Result<bool> {
    let out = run(&mut ns(ns_name, &["ip", "link", "show", ifname]))?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("state UP"))
}

/// Call `f` every 10 ms until it says yes; how long that took, or an error
/// naming `what` after `timeout`.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    while !f()? {
        if t0.elapsed() > timeout {
            anyhow::bail!("{what}: not within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(t0.elapsed())
}
