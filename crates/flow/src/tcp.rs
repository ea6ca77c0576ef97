//! TCP connection state as a passive observer sees it (the states Suricata
//! names in its flow events). Sequence numbers are not checked here; stream
//! reassembly does that.

use zonewatch_decode::tcp_flags::{ACK, FIN, RST, SYN};
use zonewatch_types::Direction;

/// A connection's first packet: SYN without ACK, RST or FIN.
pub fn is_syn(flags: u8) -> bool {
    flags & (SYN | ACK | RST | FIN) == SYN
}

/// Connection state, ordered by progress through the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum TcpState {
    /// No handshake seen (midstream pickup or not TCP yet).
    #[default]
    None,
    /// Client sent SYN.
    SynSent,
    /// Server answered SYN/ACK.
    SynRecv,
    /// Handshake complete.
    Established,
    /// Client closed first (FIN from client).
    FinWait1,
    /// Client's FIN acknowledged.
    FinWait2,
    /// Server closed first (FIN from server).
    CloseWait,
    /// Both sent FIN at once.
    Closing,
    /// The side that closed second waits for the last ACK.
    LastAck,
    /// Both FINs seen; waiting out stray segments.
    TimeWait,
    /// Reset, or fully closed.
    Closed,
}

impl TcpState {
    /// Name as Suricata writes it.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "none",
            TcpState::SynSent => "syn_sent",
            TcpState::SynRecv => "syn_recv",
            TcpState::Established => "established",
            TcpState::FinWait1 => "fin_wait1",
            TcpState::FinWait2 => "fin_wait2",
            TcpState::CloseWait => "close_wait",
            TcpState::Closing => "closing",
            TcpState::LastAck => "last_ack",
            TcpState::TimeWait => "time_wait",
            TcpState::Closed => "closed",
        }
    }

    /// The handshake completed and the connection is not reset or fully
    /// closed: `established` for signatures' `flow:established`.
    pub fn is_established(self) -> bool {
        (TcpState::Established..=TcpState::TimeWait).contains(&self)
    }

    /// The state once the stream engine picked the session up midstream
    /// (no handshake seen): Suricata's pickup makes it ESTABLISHED, so the
    /// FINs that follow close it. Other states are kept.
    pub fn picked_up(self) -> TcpState {
        match self {
            TcpState::None => TcpState::Established,
            s => s,
        }
    }

    /// The state after a packet with `flags` in direction `dir`.
    pub fn next(self, dir: Direction, flags: u8) -> TcpState {
        use Direction::*;
        use TcpState::*;
        let has = |f: u8| flags & f == f;
        if has(RST) && self != None {
            return Closed;
        }
        match (self, dir) {
            (None, ToServer) if has(SYN) && !has(ACK) => SynSent,
            (SynSent, ToClient) if has(SYN) => SynRecv,
            (SynRecv, ToServer) if has(ACK) && !has(SYN) => {
                if has(FIN) {
                    FinWait1
                } else {
                    Established
                }
            }
            (Established, ToServer) if has(FIN) => FinWait1,
            (Established, ToClient) if has(FIN) => CloseWait,
            (FinWait1, ToClient) if has(FIN) => {
                if has(ACK) {
                    TimeWait
                } else {
                    Closing
                }
            }
            (FinWait1, ToClient) if has(ACK) => FinWait2,
            (FinWait2, ToClient) if has(FIN) => TimeWait,
            (CloseWait, ToServer) if has(FIN) => LastAck,
            (Closing, _) if has(ACK) => TimeWait,
            (LastAck, ToClient) if has(ACK) => Closed,
            (TimeWait, _) if has(ACK) => Closed,
            (s, _) => s,
        }
    }
}
