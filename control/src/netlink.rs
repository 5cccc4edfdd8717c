//! rtnetlink, synchronously: look links up, create and delete the host-port
//! veth pair, set MTU/MAC/flags, detach foreign XDP programs, read and set
//! addresses, and listen to link events.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
    LinkXdp, XdpAttached,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::net::IpAddr;
use xbond_dataplane::wire::MacAddr;

/// What xbond needs to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub admin_up: bool,
    /// The kernel's carrier (netif_carrier_ok), false while admin down.
    pub carrier: bool,
    pub mac: Option<MacAddr>,
    pub perm_mac: Option<MacAddr>,
    pub mtu: u32,
    /// The largest MTU the device takes (IFLA_MAX_MTU), when it says.
    pub max_mtu: Option<u32>,
    pub rx_queues: u32,
    pub kind: Option<String>,
    /// Peer ifindex for veth (IFLA_LINK).
    pub peer: Option<u32>,
    pub promisc: bool,
    /// An attached XDP program: (program id, how it is attached).
    pub xdp: Option<(u32, XdpAttach)>,
    /// The device it is enslaved to (IFLA_MASTER): a bridge, a kernel bond.
    pub master: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpAttach {
    Driver,
    Generic,
    Offload,
    Multi,
}

/// A link event: a link appeared, changed or went away.
#[derive(Debug, Clone)]
pub enum LinkEvent {
    Changed(Link),
    Removed { index: u32, name: String },
}

pub struct Netlink {
    sock: Socket,
    seq: u32,
}

const ENODEV: i32 = 19;
const EEXIST: i32 = 17;

fn mac_of(v: &[u8]) -> Option<MacAddr> {
    (v.len() == 6).then(|| {
        let mut m = [0; 6];
        m.copy_from_slice(v);
        MacAddr(m)
    })
}

fn parse_link(msg: &LinkMessage) -> Link {
    let mut l = Link {
        index: msg.header.index,
        name: String::new(),
        admin_up: msg.header.flags.contains(LinkFlags::Up),
        carrier: msg.header.flags.contains(LinkFlags::LowerUp),
        mac: None,
        perm_mac: None,
        mtu: 0,
        max_mtu: None,
        rx_queues: 1,
        kind: None,
        peer: None,
        promisc: msg.header.flags.contains(LinkFlags::Promisc),
        xdp: None,
        master: None,
    };
    let mut carrier_attr = None;
    for a in &msg.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Address(v) => l.mac = mac_of(v),
            LinkAttribute::PermAddress(v) => l.perm_mac = mac_of(v).filter(|m| !m.is_zero()),
            LinkAttribute::Mtu(m) => l.mtu = *m,
            LinkAttribute::MaxMtu(m) if *m > 0 => l.max_mtu = Some(*m),
            LinkAttribute::NumRxQueues(q) => l.rx_queues = (*q).max(1),
            LinkAttribute::Carrier(c) => carrier_attr = Some(*c != 0),
            LinkAttribute::Link(p) => l.peer = Some(*p),
            LinkAttribute::Controller(m) => l.master = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let NlLinkInfo::Kind(k) = i {
                        l.kind = Some(k.to_string());
                    }
                }
            }
            LinkAttribute::Xdp(x) => {
                let mut id = None;
                let mut how = None;
                for e in x {
                    match e {
                        LinkXdp::ProgId(p) if *p != 0 => id = Some(*p),
                        LinkXdp::Attached(XdpAttached::Driver) => how = Some(XdpAttach::Driver),
                        LinkXdp::Attached(XdpAttached::SocketBuffer) => {
                            how = Some(XdpAttach::Generic)
                        }
                        LinkXdp::Attached(XdpAttached::Hardware) => how = Some(XdpAttach::Offload),
                        LinkXdp::Attached(XdpAttached::Multiple) => how = Some(XdpAttach::Multi),
                        _ => {}
                    }
                }
                if let (Some(id), Some(how)) = (id, how) {
                    l.xdp = Some((id, how));
                }
            }
            _ => {}
        }
    }
    if let Some(c) = carrier_attr {
        l.carrier = c && l.admin_up;
    }
    l
}

/// A netlink error that keeps its errno (for callers that test it) and says
/// what was asked.
#[derive(Debug)]
pub struct NlError {
    pub errno: i32,
    pub what: String,
}

impl std::fmt::Display for NlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.what,
            io::Error::from_raw_os_error(self.errno)
        )
    }
}

impl std::error::Error for NlError {}

fn nl_err(code: i32, what: &str) -> io::Error {
    let errno = -code;
    io::Error::new(
        io::Error::from_raw_os_error(errno).kind(),
        NlError {
            errno,
            what: what.to_string(),
        },
    )
}

/// The errno of a netlink failure.
pub fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error().or_else(|| {
        e.get_ref()
            .and_then(|i| i.downcast_ref::<NlError>())
            .map(|n| n.errno)
    })
}

impl Netlink {
    pub fn new() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink { sock, seq: 1 })
    }

    /// Send one request and collect the replies until the ACK or DONE.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: &str,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | flags;
        hdr.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut off = 0;
            while off < data.len() {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..]).map_err(
                    |e| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}")),
                )?;
                let len = m.header.length as usize;
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => match e.code {
                        Some(code) => return Err(nl_err(code.get(), what)),
                        None => return Ok(out),
                    },
                    NetlinkPayload::InnerMessage(inner) => {
                        out.push(inner);
                        if !dump && flags & NLM_F_ACK == 0 {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    pub fn link_by_name(&mut self, name: &str) -> io::Result<Option<Link>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(m, &format!("get link {name}"))
    }

    pub fn link_by_index(&mut self, index: u32) -> io::Result<Option<Link>> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        self.get_link(m, &format!("get link #{index}"))
    }

    /// One link by the name or index in `m`; `None` if there is no such link.
    fn get_link(&mut self, m: LinkMessage, what: &str) -> io::Result<Option<Link>> {
        match self.request(RouteNetlinkMessage::GetLink(m), NLM_F_ACK, what) {
            Ok(v) => Ok(v.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
                _ => None,
            })),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let v = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
            "dump links",
        )?;
        Ok(v.iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
                _ => None,
            })
            .collect())
    }

    /// Create a veth pair `name` <-> `peer` with one queue each way (the
    /// engine binds one socket per queue), the given MTU and, on `name`, MAC.
    pub fn create_veth(
        &mut self,
        name: &str,
        peer: &str,
        mtu: u32,
        mac: MacAddr,
        queues: u32,
    ) -> io::Result<()> {
        let mut p = LinkMessage::default();
        p.attributes.push(LinkAttribute::IfName(peer.to_string()));
        p.attributes.push(LinkAttribute::Mtu(mtu));
        p.attributes.push(LinkAttribute::NumTxQueues(queues));
        p.attributes.push(LinkAttribute::NumRxQueues(queues));
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(LinkAttribute::Mtu(mtu));
        m.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        m.attributes.push(LinkAttribute::NumTxQueues(queues));
        m.attributes.push(LinkAttribute::NumRxQueues(queues));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            NlLinkInfo::Kind(InfoKind::Veth),
            NlLinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("create veth {name}/{peer}"),
        )
        .map(drop)
    }

    pub fn delete_link(&mut self, index: u32) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        self.request(
            RouteNetlinkMessage::DelLink(m),
            NLM_F_ACK,
            &format!("delete link #{index}"),
        )
        .map(drop)
    }

    fn set(&mut self, index: u32, f: impl FnOnce(&mut LinkMessage), what: &str) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        f(&mut m);
        self.request(RouteNetlinkMessage::SetLink(m), NLM_F_ACK, what)
            .map(drop)
    }

    pub fn set_up(&mut self, index: u32, up: bool) -> io::Result<()> {
        self.set(
            index,
            |m| {
                if up {
                    m.header.flags |= LinkFlags::Up;
                }
                m.header.change_mask |= LinkFlags::Up;
            },
            &format!("set link #{index} {}", if up { "up" } else { "down" }),
        )
    }

    pub fn set_promisc(&mut self, index: u32, on: bool) -> io::Result<()> {
        self.set(
            index,
            |m| {
                if on {
                    m.header.flags |= LinkFlags::Promisc;
                }
                m.header.change_mask |= LinkFlags::Promisc;
            },
            &format!("set link #{index} promisc"),
        )
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> io::Result<()> {
        self.set(
            index,
            |m| m.attributes.push(LinkAttribute::Mtu(mtu)),
            &format!("set link #{index} mtu {mtu}"),
        )
    }

    pub fn set_mac(&mut self, index: u32, mac: MacAddr) -> io::Result<()> {
        self.set(
            index,
            |m| m.attributes.push(LinkAttribute::Address(mac.0.to_vec())),
            &format!("set link #{index} address {mac}"),
        )
    }

    /// Remove an XDP program attached through netlink (by another tool).
    pub fn detach_xdp(&mut self, index: u32, how: XdpAttach) -> io::Result<()> {
        let flags = match how {
            XdpAttach::Generic => 1 << 1,
            XdpAttach::Driver => 1 << 2,
            XdpAttach::Offload => 1 << 3,
            XdpAttach::Multi => 0,
        };
        self.set(
            index,
            |m| {
                m.attributes.push(LinkAttribute::Xdp(vec![
                    LinkXdp::Fd(-1),
                    LinkXdp::Flags(flags),
                ]))
            },
            &format!("detach XDP from link #{index}"),
        )
    }

    /// Every address in the namespace: (ifindex, address, prefix length),
    /// in one dump.
    pub fn all_addresses(&mut self) -> io::Result<Vec<(u32, IpAddr, u8)>> {
        let v = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
            "dump addresses",
        )?;
        let mut out = Vec::new();
        for r in v {
            if let RouteNetlinkMessage::NewAddress(a) = r {
                // IFA_LOCAL is the address of the interface; IFA_ADDRESS is the
                // peer on point-to-point links. Prefer LOCAL.
                let local = a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                });
                let addr = a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                });
                // An IPv6 address still under duplicate address detection
                // is not the interface's yet (not optimistic ones, as the
                // kernel's ndisc_send_unsol_na skips them).
                let flags = a
                    .attributes
                    .iter()
                    .find_map(|x| match x {
                        AddressAttribute::Flags(f) => Some(*f),
                        _ => None,
                    })
                    .unwrap_or_else(|| {
                        AddressFlags::from_bits_truncate(u32::from(a.header.flags.bits()))
                    });
                if flags.contains(AddressFlags::Tentative)
                    && !flags.contains(AddressFlags::Optimistic)
                {
                    continue;
                }
                if let Some(ip) = local.or(addr) {
                    out.push((a.header.index, ip, a.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    pub fn add_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> io::Result<()> {
        let mut m = AddressMessage::default();
        m.header.index = index;
        m.header.prefix_len = prefix;
        m.header.family = if ip.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        if ip.is_ipv4() {
            m.attributes.push(AddressAttribute::Local(ip));
        }
        m.attributes.push(AddressAttribute::Address(ip));
        match self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("add address {ip}/{prefix}"),
        ) {
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()), // already there
            other => other.map(drop),
        }
    }
}

/// Listen for link events (RTMGRP_LINK) until the receiver goes away.
pub fn spawn_link_listener(
    tx: crossbeam::channel::Sender<LinkEvent>,
) -> io::Result<std::thread::JoinHandle<()>> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind(&SocketAddr::new(0, 1))?; // RTMGRP_LINK
    sock.set_rx_buf_sz(4 << 20)?;
    std::thread::Builder::new()
        .name("xbond-netlink".into())
        .spawn(move || loop {
            let data = match sock.recv_from_full() {
                Ok((d, _)) => d,
                Err(e) => {
                    // ENOBUFS: we missed events; the miimon poll catches up.
                    tracing::warn!("netlink link events: {e}");
                    continue;
                }
            };
            let mut off = 0;
            while off < data.len() {
                let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..]) else {
                    break;
                };
                let len = m.header.length as usize;
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
                let ev = match m.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                        LinkEvent::Changed(parse_link(&l))
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                        let p = parse_link(&l);
                        LinkEvent::Removed {
                            index: p.index,
                            name: p.name,
                        }
                    }
                    _ => continue,
                };
                if tx.send(ev).is_err() {
                    return;
                }
            }
        })
}
