//! tcpdump captures in a namespace, and the frames in them.

use crate::*;

/// Capture frames on `ifname` in namespace `ns_name` for `dur`, keeping those
/// `keep` accepts.
pub fn capture(
    ns_name: &str,
    ifname: &str,
    dur: Duration,
    keep: fn(&[u8]) -> bool,
) -> std::thread::JoinHandle<anyhow::Result<anyhow::Result<Vec<Vec<u8>>>>> {
    let ifname = ifname.to_string();
    in_ns(ns_name, move || -> anyhow::Result<Vec<Vec<u8>>> {
        use pnet::datalink::{self, Channel, Config};
        let iface = datalink::interfaces()
            .into_iter()
            .find(|i| i.name == ifname)
            .context("no such interface")?;
        let cfg = Config {
            read_timeout: Some(Duration::from_millis(20)),
            ..Default::default()
        };
        let Channel::Ethernet(_, mut rx) = datalink::channel(&iface, cfg)? else {
            bail!("not ethernet")
        };
        let mut out = Vec::new();
        let end = Instant::now() + dur;
        while Instant::now() < end {
            if let Ok(f) = rx.next() {
                if keep(f) {
                    out.push(f.to_vec());
                }
            }
        }
        Ok(out)
    })
}

/// Every frame of a pcap file (as tcpdump writes it): (capture time in
/// seconds, bytes). tcpdump puts back the VLAN tag the kernel moved out of
/// a received frame, which a plain AF_PACKET read does not.
pub fn pcap_frames(path: &Path) -> anyhow::Result<Vec<(f64, Vec<u8>)>> {
    let b = std::fs::read(path)?;
    anyhow::ensure!(b.len() >= 24, "short pcap {}", path.display());
    let le = b[0..4] == [0xd4, 0xc3, 0xb2, 0xa1];
    let u32_at = |i: usize| {
        let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= b.len() {
        let (sec, usec, caplen) = (u32_at(i), u32_at(i + 4), u32_at(i + 8) as usize);
        let f = &b[(i + 16).min(b.len())..(i + 16 + caplen).min(b.len())];
        i += 16 + caplen;
        out.push((f64::from(sec) + f64::from(usec) / 1e6, f.to_vec()));
    }
    Ok(out)
}

/// tcpdump writing `ifname`'s frames (those `filter` keeps) to `path`;
/// stopped by pid on `finish` or drop.
pub struct Tcpdump {
    child: Option<Child>,
    pub path: PathBuf,
}

impl Tcpdump {
    pub fn start(
        ns_name: &str,
        ifname: &str,
        path: &Path,
        filter: &[&str],
    ) -> anyhow::Result<Tcpdump> {
        let mut args = vec![
            "tcpdump",
            "-i",
            ifname,
            "-nn",
            "-U",
            "-w",
            path.to_str().context("path")?,
        ];
        args.extend_from_slice(filter);
        let child = ns(ns_name, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // tcpdump needs a moment to open the socket.
        std::thread::sleep(Duration::from_millis(500));
        Ok(Tcpdump {
            child: Some(child),
            path: path.to_path_buf(),
        })
    }

    /// Stop the capture and read it.
    pub fn finish(mut self) -> anyhow::Result<Vec<(f64, Vec<u8>)>> {
        std::thread::sleep(Duration::from_millis(200));
        self.stop();
        pcap_frames(&self.path)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Gratuitous ARP for `ip`: an ARP request whose sender and target IP are both `ip`.
pub fn is_garp_for(frame: &[u8], ip: Ipv4Addr) -> bool {
    frame.len() >= 42
        && frame[12..14] == [0x08, 0x06]
        && frame[20..22] == [0, 1]
        && frame[28..32] == ip.octets()
        && frame[38..42] == ip.octets()
}
