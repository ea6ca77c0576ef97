//! Plain types shared by every zonewatch crate: packet time, the flow tuple,
//! the ordering key that makes file-mode output deterministic, and the
//! events that detection stages hand to the output stage.
//!
//! Nothing here does I/O or allocates on the packet path; the crate only
//! names things so that the stages above it agree on them.
#![deny(missing_docs)]

pub mod event;
pub mod time;

pub use event::{AddrInfo, AnomalyRecord, Event, EventBody, EventKey, FlowRecord, TcpRecord};
pub use time::{Timestamp, UtcOffset};

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

/// The protocol name written in events, as Suricata's EVE writes it:
/// a name for the common protocols, otherwise the decimal number.
pub fn proto_name(proto: u8) -> std::borrow::Cow<'static, str> {
    match proto {
        ipproto::TCP => "TCP".into(),
        ipproto::UDP => "UDP".into(),
        ipproto::ICMP => "ICMP".into(),
        ipproto::ICMPV6 => "IPv6-ICMP".into(),
        ipproto::SCTP => "SCTP".into(),
        ipproto::GRE => "GRE".into(),
        n => n.to_string().into(),
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
