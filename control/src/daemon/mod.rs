//! `xbond run`: builds each bond (host interface, members, dataplane), runs its
//! control loop — the only place that reads the clock and owns sockets — until
//! SIGINT/SIGTERM, then detaches everything and removes what it created.
//!
//! Each file below says what it owns; `docs/architecture.md` lists them all.

mod calls;
mod event_loop;
mod host;
mod members;
mod notify;
mod runtime;
pub mod systemd;
mod vlans;

use crate::config::{BondConfig, Config};
use crate::netlink::{spawn_link_listener, LinkEvent};
use anyhow::Context;
use crossbeam::channel::{bounded, unbounded};
use members::reserved_for;
pub use runtime::check_on_this_host;
use runtime::BondRuntime;

/// Options of `xbond run` beyond the config file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Remove XDP programs other tools attached to members (else refuse).
    pub replace_xdp: bool,
    /// `--metrics ADDR`: serve Prometheus metrics there (over the config's
    /// `[daemon] metrics`).
    pub metrics: Option<std::net::SocketAddr>,
}

/// Run every bond of `config` until a signal arrives.
pub fn run(mut config: Config, opts: RunOptions) -> anyhow::Result<()> {
    make_run_dir(&config.run_dir)?;
    let access = crate::ipc::SocketAccess::for_group(config.socket_group.as_deref())?;
    let metrics_at = opts.metrics.or(config.metrics);
    if opts.replace_xdp {
        for b in &mut config.bonds {
            b.engine.replace_xdp = true;
        }
    }
    let (stop_tx, stop_rx) = bounded::<()>(1);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::Builder::new()
        .name("xbond-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                tracing::info!("signal {sig}: shutting down");
                let _ = stop_tx.send(());
            }
        })?;

    // Link events fan out to every bond.
    let (ev_tx, ev_rx) = unbounded::<LinkEvent>();
    spawn_link_listener(ev_tx).context("listen to netlink link events")?;
    let mut bond_event_txs = Vec::new();
    let mut runtimes = Vec::new();
    for b in &config.bonds {
        for w in &b.warnings {
            tracing::warn!(bond = %b.name, "{w}");
        }
        let (tx, rx) = unbounded();
        let reserved = reserved_for(&config, &b.name);
        match BondRuntime::start(b, &config.run_dir, &access, rx, &reserved) {
            Ok(rt) => {
                bond_event_txs.push(tx);
                runtimes.push(rt);
            }
            Err(e) => {
                for mut rt in runtimes {
                    rt.teardown();
                }
                return Err(e.context(format!("bond {}", b.name)));
            }
        }
    }
    std::thread::Builder::new()
        .name("xbond-events".into())
        .spawn(move || {
            while let Ok(ev) = ev_rx.recv() {
                for tx in &bond_event_txs {
                    let _ = tx.send(ev.clone());
                }
            }
        })?;

    let callers: Vec<_> = runtimes
        .iter()
        .filter_map(|rt| Some((rt.core.name.clone(), rt.call_tx.clone()?)))
        .collect();
    let extras = metrics_at
        .map_or(Ok(()), |addr| crate::metrics::serve(addr, callers.clone()))
        .and_then(|()| systemd::spawn_watchdog(callers));
    if let Err(e) = extras {
        for mut rt in runtimes {
            rt.teardown();
        }
        return Err(e);
    }

    // One control loop per bond, each on its own thread.
    let mut threads = Vec::new();
    let mut stops = Vec::new();
    for mut rt in runtimes {
        let (tx, rx) = bounded::<()>(1);
        stops.push(tx);
        threads.push(
            std::thread::Builder::new()
                .name(format!("xbond-{}", rt.core.name))
                .spawn(move || {
                    rt.run(rx);
                    rt.teardown();
                })?,
        );
    }
    tracing::info!("running; SIGINT or SIGTERM stops");
    systemd::ready(
        &config
            .bonds
            .iter()
            .map(|b| b.name.clone())
            .collect::<Vec<_>>(),
    );
    let _ = stop_rx.recv();
    systemd::stopping();
    for s in &stops {
        let _ = s.send(());
    }
    for t in threads {
        let _ = t.join();
    }
    tracing::info!("stopped; every XDP program detached and host interfaces removed");
    Ok(())
}

/// Create the run directory, readable and searchable by everyone (the
/// control sockets in it decide who may do what), whatever the umask.
fn make_run_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod 755 {}", dir.display()))?;
    } else if let Ok(m) = std::fs::metadata(dir) {
        if m.permissions().mode() & 0o001 == 0 {
            tracing::warn!(
                "{} is not searchable by other users: only its owner and group reach the control sockets",
                dir.display()
            );
        }
    }
    Ok(())
}

/// One line saying what `xbond run` would build for this bond.
pub fn describe(cfg: &BondConfig) -> String {
    let members: Vec<String> = cfg.members.iter().map(ToString::to_string).collect();
    let mut line = format!(
        "bond {}: mode {}, members {}, miimon {} ms, host interface {} (mtu {})",
        cfg.name,
        cfg.options.mode,
        members.join(", "),
        cfg.options.miimon,
        cfg.name,
        cfg.mtu
    );
    for v in &cfg.vlans {
        line.push_str(&format!(", VLAN {} on {} (mtu {})", v.id, v.name, v.mtu));
    }
    line
}
