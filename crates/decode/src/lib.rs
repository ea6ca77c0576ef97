//! Packet decoding: link layers, VLAN/MPLS/PPPoE/NSH, IPv4/IPv6, TCP/UDP/ICMP and
//! the tunnels a span port or cloud mirror delivers (GRE with ERSPAN I/II/III,
//! VXLAN, Geneve, IP-in-IP, 6in4, Teredo), down to the innermost packet.
//!
//! [`decode`] never panics and never allocates: it returns a [`Decoded`] that
//! holds header fields and byte offsets into the caller's buffer (a zero-copy
//! view), plus the [`DecodeEvent`]s raised on the way, named as Suricata names
//! them. Header parsing of IP, TCP, UDP and ICMP uses `etherparse` slices;
//! encapsulations etherparse does not know are parsed here with explicit
//! length checks.
#![deny(missing_docs)]

mod checksum;
pub use checksum::transport_checksum_ok;
mod events;
mod layers;

pub use events::{DecodeEvent, EventSet};
pub use layers::decode;

use std::net::IpAddr;

/// How a capture frames its packets (pcap link types we decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II (DLT_EN10MB).
    Ethernet,
    /// BSD null/loopback: a 4-byte address family in host byte order
    /// (DLT_NULL) or network byte order (DLT_LOOP).
    Null,
    /// Raw IP, version told by the first nibble (DLT_RAW / LINKTYPE_RAW).
    Raw,
    /// Raw IPv4 only (LINKTYPE_IPV4).
    Ipv4,
    /// Raw IPv6 only (LINKTYPE_IPV6).
    Ipv6,
    /// Linux "cooked" capture v1 (DLT_LINUX_SLL).
    LinuxSll,
    /// Linux "cooked" capture v2 (DLT_LINUX_SLL2).
    LinuxSll2,
}

impl LinkType {
    /// Maps a pcap DLT / LINKTYPE number; `None` for link types not decoded.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        Some(match dlt {
            1 => LinkType::Ethernet,
            0 | 108 => LinkType::Null,
            12 | 14 | 101 => LinkType::Raw,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }
}

/// Kind of encapsulation around the innermost packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelKind {
    /// GRE carrying IP or Ethernet.
    Gre,
    /// GRE carrying ERSPAN type I.
    ErspanI,
    /// GRE carrying ERSPAN type II.
    ErspanII,
    /// GRE carrying ERSPAN type III.
    ErspanIII,
    /// VXLAN (UDP 4789).
    Vxlan,
    /// Geneve (UDP 6081).
    Geneve,
    /// IPv4 in IPv4 or IPv4 in IPv6.
    IpInIp,
    /// IPv6 in IPv4 (6in4) or IPv6 in IPv6.
    Ipv6InIp,
    /// Teredo (IPv6 in UDP 3544).
    Teredo,
}

impl TunnelKind {
    /// Name written in events.
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::Gre => "GRE",
            TunnelKind::ErspanI => "ERSPAN-I",
            TunnelKind::ErspanII => "ERSPAN-II",
            TunnelKind::ErspanIII => "ERSPAN-III",
            TunnelKind::Vxlan => "VXLAN",
            TunnelKind::Geneve => "Geneve",
            TunnelKind::IpInIp => "IPIP",
            TunnelKind::Ipv6InIp => "IPv6-in-IP",
            TunnelKind::Teredo => "Teredo",
        }
    }
}

/// The outermost tunnel of a packet: its kind and the outer IP header's
/// addresses, kept for events (Suricata's `tunnel` object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelInfo {
    /// Outermost encapsulation.
    pub kind: TunnelKind,
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
    /// Outer IP protocol (47 for GRE, 17 for UDP tunnels, 4/41 for IP-in-IP).
    pub proto: u8,
    /// How many encapsulations were peeled off.
    pub depth: u8,
}

/// IPv4/IPv6 fragment information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragInfo {
    /// Identification (IPv4: 16 bits; IPv6: 32 bits).
    pub id: u32,
    /// Offset of this fragment's data in bytes.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
}

/// The innermost IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpInfo {
    /// 4 or 6.
    pub version: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport protocol (after IPv6 extension headers).
    pub proto: u8,
    /// TTL / hop limit.
    pub ttl: u8,
    /// Offset of the IP header in the packet buffer.
    pub offset: u32,
    /// Length of the IP header (IPv6: fixed header plus extension headers).
    pub header_len: u32,
    /// IP payload length per the header (may exceed what was captured).
    pub payload_len: u32,
    /// Set for fragments (offset > 0 or more-fragments).
    pub frag: Option<FragInfo>,
}

/// TCP header fields the flow and stream stages need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpInfo {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flag byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20,
    /// ECE 0x40, CWR 0x80).
    pub flags: u8,
    /// Window (unscaled).
    pub window: u16,
    /// MSS option.
    pub mss: Option<u16>,
    /// Window scale option.
    pub wscale: Option<u8>,
    /// SACK permitted option.
    pub sack_permitted: bool,
    /// A TCP Fast Open option (kind 34, or the experimental 253/254 with
    /// magic 0xF989): data on this SYN is meant for the application.
    pub tfo: bool,
    /// Timestamp option (value, echo reply).
    pub timestamp: Option<(u32, u32)>,
    /// Offset of the payload in the packet buffer.
    pub payload_offset: u32,
    /// Captured payload length.
    pub payload_len: u32,
}

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;
}

/// Transport layer of the innermost packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// No transport header (non-first fragment, unknown protocol, or invalid).
    None,
    /// TCP.
    Tcp(TcpInfo),
    /// UDP (also used for SCTP ports).
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Offset of the payload in the packet buffer.
        payload_offset: u32,
        /// Captured payload length.
        payload_len: u32,
    },
    /// ICMPv4 or ICMPv6.
    Icmp {
        /// Type.
        icmp_type: u8,
        /// Code.
        icmp_code: u8,
        /// Echo id/seq when an echo request/reply.
        echo: Option<(u16, u16)>,
        /// Offset of the data after the 8-byte ICMP header.
        payload_offset: u32,
        /// Captured payload length.
        payload_len: u32,
    },
}

/// Protocol layers seen, for the per-protocol decoder counters.
pub mod layer {
    /// Ethernet.
    pub const ETHERNET: u32 = 1 << 0;
    /// 802.1Q VLAN.
    pub const VLAN: u32 = 1 << 1;
    /// Two or more VLAN tags.
    pub const VLAN_QINQ: u32 = 1 << 2;
    /// MPLS.
    pub const MPLS: u32 = 1 << 3;
    /// PPPoE.
    pub const PPPOE: u32 = 1 << 4;
    /// GRE.
    pub const GRE: u32 = 1 << 5;
    /// ERSPAN.
    pub const ERSPAN: u32 = 1 << 6;
    /// VXLAN.
    pub const VXLAN: u32 = 1 << 7;
    /// Geneve.
    pub const GENEVE: u32 = 1 << 8;
    /// Teredo.
    pub const TEREDO: u32 = 1 << 9;
    /// IPv4 inside IPv6.
    pub const IPV4_IN_IPV6: u32 = 1 << 10;
    /// IPv6 inside IPv4 or IPv6.
    pub const IPV6_IN_IP: u32 = 1 << 11;
    /// IPv4 inside IPv4.
    pub const IPV4_IN_IPV4: u32 = 1 << 12;
    /// Linux SLL / SLL2.
    pub const SLL: u32 = 1 << 13;
    /// BSD null / loopback.
    pub const NULL: u32 = 1 << 14;
    /// Raw IP link type.
    pub const RAW: u32 = 1 << 15;
    /// ARP.
    pub const ARP: u32 = 1 << 16;
    /// IPv4 (any depth).
    pub const IPV4: u32 = 1 << 17;
    /// IPv6 (any depth).
    pub const IPV6: u32 = 1 << 18;
    /// TCP.
    pub const TCP: u32 = 1 << 19;
    /// UDP.
    pub const UDP: u32 = 1 << 20;
    /// ICMPv4.
    pub const ICMPV4: u32 = 1 << 21;
    /// ICMPv6.
    pub const ICMPV6: u32 = 1 << 22;
    /// SCTP.
    pub const SCTP: u32 = 1 << 23;
    /// IPv4/IPv6 fragment.
    pub const FRAG: u32 = 1 << 24;
    /// NSH (Network Service Header).
    pub const NSH: u32 = 1 << 25;
    /// Counter names, in bit order, as Suricata's `decoder.*` stats name them.
    pub const NAMES: &[&str] = &[
        "ethernet",
        "vlan",
        "vlan_qinq",
        "mpls",
        "pppoe",
        "gre",
        "erspan",
        "vxlan",
        "geneve",
        "teredo",
        "ipv4_in_ipv6",
        "ipv6_in_ipv6",
        "ipv4_in_ipv4",
        "sll",
        "null",
        "raw",
        "arp",
        "ipv4",
        "ipv6",
        "tcp",
        "udp",
        "icmpv4",
        "icmpv6",
        "sctp",
        "frag",
        "nsh",
    ];
}

/// Everything decoding found out about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Innermost IP header, if any was decoded.
    pub ip: Option<IpInfo>,
    /// Innermost transport header.
    pub transport: Transport,
    /// VLAN ids, outermost first (0 = none).
    pub vlan: [u16; 2],
    /// Outermost tunnel, if the packet was encapsulated.
    pub tunnel: Option<TunnelInfo>,
    /// Layers seen ([`layer`] bits).
    pub layers: u32,
    /// Decoder events raised.
    pub events: EventSet,
    /// Set when an event made the packet unusable: it joins no flow.
    pub invalid: bool,
}

impl Decoded {
    fn new() -> Self {
        Decoded {
            ip: None,
            transport: Transport::None,
            vlan: [0; 2],
            tunnel: None,
            layers: 0,
            events: EventSet::default(),
            invalid: false,
        }
    }

    /// Where the transport payload is in the decoded buffer: (offset, length);
    /// (0, 0) without a transport layer. The decoder keeps it inside the
    /// buffer (the fuzz target and the fixture tests check that).
    pub fn payload_range(&self) -> (usize, usize) {
        let (off, len) = match self.transport {
            Transport::Tcp(t) => (t.payload_offset, t.payload_len),
            Transport::Udp {
                payload_offset,
                payload_len,
                ..
            }
            | Transport::Icmp {
                payload_offset,
                payload_len,
                ..
            } => (payload_offset, payload_len),
            Transport::None => (0, 0),
        };
        (off as usize, len as usize)
    }

    /// The transport payload in `data`, the buffer this packet was decoded
    /// from (empty without a transport layer, or when `data` is another
    /// buffer too short for the offsets).
    pub fn payload<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        let (off, len) = self.payload_range();
        data.get(off..off.saturating_add(len)).unwrap_or(&[])
    }

    /// The flow tuple of this packet, when it has a usable IP header. Every
    /// IP protocol has one (the flow table tracks them all, e.g. for the
    /// anomaly detectors); [`ip_proto_has_flow`] says which ones are flows
    /// to signatures and in flow records.
    ///
    /// ICMP maps type/code to ports the way Community ID v1 does, so an echo
    /// request and its reply land in the same flow. Fragments have ports 0.
    pub fn flow_tuple(&self) -> Option<zonewatch_types::FlowTuple> {
        if self.invalid {
            return None;
        }
        let ip = self.ip?;
        let (sport, dport) = match self.transport {
            // Until defragmentation, every fragment of a datagram joins one
            // address-pair flow: later fragments carry no ports.
            _ if ip.frag.is_some() => (0, 0),
            Transport::Tcp(t) => (t.sport, t.dport),
            Transport::Udp { sport, dport, .. } => (sport, dport),
            Transport::Icmp {
                icmp_type,
                icmp_code,
                ..
            } => icmp_ports(ip.version, icmp_type, icmp_code),
            Transport::None => (0, 0),
        };
        Some(zonewatch_types::FlowTuple {
            src: ip.src,
            dst: ip.dst,
            sport,
            dport,
            proto: ip.proto,
            vlan: self.vlan,
        })
    }
}

/// Whether packets of IP protocol `proto` (innermost header, IP `version`)
/// make a flow as Suricata 7 sees flows: only its TCP, UDP, ICMP, ICMPv6,
/// SCTP, GRE and ESP decoders and IP-in-IP tunnels set a packet up for the
/// flow engine. IGMP, OSPF, PIM, VRRP, ... packets are inspected by
/// signatures without a flow and get no flow record (zonewatch still tracks
/// them internally for the anomaly detectors).
pub fn ip_proto_has_flow(version: u8, proto: u8) -> bool {
    match proto {
        6 | 17 | 47 | 50 | 132 | 4 | 41 => true,
        1 => version == 4,
        58 => version == 6,
        _ => false,
    }
}

/// Community ID v1's mapping of ICMP type/code to a port pair: for message
/// types that come in request/response pairs, the "destination port" is the
/// counterpart type, so both directions give the same flow.
pub fn icmp_ports(version: u8, icmp_type: u8, code: u8) -> (u16, u16) {
    let counterpart = if version == 4 {
        match icmp_type {
            8 => Some(0),
            0 => Some(8),
            13 => Some(14),
            14 => Some(13),
            15 => Some(16),
            16 => Some(15),
            10 => Some(9),
            9 => Some(10),
            17 => Some(18),
            18 => Some(17),
            _ => None,
        }
    } else {
        match icmp_type {
            128 => Some(129),
            129 => Some(128),
            133 => Some(134),
            134 => Some(133),
            135 => Some(136),
            136 => Some(135),
            130 => Some(131),
            131 => Some(130),
            144 => Some(145),
            145 => Some(144),
            146 => Some(147),
            147 => Some(146),
            _ => None,
        }
    };
    match counterpart {
        Some(c) => (icmp_type as u16, c as u16),
        None => (icmp_type as u16, code as u16),
    }
}

/// Whether an ICMP type/code pair is one-way in Community ID's sense (no
/// counterpart type): such flows are not ordered by endpoint.
pub fn icmp_is_one_way(version: u8, icmp_type: u8) -> bool {
    let (_, d) = icmp_ports(version, icmp_type, 0);
    let (_, d2) = icmp_ports(version, icmp_type, 1);
    d != d2
}
