//! Traffic from inside a namespace: ping, UDP streams with loss counts,
//! TCP transfers, ARP noise, and black holes that keep carrier.

use crate::*;

/// `count` pings from namespace `ns_name` to `to`, 50 ms apart; all must answer.
pub fn ping(ns_name: &str, to: Ipv4Addr, count: u32) -> anyhow::Result<()> {
    run(&mut ns(
        ns_name,
        &[
            "ping",
            "-c",
            &count.to_string(),
            "-i",
            "0.05",
            "-W",
            "1",
            &to.to_string(),
        ],
    ))
    .map(drop)
}

/// What a receiver saw of a numbered UDP stream.
#[derive(Debug, Clone)]
pub struct StreamReport {
    pub sent: u32,
    pub received: u32,
    /// Arrival time of each received sequence number, relative to the start.
    pub arrivals: Vec<(u32, Duration)>,
}

impl StreamReport {
    pub fn lost(&self) -> u32 {
        self.sent.saturating_sub(self.received)
    }

    /// The longest silence between two consecutive arrivals.
    pub fn max_gap(&self) -> Duration {
        self.arrivals
            .windows(2)
            .map(|w| w[1].1.saturating_sub(w[0].1))
            .max()
            .unwrap_or_default()
    }
}

/// Send `count` numbered datagrams at `pps` from namespace `from_ns` to
/// `to:port` and receive them in `to_ns`. `during` runs on the calling thread
/// while the stream flows (start time passed in).
pub fn udp_stream(
    from_ns: &str,
    to_ns: &str,
    to: Ipv4Addr,
    port: u16,
    pps: u32,
    count: u32,
    during: impl FnOnce(Instant),
) -> anyhow::Result<StreamReport> {
    let start = Instant::now() + Duration::from_millis(300);
    let total = Duration::from_secs_f64(f64::from(count) / f64::from(pps));
    let rx = in_ns(to_ns, move || -> anyhow::Result<Vec<(u32, Duration)>> {
        let s = UdpSocket::bind(SocketAddrV4::new(to, port))?;
        s.set_read_timeout(Some(Duration::from_millis(50)))?;
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        let end = start + total + Duration::from_secs(1);
        while Instant::now() < end {
            if let Ok(n) = s.recv(&mut buf) {
                if n >= 4 {
                    got.push((
                        u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]),
                        start.elapsed(),
                    ));
                }
            }
        }
        Ok(got)
    });
    std::thread::sleep(Duration::from_millis(100));
    let tx = in_ns(from_ns, move || -> anyhow::Result<u32> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(SocketAddrV4::new(to, port))?;
        let gap = Duration::from_secs_f64(1.0 / f64::from(pps));
        while Instant::now() < start {
            std::hint::spin_loop();
        }
        let mut payload = [0u8; 32];
        for seq in 0..count {
            let due = start + gap * seq;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            payload[..4].copy_from_slice(&seq.to_be_bytes());
            let _ = s.send(&payload);
        }
        Ok(count)
    });
    while Instant::now() < start {
        std::thread::sleep(Duration::from_millis(1));
    }
    during(start);
    let sent = tx
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))???;
    let mut arrivals = rx
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))???;
    arrivals.sort_by_key(|a| a.1);
    arrivals.dedup_by_key(|a| a.0);
    Ok(StreamReport {
        sent,
        received: arrivals.len() as u32,
        arrivals,
    })
}

/// Send `bytes` over TCP from namespace `from_ns` to a listener on
/// `to:port` in `to_ns`; returns what the listener counted, once the
/// client has closed. Bounded by a 20 s timeout either side.
pub fn tcp_transfer(
    from_ns: &str,
    to_ns: &str,
    to: Ipv4Addr,
    port: u16,
    bytes: usize,
) -> anyhow::Result<usize> {
    use std::io::{Read, Write};
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let server = in_ns(to_ns, move || -> anyhow::Result<usize> {
        let l = std::net::TcpListener::bind(SocketAddrV4::new(to, port))?;
        let _ = ready_tx.send(());
        let (mut c, _) = l.accept()?;
        c.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            let n = c.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n;
        }
        Ok(total)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .context("the TCP listener did not start")?;
    let client = in_ns(from_ns, move || -> anyhow::Result<()> {
        let mut c = std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::V4(SocketAddrV4::new(to, port)),
            Duration::from_secs(5),
        )?;
        c.set_write_timeout(Some(Duration::from_secs(20)))?;
        let chunk = vec![0x5au8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            c.write_all(&chunk[..n])?;
            left -= n;
        }
        Ok(())
    });
    client
        .join()
        .map_err(|_| anyhow::anyhow!("TCP client panicked"))???;
    server
        .join()
        .map_err(|_| anyhow::anyhow!("TCP listener panicked"))?
        .context("TCP listener")?
}

/// A path that dies while carrier stays up: nftables netdev hooks on a
/// switch port drop every frame coming in from it and, with `both`, every
/// frame going out of it. Removed when dropped.
pub struct BlackHole {
    ns: String,
    table: String,
    removed: bool,
}

impl BlackHole {
    pub fn new(ns_name: &str, dev: &str, both: bool) -> anyhow::Result<BlackHole> {
        let table = format!("xbh_{dev}");
        let mut script = format!(
            "add table netdev {table}\n\
             add chain netdev {table} in {{ type filter hook ingress device {dev} priority 0; policy drop; }}\n"
        );
        if both {
            script.push_str(&format!(
                "add chain netdev {table} out {{ type filter hook egress device {dev} priority 0; policy drop; }}\n"
            ));
        }
        let path = std::env::temp_dir().join(format!("{ns_name}-{table}.nft"));
        std::fs::write(&path, script)?;
        let r = run(&mut ns(ns_name, &["nft", "-f", &path.to_string_lossy()]));
        let _ = std::fs::remove_file(&path);
        r?;
        Ok(BlackHole {
            ns: ns_name.to_string(),
            table,
            removed: false,
        })
    }

    /// Let traffic through again.
    pub fn remove(mut self) -> anyhow::Result<()> {
        self.removed = true;
        run(&mut ns(
            &self.ns,
            &["nft", "delete", "table", "netdev", &self.table],
        ))
        .map(drop)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        if !self.removed {
            let _ = ns(&self.ns, &["nft", "delete", "table", "netdev", &self.table])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Broadcast ARP requests from `ifname` in `ns_name` every `every` until
/// `stop` is set: another host's ARP chatter on the segment (sender
/// 198.18.0.9, asking for 198.18.0.10).
pub fn arp_noise(
    ns_name: &str,
    ifname: &str,
    every: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<anyhow::Result<u64>>> {
    let ifname = ifname.to_string();
    in_ns(ns_name, move || -> anyhow::Result<u64> {
        use pnet::datalink::{self, Channel, Config};
        let iface = datalink::interfaces()
            .into_iter()
            .find(|i| i.name == ifname)
            .context("no such interface")?;
        let Channel::Ethernet(mut tx, _) = datalink::channel(&iface, Config::default())? else {
            bail!("not ethernet")
        };
        let mut f = [0u8; 60];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 9, 9]);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f[22..28].copy_from_slice(&[2, 0, 0, 0, 9, 9]);
        f[28..32].copy_from_slice(&[198, 18, 0, 9]);
        f[38..42].copy_from_slice(&[198, 18, 0, 10]);
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) {
            if let Some(Ok(())) = tx.send_to(&f, None) {
                sent += 1;
            }
            std::thread::sleep(every);
        }
        Ok(sent)
    })
}
