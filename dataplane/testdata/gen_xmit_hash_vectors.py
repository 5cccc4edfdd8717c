#!/usr/bin/env python3
"""Writes xmit_hash_vectors.txt: frames and the hash Linux's bond_xmit_hash()
gives them, with the arithmetic written out.

This is a second, independent implementation of the kernel formula: it does not
parse the frames it builds; it computes each hash from the fields it put in
(addresses, ports, ICMP id, ...) by the steps in drivers/net/bonding/bond_main.c
(bond_eth_hash, bond_vlan_srcmac_hash, bond_ip_hash) as they run on a
little-endian host. The Rust tests parse the frames and must arrive at the same
numbers.

Run: python3 dataplane/testdata/gen_xmit_hash_vectors.py > dataplane/testdata/xmit_hash_vectors.txt
"""
import ipaddress
import struct

HOST = "02:00:00:00:00:01"
PEER = "02:00:00:00:00:0a"


def mac(m):
    return bytes(int(x, 16) for x in m.split(":"))


def le32(b):
    """The kernel copies these 4 bytes into a u32 on a little-endian host."""
    return struct.unpack("<I", b)[0]


def ip4(a):
    return ipaddress.IPv4Address(a).packed


def ip6(a):
    return ipaddress.IPv6Address(a).packed


def fold6(a):
    b = ip6(a)
    return le32(b[0:4]) ^ le32(b[4:8]) ^ le32(b[8:12]) ^ le32(b[12:16])


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def eth(dst, src, etype, payload, tag=None):
    h = mac(dst) + mac(src)
    if tag is not None:
        tpid, tci = tag
        h += struct.pack("!HH", tpid, tci)
    return h + struct.pack("!H", etype) + payload


def ipv4(src, dst, proto, payload, frag=0, ident=1):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0, ip4(src), ip4(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def ipv6(src, dst, nh, payload):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, 64, ip6(src), ip6(dst)) + payload


def udp(sport, dport, data=b"xbond"):
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def tcp(sport, dport):
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x02, 65535, 0, 0)


def icmp(ty, code, ident=0, seq=0, rest=b""):
    if ty in (0, 8, 13, 14, 128, 129):
        return struct.pack("!BBHHH", ty, code, 0, ident, seq) + rest
    return struct.pack("!BBHI", ty, code, 0, 0) + rest


OUT = []


def hx(x, w=8):
    return "0x%0*x" % (w, x)


def vector(name, policy, frame, steps, result, tci=None):
    OUT.append("")
    OUT.append("[%s]" % name)
    for s in steps:
        OUT.append("# " + s)
    OUT.append("policy = %s" % policy)
    if tci is not None:
        OUT.append("tci = 0x%04x" % tci)
    OUT.append("frame = " + frame.hex())
    OUT.append("hash = " + hx(result))


def eth_hash(dst, src, etype, steps):
    v = mac(dst)[5] ^ mac(src)[5] ^ etype
    steps.append("eth: dst[5] %s ^ src[5] %s ^ type %s = %s" % (hx(mac(dst)[5], 2), hx(mac(src)[5], 2), hx(etype, 4), hx(v)))
    return v


def fold(start, src_word, dst_word, l34, steps):
    h = start ^ dst_word ^ src_word
    steps.append("%s ^ dst %s ^ src %s = %s" % (hx(start), hx(dst_word), hx(src_word), hx(h)))
    h2 = h ^ (h >> 16)
    h3 = h2 ^ (h2 >> 8)
    steps.append("h ^= h >> 16 -> %s; h ^= h >> 8 -> %s" % (hx(h2), hx(h3)))
    if l34:
        steps.append("h >> 1 -> %s" % hx(h3 >> 1))
        return h3 >> 1
    return h3


def ports_word(sport, dport, steps):
    b = struct.pack("!HH", sport, dport)
    v = le32(b)
    steps.append("ports %d > %d: bytes %s as a little-endian u32 = %s" % (sport, dport, b.hex(" "), hx(v)))
    return v


def addr4(a, which, steps):
    v = le32(ip4(a))
    steps.append("%s %s: bytes %s as a little-endian u32 = %s" % (which, a, ip4(a).hex(" "), hx(v)))
    return v


def addr6(a, which, steps):
    b = ip6(a)
    words = [le32(b[i:i + 4]) for i in range(0, 16, 4)]
    v = words[0] ^ words[1] ^ words[2] ^ words[3]
    steps.append("%s %s: words %s XORed = %s" % (which, a, " ^ ".join(hx(w) for w in words), hx(v)))
    return v


def icmp_word(ty, code, ident, steps):
    ident = ident or 1
    v = ty | (code << 8) | (ident << 16)
    steps.append("icmp type %d code %d id %d: type | code << 8 | id << 16 = %s" % (ty, code, ident, hx(v)))
    return v


A, B = "198.18.0.1", "198.18.0.2"
A6, B6 = "2001:db8::1", "2001:db8:0:1::2"

# --- layer2 -------------------------------------------------------------
s = []
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 17, udp(1234, 80)))
vector("layer2-ipv4-udp", "layer2", f, s, eth_hash(PEER, HOST, 0x0800, s))

s = []
f = eth("ff:ff:ff:ff:ff:ff", HOST, 0x0806, bytes(28))
vector("layer2-arp", "layer2", f, s, eth_hash("ff:ff:ff:ff:ff:ff", HOST, 0x0806, s))

s = ["an 802.1Q tag is out of band: the type hashed is the encapsulated one"]
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 17, udp(1234, 80)), tag=(0x8100, 0x0057))
vector("layer2-vlan87-ipv4", "layer2", f, s, eth_hash(PEER, HOST, 0x0800, s))

# --- layer2+3 -----------------------------------------------------------
s = []
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 6, tcp(40000, 443)))
e = eth_hash(PEER, HOST, 0x0800, s)
vector("layer23-ipv4-tcp", "layer2+3", f, s, fold(e, addr4(A, "src", s), addr4(B, "dst", s), False, s))

s = []
f = eth(PEER, HOST, 0x86DD, ipv6(A6, B6, 17, udp(5000, 53)))
e = eth_hash(PEER, HOST, 0x86DD, s)
vector("layer23-ipv6-udp", "layer2+3", f, s, fold(e, addr6(A6, "src", s), addr6(B6, "dst", s), False, s))

s = ["ARP is not IP: bond_flow_dissect fails and the hash is bond_eth_hash alone"]
f = eth("ff:ff:ff:ff:ff:ff", HOST, 0x0806, bytes(28))
vector("layer23-arp", "layer2+3", f, s, eth_hash("ff:ff:ff:ff:ff:ff", HOST, 0x0806, s))

s = ["ICMP error: the addresses are those of the quoted packet (10.9.8.7 > 198.18.0.1)"]
quoted = ipv4("10.9.8.7", A, 17, udp(53, 33434, b""))
f = eth(PEER, HOST, 0x0800, ipv4(B, "10.9.8.7", 1, icmp(3, 3, rest=quoted)))
e = eth_hash(PEER, HOST, 0x0800, s)
vector("layer23-icmp-unreachable", "layer2+3", f, s, fold(e, addr4("10.9.8.7", "inner src", s), addr4(A, "inner dst", s), False, s))

# --- layer3+4 -----------------------------------------------------------
s = []
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 17, udp(1234, 80)))
p = ports_word(1234, 80, s)
vector("layer34-ipv4-udp", "layer3+4", f, s, fold(p, addr4(A, "src", s), addr4(B, "dst", s), True, s))

s = []
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 6, tcp(40000, 443)))
p = ports_word(40000, 443, s)
vector("layer34-ipv4-tcp", "layer3+4", f, s, fold(p, addr4(A, "src", s), addr4(B, "dst", s), True, s))

s = ["the even-port pattern: ports 1000 and 1002 differ only in bits the fold keeps"]
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 17, udp(1002, 80)))
p = ports_word(1002, 80, s)
vector("layer34-ipv4-udp-even", "layer3+4", f, s, fold(p, addr4(A, "src", s), addr4(B, "dst", s), True, s))

s = []
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 1, icmp(8, 0, 0x1234, 7)))
w = icmp_word(8, 0, 0x1234, s)
vector("layer34-icmp-echo", "layer3+4", f, s, fold(w, addr4(A, "src", s), addr4(B, "dst", s), True, s))

s = ["echo id 0 is keyed as id 1 (0 means 'no id' to the dissector)"]
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 1, icmp(0, 0, 0, 1)))
w = icmp_word(0, 0, 0, s)
vector("layer34-icmp-echo-id0", "layer3+4", f, s, fold(w, addr4(A, "src", s), addr4(B, "dst", s), True, s))

s = ["ICMP error quoting a UDP packet: inner addresses and inner ports"]
quoted = ipv4("10.9.8.7", A, 17, udp(53, 33434, b""))
f = eth(PEER, HOST, 0x0800, ipv4(B, "10.9.8.7", 1, icmp(3, 3, rest=quoted)))
p = ports_word(53, 33434, s)
vector("layer34-icmp-unreachable", "layer3+4", f, s, fold(p, addr4("10.9.8.7", "inner src", s), addr4(A, "inner dst", s), True, s))

s = ["first fragment (MF set): ip_is_fragment, so no protocol and no ports"]
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 17, udp(1234, 80), frag=0x2000))
vector("layer34-ipv4-first-fragment", "layer3+4", f, s, fold(0, addr4(A, "src", s), addr4(B, "dst", s), True, s))

s = ["later fragment (offset 185): no ports"]
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 17, b"payload-bytes", frag=185))
vector("layer34-ipv4-later-fragment", "layer3+4", f, s, fold(0, addr4(A, "src", s), addr4(B, "dst", s), True, s))

s = []
f = eth(PEER, HOST, 0x86DD, ipv6(A6, B6, 6, tcp(40000, 443)))
p = ports_word(40000, 443, s)
vector("layer34-ipv6-tcp", "layer3+4", f, s, fold(p, addr6(A6, "src", s), addr6(B6, "dst", s), True, s))

s = []
f = eth(PEER, HOST, 0x86DD, ipv6(A6, B6, 58, icmp(128, 0, 0x4242, 1)))
w = icmp_word(128, 0, 0x4242, s)
vector("layer34-icmpv6-echo", "layer3+4", f, s, fold(w, addr6(A6, "src", s), addr6(B6, "dst", s), True, s))

s = ["IPv6 fragment header (next header 44): not a port protocol, ports 0"]
frag = struct.pack("!BBHI", 17, 0, 0x0001, 99) + udp(1234, 80)
f = eth(PEER, HOST, 0x86DD, ipv6(A6, B6, 44, frag))
vector("layer34-ipv6-fragment", "layer3+4", f, s, fold(0, addr6(A6, "src", s), addr6(B6, "dst", s), True, s))

s = ["hop-by-hop options (next header 0) are not walked by bond_flow_ip: ports 0"]
hbh = struct.pack("!BB6s", 17, 0, bytes(6)) + udp(1234, 80)
f = eth(PEER, HOST, 0x86DD, ipv6(A6, B6, 0, hbh))
vector("layer34-ipv6-hopopts", "layer3+4", f, s, fold(0, addr6(A6, "src", s), addr6(B6, "dst", s), True, s))

s = ["802.1Q tag out of band: same keys as the untagged frame"]
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 17, udp(1234, 80)), tag=(0x8100, 0x2057))
p = ports_word(1234, 80, s)
vector("layer34-vlan87-ipv4-udp", "layer3+4", f, s, fold(p, addr4(A, "src", s), addr4(B, "dst", s), True, s))

s = ["QinQ: the outer 802.1ad tag is out of band, the inner 802.1Q tag is data,", "so skb->protocol is 0x8100: not IP, layer2 hash with type 0x8100"]
f = eth(PEER, HOST, 0x8100, struct.pack("!HH", 0x0057, 0x0800) + ipv4(A, B, 17, udp(1234, 80)), tag=(0x88A8, 0x0064))
vector("layer34-qinq", "layer3+4", f, s, eth_hash(PEER, HOST, 0x8100, s))

s = ["a frame shorter than an Ethernet header hashes to 0"]
vector("layer34-runt", "layer3+4", mac(PEER) + mac(HOST)[:4], s, 0)

# --- encap2+3 / encap3+4 --------------------------------------------------
s = ["plain IPv4/UDP: the full dissector finds the same keys as layer3+4"]
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 17, udp(1234, 80)))
p = ports_word(1234, 80, s)
vector("encap34-ipv4-udp", "encap3+4", f, s, fold(p, addr4(A, "src", s), addr4(B, "dst", s), True, s))

s = ["ARP: the full dissector stops 'good' with no addresses, so the eth hash is folded"]
f = eth("ff:ff:ff:ff:ff:ff", HOST, 0x0806, bytes(28))
e = eth_hash("ff:ff:ff:ff:ff:ff", HOST, 0x0806, s)
vector("encap23-arp", "encap2+3", f, s, fold(e, 0, 0, False, s))

s = ["VXLAN (UDP 4789): the dissector does not look into UDP tunnels; outer keys"]
inner = eth("02:00:00:00:99:02", "02:00:00:00:99:01", 0x0800, ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1111, 2222)))
vx = struct.pack("!II", 0x08000000, 42 << 8) + inner
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 17, udp(51000, 4789, vx)))
p = ports_word(51000, 4789, s)
vector("encap34-vxlan", "encap3+4", f, s, fold(p, addr4(A, "src", s), addr4(B, "dst", s), True, s))

s = ["GRE (protocol 0x0800, key present): inner addresses and inner TCP ports"]
gre = struct.pack("!HHI", 0x2000, 0x0800, 7) + ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1111, 2222))
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 47, gre))
p = ports_word(1111, 2222, s)
vector("encap34-gre-ipv4-tcp", "encap3+4", f, s, fold(p, addr4("10.0.0.1", "inner src", s), addr4("10.0.0.2", "inner dst", s), True, s))

s = ["GRE with an Ethernet payload (0x6558): the outer eth hash starts, inner addresses fold in"]
gre = struct.pack("!HH", 0x0000, 0x6558) + eth("02:00:00:00:99:02", "02:00:00:00:99:01", 0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(7, 9)))
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 47, gre))
e = eth_hash(PEER, HOST, 0x0800, s)
vector("encap23-gretap", "encap2+3", f, s, fold(e, addr4("10.0.0.1", "inner src", s), addr4("10.0.0.2", "inner dst", s), False, s))

s = ["IP-in-IP: inner addresses and ports"]
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 4, ipv4("10.0.0.1", "10.0.0.2", 17, udp(5353, 5353))))
p = ports_word(5353, 5353, s)
vector("encap34-ipip-udp", "encap3+4", f, s, fold(p, addr4("10.0.0.1", "inner src", s), addr4("10.0.0.2", "inner dst", s), True, s))

s = ["IPv6 in IPv4 (protocol 41): inner IPv6 addresses, folded"]
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 41, ipv6(A6, B6, 17, udp(1234, 80))))
p = ports_word(1234, 80, s)
vector("encap34-6in4-udp", "encap3+4", f, s, fold(p, addr6(A6, "inner src", s), addr6(B6, "inner dst", s), True, s))

s = ["a fragment ends the dissection: addresses, no ports"]
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 17, udp(1234, 80), frag=0x2000))
vector("encap34-ipv4-fragment", "encap3+4", f, s, fold(0, addr4(A, "src", s), addr4(B, "dst", s), True, s))

s = ["the full dissector walks hop-by-hop options to the UDP ports"]
hbh = struct.pack("!BB6s", 17, 0, bytes(6)) + udp(1234, 80)
f = eth(PEER, HOST, 0x86DD, ipv6(A6, B6, 0, hbh))
p = ports_word(1234, 80, s)
vector("encap34-ipv6-hopopts-udp", "encap3+4", f, s, fold(p, addr6(A6, "src", s), addr6(B6, "dst", s), True, s))

s = ["QinQ: the full dissector steps over the inner tag to IPv4"]
f = eth(PEER, HOST, 0x8100, struct.pack("!HH", 0x0057, 0x0800) + ipv4(A, B, 17, udp(1234, 80)), tag=(0x88A8, 0x0064))
p = ports_word(1234, 80, s)
vector("encap34-qinq-ipv4-udp", "encap3+4", f, s, fold(p, addr4(A, "src", s), addr4(B, "dst", s), True, s))

s = ["ICMP echo under encap3+4: the ICMP key replaces the ports"]
f = eth(PEER, HOST, 0x0800, ipv4(A, B, 1, icmp(8, 0, 0x1234, 7)))
w = icmp_word(8, 0, 0x1234, s)
vector("encap34-icmp-echo", "encap3+4", f, s, fold(w, addr4(A, "src", s), addr4(B, "dst", s), True, s))

# --- vlan+srcmac --------------------------------------------------------
def srcmac(src, tci, s):
    m = mac(src)
    vendor = (m[0] << 16) | (m[1] << 8) | m[2]
    dev = (m[3] << 16) | (m[4] << 8) | m[5]
    v = tci ^ vendor ^ dev
    s.append("tci %s ^ oui %s ^ nic %s = %s" % (hx(tci, 4), hx(vendor, 6), hx(dev, 6), hx(v)))
    return v


s = ["untagged: tci 0"]
f = eth(PEER, "10:e7:c6:16:aa:bb", 0x0800, ipv4(A, B, 17, udp(1234, 80)))
vector("vlansrcmac-untagged", "vlan+srcmac", f, s, srcmac("10:e7:c6:16:aa:bb", 0, s))

s = ["tagged in the frame, priority 1 VID 87: the whole TCI is hashed"]
f = eth(PEER, "10:e7:c6:16:aa:bb", 0x0800, ipv4(A, B, 17, udp(1234, 80)), tag=(0x8100, 0x2057))
vector("vlansrcmac-vlan87-pcp1", "vlan+srcmac", f, s, srcmac("10:e7:c6:16:aa:bb", 0x2057, s))

s = ["untagged frame with an out-of-band tag (a VLAN sub-interface's frame)"]
f = eth(PEER, "10:e7:c6:16:aa:bb", 0x0800, ipv4(A, B, 17, udp(1234, 80)))
vector("vlansrcmac-out-of-band", "vlan+srcmac", f, s, srcmac("10:e7:c6:16:aa:bb", 0x0057, s), tci=0x0057)

print("# Linux bond_xmit_hash() vectors for a little-endian host.")
print("# Written by gen_xmit_hash_vectors.py from the fields it put in each frame;")
print("# the lines starting with '#' in each section are the kernel's arithmetic.")
print("\n".join(OUT))
