//! Observations: what the pipeline tells the detectors. Plain data, no references into
//! packet buffers, so they can be copied to another thread.

use std::net::IpAddr;
use zonewatch_types::{ipproto, Direction, Timestamp};

/// TCP flag bits (as in the TCP header).
pub struct TcpFlags;
#[allow(missing_docs)]
impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// Decoder events seen on a packet (the decoder keeps at most 4), by Suricata rule name
/// without the `decoder.` prefix (`tcp.hlen_too_small`): `DecodeEvent::rule_name()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecoderEvents {
    names: [&'static str; 4],
    len: u8,
}

impl DecoderEvents {
    /// Adds an event name; beyond 4 the name is dropped (as the decoder does).
    pub fn push(&mut self, name: &'static str) {
        if (self.len as usize) < self.names.len() {
            self.names[self.len as usize] = name;
            self.len += 1;
        }
    }
    /// The names, in the order pushed.
    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.names[..self.len as usize].iter().copied()
    }
    /// Whether no event was seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One packet, as the flow stage sees it.
///
/// `flow_pkts_toserver`/`flow_pkts_toclient` are the flow's packet counts *including this
/// packet*; from them the detectors tell a flow's first packet (1/0, to server) and its first
/// reply (to client, `flow_pkts_toclient == 1`) without keeping per-flow state of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketObs {
    /// Packet time.
    pub ts: Timestamp,
    /// Source address of this packet.
    pub src: IpAddr,
    /// Destination address of this packet.
    pub dst: IpAddr,
    /// Source port (0 when none).
    pub sport: u16,
    /// Destination port (0 when none).
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
    /// TCP flags (0 when not TCP).
    pub tcp_flags: u8,
    /// IP length (header + payload) or wire length; used for byte counts.
    pub ip_len: u32,
    /// IPv4 TTL / IPv6 hop limit.
    pub ttl: u8,
    /// ICMP type and code when ICMP/ICMPv6.
    pub icmp: Option<(u8, u8)>,
    /// Direction within the flow.
    pub direction: Direction,
    /// Packets seen to the server so far in this flow, this one included.
    pub flow_pkts_toserver: u32,
    /// Packets seen to the client so far in this flow, this one included.
    pub flow_pkts_toclient: u32,
    /// Decoder events raised on this packet.
    pub decoder_events: DecoderEvents,
    /// IP fragments this packet was reassembled from (1: not fragmented).
    pub fragments: u32,
}

impl PacketObs {
    /// A packet with the given endpoints and everything else zero (tests, tools).
    pub fn new(ts: Timestamp, src: IpAddr, dst: IpAddr, proto: u8) -> Self {
        PacketObs {
            ts,
            src,
            dst,
            sport: 0,
            dport: 0,
            proto,
            tcp_flags: 0,
            ip_len: 0,
            ttl: 64,
            icmp: None,
            direction: Direction::ToServer,
            flow_pkts_toserver: 1,
            flow_pkts_toclient: 0,
            decoder_events: DecoderEvents::default(),
            fragments: 1,
        }
    }
    /// The flow's first packet.
    pub fn is_first(&self) -> bool {
        self.direction == Direction::ToServer
            && self.flow_pkts_toserver == 1
            && self.flow_pkts_toclient == 0
    }
    /// The first packet of the flow's reply direction.
    pub fn is_first_reply(&self) -> bool {
        self.direction == Direction::ToClient && self.flow_pkts_toclient == 1
    }
    /// ICMP "destination unreachable" (v4 type 3, v6 type 1).
    pub fn is_icmp_unreachable(&self) -> bool {
        matches!(
            (self.proto, self.icmp),
            (ipproto::ICMP, Some((3, _))) | (ipproto::ICMPV6, Some((1, _)))
        )
    }
    /// ICMP echo request (v4 8, v6 128).
    pub fn is_icmp_echo_request(&self) -> bool {
        matches!(
            (self.proto, self.icmp),
            (ipproto::ICMP, Some((8, _))) | (ipproto::ICMPV6, Some((128, _)))
        )
    }
}

/// A flow that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowEndObs {
    /// Client (sent the first packet).
    pub src: IpAddr,
    /// Server.
    pub dst: IpAddr,
    /// Client port.
    pub sport: u16,
    /// Server port.
    pub dport: u16,
    /// IP protocol.
    pub proto: u8,
    /// First packet time.
    pub start: Timestamp,
    /// Last packet time (the end observation's time).
    pub end: Timestamp,
    /// Packets client → server.
    pub pkts_toserver: u64,
    /// Packets server → client.
    pub pkts_toclient: u64,
    /// Bytes client → server.
    pub bytes_toserver: u64,
    /// Bytes server → client.
    pub bytes_toclient: u64,
    /// TCP flags seen, both directions OR-ed (0 for other protocols).
    pub tcp_flags: u8,
    /// Whether the TCP handshake completed (always false for other protocols).
    pub established: bool,
}

/// One DNS message (a query or a response) from the DNS parser: the app
/// layer's typed observation, sizes as received on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsObs<'a> {
    /// Message time.
    pub ts: Timestamp,
    /// The client (sender of queries, receiver of answers).
    pub client: IpAddr,
    /// The server.
    pub server: IpAddr,
    /// IP protocol of the message's flow (17 UDP, 6 TCP).
    pub proto: u8,
    /// Query name as in the question, without the trailing dot.
    pub qname: &'a str,
    /// Query type (1 A, 16 TXT, 10 NULL, ...).
    pub qtype: u16,
    /// Whether this is a response.
    pub response: bool,
    /// Response code (responses only).
    pub rcode: u8,
    /// Number of answer records (responses only).
    pub answer_count: u16,
    /// Total rdata bytes of the answer records (responses only).
    pub answer_bytes: u32,
    /// Data bytes of TXT (strings without their length octets) and NULL
    /// answer records (responses only), as received: binary data counts
    /// its bytes, not an escaped text form.
    pub txt_null_bytes: u32,
}
