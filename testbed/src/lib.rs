//! Test topologies in network namespaces (built by `topo.sh`), the xbond
//! daemon started inside them, and traffic tools that run inside a namespace
//! from a test thread. Everything a test creates is removed when its handle
//! drops, also when the test fails.
//!
//! Each file below says what it owns; `docs/architecture.md` lists them all.
#![forbid(unsafe_code)]

mod capture;
mod daemon;
mod ovs;
mod topo;
mod traffic;
mod wait;

pub use capture::*;
pub use daemon::*;
pub use ovs::*;
pub use topo::*;
pub use traffic::*;
pub use wait::*;

use anyhow::{bail, Context};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// True when these tests may run: as root. In CI (`CI=true`) not being root
/// is a failure, never a skip.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("root integration tests must run as root in CI");
    }
    eprintln!("!!! SKIPPED: netns integration test needs root (run `sudo make test`) !!!");
    false
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `xbond` binary under test: `$XBOND_BIN`, else the workspace's debug build.
pub fn xbond_bin() -> PathBuf {
    if let Ok(p) = std::env::var("XBOND_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target"));
    let p = target.join("debug/xbond");
    assert!(
        p.exists(),
        "{} missing: build it first (`cargo build --bins`; `make test` does)",
        p.display()
    );
    p
}

pub fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let out = cmd.output().with_context(|| format!("spawn {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// `ip netns exec NS ARGS...`
pub fn ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

/// Run `f` on a thread that has entered network namespace `name`.
pub fn in_ns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<anyhow::Result<T>> {
    let path = format!("/run/netns/{name}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
        nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        Ok(f())
    })
}

/// A copy of the xbond binary that any user may run, in a world-readable
/// temporary directory (the build tree may sit under a private one, as a CI
/// checkout in `mktemp -d` does); removed on drop.
pub struct AnyoneBin {
    pub path: PathBuf,
    dir: PathBuf,
}

impl AnyoneBin {
    pub fn new() -> anyhow::Result<AnyoneBin> {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!(
            "xbond-anyone-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let path = dir.join("xbond");
        std::fs::copy(xbond_bin(), &path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(AnyoneBin { path, dir })
    }
}

impl Drop for AnyoneBin {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `setpriv` running ARGS as `uid`:`gid` with no supplementary groups and
/// the capabilities `caps` (e.g. `net_admin`) kept as ambient ones.
pub fn as_user(uid: u32, gid: u32, caps: &[&str], args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups");
    if !caps.is_empty() {
        let list: Vec<String> = caps.iter().map(|c| format!("+{c}")).collect();
        c.arg(format!("--inh-caps={}", list.join(",")))
            .arg(format!("--ambient-caps={}", list.join(",")));
    }
    c.args(args);
    c
}

/// One end of a veth pair for `veth_pair`: its name, namespace, and MAC
/// (the kernel picks one when `None`).
#[derive(Debug, Clone, Copy)]
pub struct VethEnd<'a> {
    pub name: &'a str,
    pub ns: &'a str,
    pub mac: Option<&'a str>,
}

/// A veth pair with one RX and one TX queue on each end (what AF_XDP
/// copy-mode benchmarks want: one queue to serve), made in `a.ns` with the
/// peer moved to `b.ns`.
pub fn veth_pair(a: VethEnd, b: VethEnd) -> anyhow::Result<()> {
    let mut args = vec![
        "-n",
        a.ns,
        "link",
        "add",
        a.name,
        "numtxqueues",
        "1",
        "numrxqueues",
        "1",
    ];
    if let Some(m) = a.mac {
        args.extend(["address", m]);
    }
    args.extend([
        "type",
        "veth",
        "peer",
        "name",
        b.name,
        "numtxqueues",
        "1",
        "numrxqueues",
        "1",
    ]);
    if let Some(m) = b.mac {
        args.extend(["address", m]);
    }
    if b.ns != a.ns {
        args.extend(["netns", b.ns]);
    }
    run(Command::new("ip").args(&args)).map(drop)
}

/// A directory under the temporary directory, named by `tag`, removed with
/// everything in it on drop (also when the test fails).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> anyhow::Result<TempDir> {
        let path = std::env::temp_dir().join(tag);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
