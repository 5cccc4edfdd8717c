//! The control socket: one JSON request and one JSON reply per line, over a
//! Unix socket at `RUN_DIR/BOND.sock`.
//!
//! Who may do what, as with /proc/net/bonding and the kernel's netlink: any
//! local user reads (status, stats, hash, alb, vlan list); a change (set,
//! vlan add/del) needs uid 0 or CAP_NET_ADMIN in the caller, read from the
//! peer's credentials (SO_PEERCRED), never from the socket's mode. No client
//! can grow the daemon without bound or hold up its control loop
//! ([`Limits`]): a request line is at most 64 KiB, at most 16 clients are
//! served at once, and a client that stops reading or writing is dropped
//! after 30 s. Control loops take calls from a bounded queue and answer on
//! a channel that never blocks them.

use anyhow::{bail, Context};
use crossbeam::channel::{bounded, Sender};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What one client may take of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest request line read; a longer one is refused and its
    /// connection closed.
    pub max_line: usize,
    /// Connections served at once; one more is told so and closed.
    pub max_connections: usize,
    /// A connection that sends or takes nothing for this long is closed.
    pub idle: Duration,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_line: 64 * 1024,
        max_connections: 16,
        idle: Duration::from_secs(30),
    };
}
/// CAP_NET_ADMIN's bit in a capability set (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;

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

impl Request {
    /// True for the requests that change the bond (root or CAP_NET_ADMIN).
    pub fn changes(&self) -> bool {
        match self {
            Request::Set { .. } | Request::VlanAdd { .. } | Request::VlanDel { .. } => true,
            Request::Status
            | Request::Stats
            | Request::Hash { .. }
            | Request::Mac
            | Request::VlanList
            | Request::Alb => false,
        }
    }
}

/// Who may open the control socket: everyone (mode 0666, the default), or
/// root and one group (`[daemon] socket_group`, mode 0660). Set explicitly
/// after bind, so the umask the daemon was started with does not matter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketAccess {
    /// The group's name and id.
    pub group: Option<(String, u32)>,
}

impl SocketAccess {
    /// `[daemon] socket_group`, resolved to its id; an unknown group is an
    /// error that names the key.
    pub fn for_group(name: Option<&str>) -> anyhow::Result<Self> {
        let Some(name) = name else {
            return Ok(SocketAccess::default());
        };
        let g = nix::unistd::Group::from_name(name)
            .with_context(|| format!("[daemon] socket_group: look up {name}"))?
            .with_context(|| format!("[daemon] socket_group: no group named {name}"))?;
        Ok(SocketAccess {
            group: Some((name.to_string(), g.gid.as_raw())),
        })
    }

    fn apply(&self, path: &Path) -> anyhow::Result<()> {
        let mode = match &self.group {
            None => 0o666,
            Some((name, gid)) => {
                std::os::unix::fs::chown(path, None, Some(*gid))
                    .with_context(|| format!("give {} to group {name}", path.display()))?;
                0o660
            }
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {mode:o} {}", path.display()))
    }
}

/// The process at the other end of a connection, from SO_PEERCRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
}

impl Peer {
    fn of(conn: &UnixStream) -> Option<Peer> {
        let c =
            nix::sys::socket::getsockopt(conn, nix::sys::socket::sockopt::PeerCredentials).ok()?;
        Some(Peer {
            pid: c.pid(),
            uid: c.uid(),
        })
    }

    /// Whether this peer may change the bond, and if not, why not. Root
    /// may; anyone else needs CAP_NET_ADMIN in its effective set.
    pub fn may_change(&self) -> Result<(), String> {
        if self.uid == 0 {
            return Ok(());
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid));
        let caps = status.ok().and_then(|s| effective_caps(&s));
        if caps.is_some_and(|c| c & (1 << CAP_NET_ADMIN) != 0) {
            return Ok(());
        }
        Err(format!(
            "permission denied: changing the bond needs root or CAP_NET_ADMIN; \
             the caller (uid {}, pid {}) has neither (reading is open to every user)",
            self.uid, self.pid
        ))
    }
}

/// The `CapEff:` mask of a /proc/PID/status text.
fn effective_caps(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

pub fn socket_path(run_dir: &Path, bond: &str) -> PathBuf {
    run_dir.join(format!("{bond}.sock"))
}

/// A request with the channel its reply goes back on.
pub type Call = (Request, Sender<Response>);

/// Listen on `path`; every request goes to `tx`. Refuses to take over the
/// socket of a daemon that is still running.
pub fn serve(path: &Path, access: &SocketAccess, tx: Sender<Call>) -> anyhow::Result<()> {
    serve_with(path, access, Limits::DEFAULT, tx)
}

/// `serve` with other limits (tests use short ones).
pub fn serve_with(
    path: &Path,
    access: &SocketAccess,
    limits: Limits,
    tx: Sender<Call>,
) -> anyhow::Result<()> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!("{} is in use: another xbond runs this bond", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("remove stale {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("listen on {}", path.display()))?;
    access.apply(path)?;
    let open = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("xbond-ipc".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(limits.idle));
                let _ = conn.set_write_timeout(Some(limits.idle));
                if open.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
                    open.fetch_sub(1, Ordering::AcqRel);
                    let _ = reply(
                        &mut conn,
                        &Response::err(format!(
                            "too many connections: {} clients are being served; try again",
                            limits.max_connections
                        )),
                    );
                    continue;
                }
                let tx = tx.clone();
                let spawned = std::thread::Builder::new()
                    .name("xbond-ipc-conn".into())
                    .spawn({
                        let open = open.clone();
                        move || {
                            handle(conn, limits.max_line, tx);
                            open.fetch_sub(1, Ordering::AcqRel);
                        }
                    });
                if spawned.is_err() {
                    open.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })?;
    Ok(())
}

/// What reading one request line gave.
enum Line {
    Text(String),
    TooLong,
    End,
}

/// Read up to and without the next newline, at most `max` bytes; a longer
/// line is not buffered.
fn read_line(r: &mut impl BufRead, max: usize) -> Line {
    let mut buf = Vec::new();
    loop {
        let avail = match r.fill_buf() {
            Ok([]) => return Line::End,
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Line::End,
        };
        let (take, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (avail.len(), false),
        };
        if buf.len() + take > max {
            return Line::TooLong;
        }
        buf.extend_from_slice(&avail[..take]);
        r.consume(take + usize::from(done));
        if done {
            return Line::Text(String::from_utf8_lossy(&buf).into_owned());
        }
    }
}

fn reply(out: &mut UnixStream, resp: &Response) -> std::io::Result<()> {
    let mut text = serde_json::to_string(resp).map_err(std::io::Error::other)?;
    text.push('\n');
    out.write_all(text.as_bytes())
}

fn handle(conn: UnixStream, max_line: usize, tx: Sender<Call>) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let peer = Peer::of(&conn);
    let mut out = conn;
    let mut input = BufReader::new(read_half);
    loop {
        let line = match read_line(&mut input, max_line) {
            Line::Text(l) => l,
            Line::End => return,
            Line::TooLong => {
                let _ = reply(
                    &mut out,
                    &Response::err(format!("request longer than {max_line} bytes; closing")),
                );
                return;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let resp = match serde_json::from_str::<Request>(&line) {
            Ok(req) => {
                let allowed = if req.changes() {
                    peer.map_or_else(
                        || Err("permission denied: the caller's credentials are unknown".into()),
                        |p| p.may_change(),
                    )
                } else {
                    Ok(())
                };
                match allowed {
                    Err(why) => Response::err(why),
                    Ok(()) => {
                        let (rtx, rrx) = bounded(1);
                        if tx
                            .send_timeout((req, rtx), Duration::from_secs(10))
                            .is_err()
                        {
                            Response::err("the bond is shutting down or busy")
                        } else {
                            rrx.recv_timeout(Duration::from_secs(10))
                                .unwrap_or_else(|_| Response::err("no answer from the bond"))
                        }
                    }
                }
            }
            Err(e) => Response::err(format!("bad request: {e}")),
        };
        if reply(&mut out, &resp).is_err() {
            return;
        }
    }
}

/// Ask a bond's control loop from inside the daemon, as a control socket
/// connection does; waits at most `wait` for a place in its queue and as
/// long again for the answer.
pub fn ask(tx: &Sender<Call>, req: Request, wait: Duration) -> anyhow::Result<serde_json::Value> {
    let (rtx, rrx) = bounded(1);
    tx.send_timeout((req, rtx), wait)
        .map_err(|_| anyhow::anyhow!("the bond does not take calls"))?;
    let r = rrx
        .recv_timeout(wait)
        .map_err(|_| anyhow::anyhow!("no answer from the bond within {wait:?}"))?;
    if !r.ok {
        bail!("{}", r.error.unwrap_or_default());
    }
    Ok(r.data.unwrap_or_default())
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
        serve(&socket_path(&dir, "b0"), &SocketAccess::default(), tx).unwrap();
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
            serve(
                &socket_path(&dir, "b0"),
                &SocketAccess::default(),
                bounded(1).0
            )
            .is_err(),
            "a live socket is not taken over"
        );
        let mode = std::fs::metadata(socket_path(&dir, "b0"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o666,
            "every user may connect, whatever the umask"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A socket served with `limits` by a bond that answers every call.
    fn limited(tag: &str, limits: Limits) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("xbond-ipc-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = socket_path(&dir, "b0");
        let (tx, rx) = bounded::<Call>(4);
        serve_with(&path, &SocketAccess::default(), limits, tx).unwrap();
        std::thread::spawn(move || {
            while let Ok((_, reply)) = rx.recv() {
                let _ = reply.send(Response::ok(serde_json::json!({"name": "b0"})));
            }
        });
        (dir, path)
    }

    fn read_reply(s: &UnixStream) -> String {
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line
    }

    #[test]
    fn a_line_over_the_limit_is_refused_and_closed() {
        let limits = Limits {
            max_line: 1024,
            ..Limits::DEFAULT
        };
        let (dir, path) = limited("long", limits);
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // A line just under the limit is read (and is a bad request).
        s.write_all(&[b'x'; 1000]).unwrap();
        s.write_all(b"\n").unwrap();
        assert!(read_reply(&s).contains("bad request"));
        s.write_all(&[b'x'; 4000]).unwrap();
        let r = read_reply(&s);
        assert!(r.contains("request longer than 1024 bytes"), "{r}");
        assert_eq!(read_reply(&s), "", "the connection is closed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn connections_over_the_limit_are_told_and_closed() {
        let limits = Limits {
            max_connections: 2,
            ..Limits::DEFAULT
        };
        let (dir, path) = limited("many", limits);
        let a = UnixStream::connect(&path).unwrap();
        let b = UnixStream::connect(&path).unwrap();
        let c = UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let r = read_reply(&c);
        assert!(r.contains("too many connections: 2 clients"), "{r}");
        assert_eq!(read_reply(&c), "");
        drop((a, b));
        // Once the held connections close, calls go through again.
        let t0 = std::time::Instant::now();
        let dir2 = dir.clone();
        while call(&dir2, "b0", &Request::Status).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(5), "never served again");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stalled_client_is_dropped_and_holds_up_nobody() {
        let limits = Limits {
            idle: Duration::from_millis(300),
            ..Limits::DEFAULT
        };
        let (dir, path) = limited("stall", limits);
        let mut stalled = UnixStream::connect(&path).unwrap();
        stalled.write_all(br#"{"cmd":"#).unwrap();
        let t0 = std::time::Instant::now();
        assert_eq!(call(&dir, "b0", &Request::Status).unwrap()["name"], "b0");
        assert!(
            t0.elapsed() < Duration::from_millis(300),
            "served while the other stalls"
        );
        stalled
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(read_reply(&stalled), "", "closed after the idle time");
        assert!(t0.elapsed() >= Duration::from_millis(250));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_root_or_cap_net_admin_may_change() {
        assert!(Request::Set {
            key: "miimon".into(),
            value: "10".into()
        }
        .changes());
        assert!(Request::VlanDel { id: 5 }.changes());
        assert!(!Request::Status.changes() && !Request::Alb.changes());
        assert_eq!(Peer { pid: 1, uid: 0 }.may_change(), Ok(()));
        let gone = Peer {
            pid: i32::MAX,
            uid: 65534,
        };
        let why = gone.may_change().unwrap_err();
        assert!(
            why.contains("needs root or CAP_NET_ADMIN") && why.contains("uid 65534"),
            "{why}"
        );
        let status = "Name:\tip\nCapInh:\t0000000000000000\nCapEff:\t0000000000001000\n";
        assert_eq!(effective_caps(status), Some(1 << CAP_NET_ADMIN));
        assert_eq!(effective_caps("Name:\tx\n"), None);
    }
}
