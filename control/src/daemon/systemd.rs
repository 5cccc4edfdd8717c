//! Running under systemd (`Type=notify`): READY=1 once every bond is up,
//! STOPPING=1 on the way down, and WATCHDOG=1 only while every bond's
//! control loop answers a call, so a stuck loop gets the service restarted.
//! Outside systemd (no `NOTIFY_SOCKET`) all of this does nothing.

use crate::ipc::{self, Call, Request};
use crossbeam::channel::Sender;
use sd_notify::NotifyState;
use std::time::Duration;

/// True when systemd started us with its journal on stderr: log lines
/// then carry no timestamp of their own (the journal adds one).
pub fn logs_to_journal() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("sd_notify: {e}");
    }
}

/// Every bond's members are attached and its host interface is up.
pub fn ready(bonds: &[String]) {
    let status = format!("running {}", bonds.join(", "));
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// With `WatchdogSec=`: every half period, ask each bond's control loop
/// for its MAC (the cheapest call) and keep the watchdog alive only if all
/// of them answered within a quarter period.
pub fn spawn_watchdog(bonds: Vec<(String, Sender<Call>)>) -> anyhow::Result<()> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return Ok(());
    }
    let period = Duration::from_micros(usec);
    tracing::info!("systemd watchdog every {period:?}, kept alive by the control loops");
    std::thread::Builder::new()
        .name("xbond-watchdog".into())
        .spawn(move || loop {
            std::thread::sleep(period / 2);
            let stuck: Vec<&str> = bonds
                .iter()
                .filter(|(_, tx)| ipc::ask(tx, Request::Mac, period / 4).is_err())
                .map(|(name, _)| name.as_str())
                .collect();
            if stuck.is_empty() {
                notify(&[NotifyState::Watchdog]);
            } else {
                tracing::error!(
                    "control loop of {} does not answer; not feeding the systemd watchdog",
                    stuck.join(", ")
                );
            }
        })?;
    Ok(())
}
