//! The control socket: one JSON request and one JSON reply per line, over a
//! Unix socket at `RUN_DIR/BOND.sock`.

use anyhow::{bail, Context};
use crossbeam::channel::{bounded, Sender};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    Stats,
    Set {
        key: String,
        value: String,
    },
    /// Where a frame (hex) leaves, by the bond's live snapshot.
    Hash {
        frame: String,
    },
    /// The bond's MAC, for building frames on the client side.
    Mac,
    /// Add a VLAN sub-interface at runtime.
    VlanAdd {
        id: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mtu: Option<u32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        addresses: Vec<String>,
    },
    /// Remove a VLAN sub-interface.
    VlanDel {
        id: u16,
    },
    /// The VLANs: id, interface, MTU.
    VlanList,
    /// balance-tlb/alb: member MACs, the client and transmit tables.
    Alb,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Response {
    pub fn ok(data: serde_json::Value) -> Self {
        Response {
            ok: true,
            error: None,
            data: Some(data),
        }
    }

    pub fn err(e: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(e.into()),
            data: None,
        }
    }
}

pub fn socket_path(run_dir: &Path, bond: &str) -> PathBuf {
    run_dir.join(format!("{bond}.sock"))
}

/// A request with the channel its reply goes back on.
pub type Call = (Request, Sender<Response>);

/// Listen on `path`; every request goes to `tx`. Refuses to take over the
/// socket of a daemon that is still running.
pub fn serve(path: &Path, tx: Sender<Call>) -> anyhow::Result<()> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!("{} is in use: another xbond runs this bond", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("remove stale {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("listen on {}", path.display()))?;
    std::thread::Builder::new()
        .name("xbond-ipc".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let tx = tx.clone();
                let _ = std::thread::Builder::new()
                    .name("xbond-ipc-conn".into())
                    .spawn(move || handle(conn, tx));
            }
        })?;
    Ok(())
}

fn handle(conn: UnixStream, tx: Sender<Call>) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut out = conn;
    for line in BufReader::new(read_half).lines() {
        let Ok(line) = line else { return };
        if line.trim().is_empty() {
            continue;
        }
        let resp = match serde_json::from_str::<Request>(&line) {
            Ok(req) => {
                let (rtx, rrx) = bounded(1);
                if tx.send((req, rtx)).is_err() {
                    Response::err("the bond is shutting down")
                } else {
                    rrx.recv_timeout(Duration::from_secs(10))
                        .unwrap_or_else(|_| Response::err("no answer from the bond"))
                }
            }
            Err(e) => Response::err(format!("bad request: {e}")),
        };
        let Ok(mut text) = serde_json::to_string(&resp) else {
            return;
        };
        text.push('\n');
        if out.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

/// Send one request to a running daemon and return its data.
pub fn call(run_dir: &Path, bond: &str, req: &Request) -> anyhow::Result<serde_json::Value> {
    let path = socket_path(run_dir, bond);
    let mut s = UnixStream::connect(&path).with_context(|| {
        format!(
            "cannot reach the xbond daemon of {bond} at {} (is `xbond run` running?)",
            path.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    let mut text = serde_json::to_string(req)?;
    text.push('\n');
    s.write_all(text.as_bytes())?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line)?;
    let resp: Response = serde_json::from_str(&line)
        .with_context(|| format!("bad reply from the daemon: {line:?}"))?;
    if !resp.ok {
        bail!("{}", resp.error.unwrap_or_else(|| "failed".into()));
    }
    Ok(resp.data.unwrap_or(serde_json::Value::Null))
}

/// The bond to talk to when the user named none: the only one running.
pub fn only_bond(run_dir: &Path) -> anyhow::Result<String> {
    let mut names = Vec::new();
    if let Ok(rd) = std::fs::read_dir(run_dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "sock") {
                if let Some(stem) = p.file_stem() {
                    names.push(stem.to_string_lossy().into_owned());
                }
            }
        }
    }
    names.sort();
    match names.len() {
        0 => bail!(
            "no xbond daemon found in {} (is `xbond run` running? --run-dir?)",
            run_dir.display()
        ),
        1 => Ok(names.remove(0)),
        _ => bail!("several bonds run ({}); name one", names.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_one_json_object() {
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"cmd":"status"}"#
        );
        let set = Request::Set {
            key: "active_slave".into(),
            value: "m1".into(),
        };
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            r#"{"cmd":"set","key":"active_slave","value":"m1"}"#
        );
        assert_eq!(
            serde_json::to_string(&Response::err("x")).unwrap(),
            r#"{"ok":false,"error":"x"}"#
        );
    }

    #[test]
    fn round_trip_over_a_socket() {
        let dir = std::env::temp_dir().join(format!("xbond-ipc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (tx, rx) = bounded::<Call>(4);
        serve(&socket_path(&dir, "b0"), tx).unwrap();
        std::thread::spawn(move || {
            while let Ok((req, reply)) = rx.recv() {
                let r = match req {
                    Request::Status => Response::ok(serde_json::json!({"name": "b0"})),
                    _ => Response::err("nope"),
                };
                reply.send(r).unwrap();
            }
        });
        assert_eq!(call(&dir, "b0", &Request::Status).unwrap()["name"], "b0");
        assert_eq!(
            call(&dir, "b0", &Request::Stats).unwrap_err().to_string(),
            "nope"
        );
        assert_eq!(only_bond(&dir).unwrap(), "b0");
        assert!(
            serve(&socket_path(&dir, "b0"), bounded(1).0).is_err(),
            "a live socket is not taken over"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
