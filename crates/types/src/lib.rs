//! Plain types shared by every zonewatch crate: packet time, the flow tuple,
//! the ordering key that makes file-mode output deterministic (with the one
//! table of its `sub` ranges, [`EventKey`]), the events that detection
//! stages hand to the output stage, and the zones with the one lookup of an
//! address's zone ([`ZoneMap`]: the configuration builds it, the zone-policy
//! detector and the EVE renderer use it).
//!
//! Nothing here does I/O or allocates on the packet path; the crate only
//! names things so that the stages above it agree on them.
#![deny(missing_docs)]

pub mod event;
pub mod time;
mod zones;

pub use event::{
    AddrInfo, AlertBytes, AlertRecord, AnomalyRecord, AppRecord, Event, EventBody, EventKey,
    FlowRecord, TcpRecord,
};
pub use time::{Timestamp, UtcOffset};
pub use zones::ZoneMap;

#[cfg(test)]
mod tests {
    #[test]
    fn proto_names_as_suricata_writes_them() {
        assert_eq!(super::proto_name(6), "TCP");
        assert_eq!(super::proto_name(2), "IGMP");
        assert_eq!(super::proto_name(58), "IPv6-ICMP");
        assert_eq!(super::proto_name(132), "SCTP");
        assert_eq!(super::proto_name(200), "200");
    }
}

use std::net::IpAddr;

/// IP protocol numbers the sensor treats specially.
pub mod ipproto {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// GRE.
    pub const GRE: u8 = 47;
}

/// Protocol names as Suricata 7 writes them in EVE `proto` (IANA keywords,
/// numbers 0-143); higher numbers are written as decimal.
const PROTO_NAMES: [&str; 144] = [
    "HOPOPT",
    "ICMP",
    "IGMP",
    "GGP",
    "IP-in-IP",
    "ST",
    "TCP",
    "CBT",
    "EGP",
    "IGP",
    "BBN-RCC-MON",
    "NVP-II",
    "PUP",
    "ARGUS",
    "EMCON",
    "XNET",
    "CHAOS",
    "UDP",
    "MUX",
    "DCN-MEAS",
    "HMP",
    "PRM",
    "XNS-IDP",
    "TRUNK-1",
    "TRUNK-2",
    "LEAF-1",
    "LEAF-2",
    "RDP",
    "IRTP",
    "ISO-TP4",
    "NETBLT",
    "MFE-NSP",
    "MERIT-INP",
    "DCCP",
    "3PC",
    "IDPR",
    "XTP",
    "DDP",
    "IDPR-CMTP",
    "TP++",
    "IL",
    "IPv6",
    "SDRP",
    "IPv6-Route",
    "IPv6-Frag",
    "IDRP",
    "RSVP",
    "GRE",
    "DSR",
    "BNA",
    "ESP",
    "AH",
    "I-NLSP",
    "SwIPe",
    "NARP",
    "MOBILE",
    "TLSP",
    "SKIP",
    "IPv6-ICMP",
    "IPv6-NoNxt",
    "IPv6-Opts",
    "Any",
    "CFTP",
    "Any",
    "SAT-EXPAK",
    "KRYPTOLAN",
    "RVD",
    "IPPC",
    "Any",
    "SAT-MON",
    "VISA",
    "IPCU",
    "CPNX",
    "CPHB",
    "WSN",
    "PVP",
    "BR-SAT-MON",
    "SUN-ND",
    "WB-MON",
    "WB-EXPAK",
    "ISO-IP",
    "VMTP",
    "SECURE-VMTP",
    "VINES",
    "TTP",
    "NSFNET-IGP",
    "DGP",
    "TCF",
    "EIGRP",
    "OSPF",
    "Sprite-RPC",
    "LARP",
    "MTP",
    "AX.25",
    "OS",
    "MICP",
    "SCC-SP",
    "ETHERIP",
    "ENCAP",
    "Any",
    "GMTP",
    "IFMP",
    "PNNI",
    "PIM",
    "ARIS",
    "SCPS",
    "QNX",
    "A/N",
    "IPComp",
    "SNP",
    "Compaq-Peer",
    "IPX-in-IP",
    "VRRP",
    "PGM",
    "Any",
    "L2TP",
    "DDX",
    "IATP",
    "STP",
    "SRP",
    "UTI",
    "SMP",
    "SM",
    "PTP",
    "IS-IS",
    "FIRE",
    "CRTP",
    "CRUDP",
    "SSCOPMCE",
    "IPLT",
    "SPS",
    "PIPE",
    "SCTP",
    "FC",
    "RSVP-E2E-IGNORE",
    "Mobility",
    "UDPLite",
    "MPLS-in-IP",
    "manet",
    "HIP",
    "Shim6",
    "WESP",
    "ROHC",
    "Ethernet",
];

/// The protocol name written in events, as Suricata's EVE writes it.
pub fn proto_name(proto: u8) -> std::borrow::Cow<'static, str> {
    match PROTO_NAMES.get(proto as usize) {
        Some(n) => (*n).into(),
        None => proto.to_string().into(),
    }
}

/// The 5-tuple (plus VLAN ids) that identifies a flow, as seen on one packet.
///
/// `src`/`dst` are the packet's own direction; [`FlowTuple::canonical`] gives the
/// direction-independent form used as a hash-table key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowTuple {
    /// Source address of the packet.
    pub src: IpAddr,
    /// Destination address of the packet.
    pub dst: IpAddr,
    /// Source port (ICMP: type; other protocols: 0).
    pub sport: u16,
    /// Destination port (ICMP: code; other protocols: 0).
    pub dport: u16,
    /// IP protocol number of the transport layer.
    pub proto: u8,
    /// Up to two VLAN ids, outermost first (0 = none). Part of the flow identity
    /// so that the same addresses in two VLANs stay two flows.
    pub vlan: [u16; 2],
}

impl FlowTuple {
    /// The tuple with its endpoints ordered (lower address/port first), and
    /// whether the packet's direction was swapped to get there.
    pub fn canonical(&self) -> (FlowTuple, bool) {
        if (self.src, self.sport) <= (self.dst, self.dport) {
            (*self, false)
        } else {
            (self.reversed(), true)
        }
    }

    /// The same flow seen from the other side.
    pub fn reversed(&self) -> FlowTuple {
        FlowTuple {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..*self
        }
    }
}

/// Direction of a packet relative to the flow it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the endpoint that sent the flow's first packet.
    ToServer,
    /// Towards the endpoint that sent the flow's first packet.
    ToClient,
}
