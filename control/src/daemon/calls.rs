//! The control socket's requests (`xbond status`, `stats`, `set`, `vlan`,
//! `hash`, `alb`), answered from the bond's state.

use super::runtime::BondRuntime;
use crate::ipc::{Request, Response};
use crate::stats::{AlbStats, ArpRow, LacpRow, PortRow, SocketView, StatsView};
use std::collections::BTreeMap;
use std::time::Instant;
use xbond_dataplane::engine::{AttachMode, QueueStats};
use xbond_dataplane::worker::Role;

impl BondRuntime {
    pub(super) fn call(&mut self, req: Request) -> Response {
        match req {
            Request::Status => match serde_json::to_value(self.core.status(Instant::now())) {
                Ok(mut v) => {
                    // What each socket got, beside the kernel's layout.
                    let sockets: Vec<serde_json::Value> = self
                        .engine
                        .iter()
                        .flat_map(|e| &e.queues)
                        .map(|q| {
                            serde_json::json!({
                                "port": q.port,
                                "queue": q.queue,
                                "socket": socket_view(q),
                            })
                        })
                        .collect();
                    v["sockets"] = serde_json::Value::Array(sockets);
                    Response::ok(v)
                }
                Err(e) => Response::err(e.to_string()),
            },
            Request::Stats => match serde_json::to_value(self.stats()) {
                Ok(v) => Response::ok(v),
                Err(e) => Response::err(e.to_string()),
            },
            Request::Mac => {
                Response::ok(serde_json::Value::String(self.core.bond_mac().to_string()))
            }
            Request::Hash { frame } => match crate::hashcmd::parse_hex(&frame) {
                Ok(bytes) => {
                    let core = &self.core;
                    let name = |m: u16| {
                        core.member(m)
                            .map_or_else(|| format!("member{m}"), |i| i.name.clone())
                    };
                    let report = crate::hashcmd::explain(&core.snapshot(), &name, &bytes);
                    match serde_json::to_value(report) {
                        Ok(v) => Response::ok(v),
                        Err(e) => Response::err(e.to_string()),
                    }
                }
                Err(e) => Response::err(format!("{e:#}")),
            },
            Request::VlanAdd {
                id,
                name,
                mtu,
                addresses,
            } => {
                let r = self
                    .vlan_config(id, name, mtu, addresses)
                    .and_then(|v| self.vlan_add(&v));
                match r {
                    Ok(msg) => {
                        tracing::info!(bond = %self.core.name, "{msg}");
                        Response::ok(serde_json::Value::String(msg))
                    }
                    Err(e) => Response::err(format!("vlan add: {e:#}")),
                }
            }
            Request::VlanDel { id } => match self.vlan_del(id) {
                Ok(msg) => {
                    tracing::info!(bond = %self.core.name, "{msg}");
                    Response::ok(serde_json::Value::String(msg))
                }
                Err(e) => Response::err(format!("vlan del: {e:#}")),
            },
            Request::VlanList => Response::ok(self.vlan_list()),
            Request::Alb => match self.core.alb_view() {
                Some(v) => match serde_json::to_value(v) {
                    Ok(v) => Response::ok(v),
                    Err(e) => Response::err(e.to_string()),
                },
                None => Response::err(format!(
                    "{} is in mode {}: only balance-tlb and balance-alb have these tables",
                    self.core.name,
                    self.core.options().mode.name()
                )),
            },
            Request::Set { key, value } if key == "slaves" => match self.set_slaves(&value) {
                Ok(msg) => Response::ok(serde_json::Value::String(msg)),
                Err(e) => Response::err(format!("slaves: {e:#}")),
            },
            Request::Set { key, value } => {
                let r = self.core.set_option(Instant::now(), &key, &value);
                self.run_actions();
                match r {
                    Ok(msg) => {
                        tracing::info!(bond = %self.core.name, "set {key}={value}: {msg}");
                        Response::ok(serde_json::Value::String(msg))
                    }
                    Err(e) => Response::err(e),
                }
            }
        }
    }

    /// The counters `xbond stats` shows, as the typed view it reads.
    pub(super) fn stats(&self) -> StatsView {
        let lacp: Vec<LacpRow> = match self.core.lacp() {
            Some(l) => self
                .core
                .members()
                .filter_map(|(id, m)| {
                    Some(LacpRow {
                        member: m.name.clone(),
                        counters: l.counters(id)?,
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        let arp_monitor: Vec<ArpRow> = self
            .core
            .members()
            .filter_map(|(id, m)| {
                Some(ArpRow {
                    member: m.name.clone(),
                    counters: self.core.arp_counters(id)?,
                })
            })
            .collect();
        let ports = self
            .engine
            .iter()
            .flat_map(|e| e.queues.iter())
            .map(port_row)
            .collect();
        let alb = self.core.alb().map(|a| {
            let c = a.counters();
            let fast = self.engine.as_ref().map_or(0, |e| e.tx_load().arp_replies);
            AlbStats {
                arp_replies_rewritten: c.arp_rewritten + fast,
                arp_updates_sent: c.arp_updates,
                tx_rebalances: c.tx_rebalances,
                rx_rebalances: c.rx_rebalances,
                learning_packets: c.learning_packets,
            }
        });
        StatsView {
            bond: self.core.name.clone(),
            ports,
            control: BTreeMap::from([
                (
                    "foreign_slow_protocol_frames".to_string(),
                    self.core.foreign_slow_frames(),
                ),
                (
                    "active_member_changes".to_string(),
                    self.core.active_changes(),
                ),
            ]),
            lacp,
            arp_monitor,
            alb,
        }
    }
}

/// One (port, queue): the worker's counters and the socket's statistics.
fn port_row(q: &QueueStats) -> PortRow {
    let c = q.counters.snapshot();
    let x = q.socket_stats().unwrap_or_default();
    PortRow {
        port: q.port.clone(),
        role: match q.role {
            Role::Host(0) => "host".to_string(),
            Role::Host(v) => format!("vlan {v}"),
            Role::Member(_) => "member".to_string(),
        },
        queue: q.queue,
        worker: q.worker,
        rx_packets: c.rx_packets,
        rx_bytes: c.rx_bytes,
        tx_packets: c.tx_packets,
        tx_bytes: c.tx_bytes,
        to_control: c.to_control,
        drops: c.drops.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        xdp: BTreeMap::from([
            ("rx_dropped".to_string(), x.rx_dropped),
            ("rx_invalid_descs".to_string(), x.rx_invalid_descs),
            ("tx_invalid_descs".to_string(), x.tx_invalid_descs),
            ("rx_ring_full".to_string(), x.rx_ring_full),
            (
                "rx_fill_ring_empty_descs".to_string(),
                x.rx_fill_ring_empty_descs,
            ),
            ("tx_ring_empty_descs".to_string(), x.tx_ring_empty_descs),
        ]),
        socket: socket_view(q),
    }
}

/// What the queue's socket got, as stats and status show it.
fn socket_view(q: &QueueStats) -> SocketView {
    SocketView {
        xdp_mode: match q.xdp_mode {
            _ if q.af_packet => "none",
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
        .into(),
        bind: if q.info.zero_copy {
            "zero-copy"
        } else {
            "copy"
        }
        .into(),
        multi_buffer: q.info.multi_buffer,
        tx_metadata: q.info.tx_metadata,
        af_packet: q.af_packet,
    }
}
