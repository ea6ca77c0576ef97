//! The layer-by-layer decoder. Each function gets the packet and an offset,
//! checks lengths before reading, and either hands the next layer on or
//! records why it stopped.

use crate::{
    layer, DecodeEvent as E, Decoded, FragInfo, IpInfo, LinkType, TcpInfo, Transport, TunnelInfo,
    TunnelKind,
};
use etherparse::{
    Icmpv4Slice, Icmpv6Slice, IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice,
    Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Encapsulations deeper than this raise `too_many_layers` (Suricata's limit
/// is of the same order); it bounds work on hostile nesting.
const MAX_LAYERS: u8 = 16;
const MAX_VLAN_LAYERS: usize = 3;

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_MPLS_UC: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
const ETH_PPPOE_DISC: u16 = 0x8863;
const ETH_PPPOE_SESS: u16 = 0x8864;
const ETH_TEB: u16 = 0x6558;
const ETH_ERSPAN_II: u16 = 0x88be;
const ETH_ERSPAN_III: u16 = 0x22eb;
const ETH_PPP: u16 = 0x880b;
const ETH_NSH: u16 = 0x894f;

/// NSH base + service path header (RFC 8300 section 2.2/2.3).
const NSH_MIN_LEN: usize = 8;
const NSH_NEXT_IPV4: u8 = 1;
const NSH_NEXT_IPV6: u8 = 2;
const NSH_NEXT_ETHERNET: u8 = 3;
const NSH_NEXT_MPLS: u8 = 5;

const UDP_VXLAN: u16 = 4789;
const UDP_GENEVE: u16 = 6081;
const UDP_TEREDO: u16 = 3544;

/// Decodes one packet. `data` is what was captured; `wire_len` the packet's
/// length on the wire, so that a capture cut short by the snap length is not
/// mistaken for a truncated (malformed) packet.
pub fn decode(link: LinkType, data: &[u8], wire_len: usize) -> Decoded {
    let mut d = Decoded::new();
    let mut cx = Cx {
        data,
        snapped: wire_len > data.len(),
        cut: false,
        depth: 0,
        d: &mut d,
    };
    match link {
        LinkType::Ethernet => cx.ethernet(0),
        LinkType::Null => cx.null(),
        LinkType::Raw => {
            cx.d.layers |= layer::RAW;
            match data.first().map(|b| b >> 4) {
                Some(4) => cx.ipv4(0),
                Some(6) => cx.ipv6(0),
                // Nothing captured: too small, as Suricata says (not a bad version).
                None => cx.event(E::Ipv4PktTooSmall),
                _ => cx.event(E::IprawInvalidIpVersion),
            }
        }
        LinkType::Ipv4 => {
            cx.d.layers |= layer::RAW;
            cx.ipv4(0)
        }
        LinkType::Ipv6 => {
            cx.d.layers |= layer::RAW;
            cx.ipv6(0)
        }
        LinkType::LinuxSll => {
            cx.d.layers |= layer::SLL;
            match be16(data, 14) {
                Some(proto) if data.len() >= 16 => cx.ethertype(proto, 16),
                _ => cx.event(E::SllPktTooSmall),
            }
        }
        LinkType::LinuxSll2 => {
            cx.d.layers |= layer::SLL;
            match be16(data, 0) {
                Some(proto) if data.len() >= 20 => cx.ethertype(proto, 20),
                _ => cx.event(E::SllPktTooSmall),
            }
        }
    }
    d
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// How many of each IPv6 extension header a packet chained so far
/// (hop-by-hop, routing, fragment, destination options, authentication);
/// saturating, since a packet can chain more than 255 of one kind.
#[derive(Default)]
struct ExtHeaderCounts {
    hh: u8,
    rh: u8,
    fh: u8,
    dh: u8,
    ah: u8,
}

struct Cx<'a, 'd> {
    data: &'a [u8],
    /// The capture kept less than the wire carried (snap length).
    snapped: bool,
    /// An IP header said more than the capture kept ([`Cx::capture_cut`]).
    cut: bool,
    depth: u8,
    d: &'d mut Decoded,
}

impl<'a> Cx<'a, '_> {
    fn event(&mut self, e: E) {
        if self.cut {
            // Suricata stops at the truncation; the events of what follows
            // are not raised, but the packet is as unusable as with them.
            self.d.invalid |= e.invalidates();
            return;
        }
        self.d.events.push(e);
        if e.invalidates() {
            self.d.invalid = true;
        }
    }

    /// The IP packet is longer than what was captured because the capture
    /// cut it (snap length). Suricata raises the truncation event and stops
    /// there (the packet joins no flow); zonewatch raises it too, so event
    /// rules agree, but goes on decoding what was captured, so that flows
    /// of a capture taken with a short snap length are still seen. No event
    /// is raised after it (Suricata raises none).
    fn capture_cut(&mut self, e: E) {
        self.d.events.push(e);
        self.cut = true;
    }

    fn rest(&self, off: usize) -> &'a [u8] {
        self.data.get(off..).unwrap_or(&[])
    }

    /// Counts one more encapsulation layer; false when the limit is hit.
    fn descend(&mut self) -> bool {
        self.depth += 1;
        if self.depth > MAX_LAYERS {
            self.event(E::TooManyLayers);
            return false;
        }
        true
    }

    fn null(&mut self) {
        self.d.layers |= layer::NULL;
        let Some(b) = self.data.get(..4) else {
            return self.event(E::LtnullPktTooSmall);
        };
        // The family is in the writer's byte order; accept either.
        let le = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let be = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let fam = if le < 256 { le } else { be };
        match fam {
            2 => self.ipv4(4),
            // AF_INET6 differs between BSDs: 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS).
            24 | 28 | 30 => self.ipv6(4),
            _ => self.event(E::LtnullUnsupportedType),
        }
    }

    fn ethernet(&mut self, off: usize) {
        if !self.descend() {
            return;
        }
        self.d.layers |= layer::ETHERNET;
        match be16(self.data, off + 12) {
            Some(t) => self.ethertype(t, off + 14),
            None => self.event(E::EthernetPktTooSmall),
        }
    }

    fn ethertype(&mut self, mut etype: u16, mut off: usize) {
        let mut vlans = 0usize;
        loop {
            match etype {
                ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD => {
                    let (Some(tci), Some(next)) = (be16(self.data, off), be16(self.data, off + 2))
                    else {
                        return self.event(E::VlanHeaderTooSmall);
                    };
                    if vlans < 2 {
                        // Keep the first two ids of the packet (outer ones first).
                        if let Some(slot) = self.d.vlan.iter_mut().find(|v| **v == 0) {
                            *slot = tci & 0x0fff;
                        }
                    }
                    vlans += 1;
                    self.d.layers |= layer::VLAN;
                    if vlans >= 2 {
                        self.d.layers |= layer::VLAN_QINQ;
                    }
                    if vlans > MAX_VLAN_LAYERS {
                        return self.event(E::VlanTooManyLayers);
                    }
                    etype = next;
                    off += 4;
                }
                ETH_IPV4 => return self.ipv4(off),
                ETH_IPV6 => return self.ipv6(off),
                ETH_ARP => {
                    self.d.layers |= layer::ARP;
                    return;
                }
                ETH_MPLS_UC | ETH_MPLS_MC => return self.mpls(off),
                ETH_NSH => return self.nsh(off),
                ETH_PPPOE_SESS => return self.pppoe_session(off),
                ETH_PPPOE_DISC => {
                    self.d.layers |= layer::PPPOE;
                    if self.data.len() < off + 6 {
                        self.event(E::PppoePktTooSmall);
                    }
                    return;
                }
                ETH_TEB => return self.ethernet(off),
                // 802.3 length field (LLC/SNAP: STP, CDP, ...) or well-known
                // non-IP protocols: nothing to decode, nothing wrong on bare
                // Ethernet. Inside a VLAN tag Suricata flags every type its
                // network layer does not decode (`vlan.unknown_type`).
                t if t < 0x0600 => return self.unknown_after_vlan(vlans),
                0x88cc | 0x8809 | 0x888e | 0x88f7 | 0x8035 | 0x9000 | 0x0842 | 0x88e5 => {
                    return self.unknown_after_vlan(vlans)
                }
                _ => {
                    self.unknown_after_vlan(vlans);
                    return self.event(E::EthernetUnknownEthertype);
                }
            }
        }
    }

    fn unknown_after_vlan(&mut self, vlans: usize) {
        if vlans > 0 {
            self.event(E::VlanUnknownType);
        }
    }

    fn mpls(&mut self, mut off: usize) {
        if !self.descend() {
            return;
        }
        self.d.layers |= layer::MPLS;
        loop {
            let Some(entry) = be32(self.data, off) else {
                return self.event(E::MplsHeaderTooSmall);
            };
            let label = entry >> 12;
            match label {
                1 => self.event(E::MplsBadLabelRouterAlert),
                3 => self.event(E::MplsBadLabelImplicitNull),
                4..=6 | 8..=15 => self.event(E::MplsBadLabelReserved),
                _ => {}
            }
            off += 4;
            if entry & 0x100 != 0 {
                break;
            }
        }
        match self.data.get(off).map(|b| b >> 4) {
            Some(4) => self.ipv4(off),
            Some(6) => self.ipv6(off),
            // Pseudowire with a zero control word, carrying Ethernet.
            Some(0) if self.data.len() >= off + 4 + 14 => self.ethernet(off + 4),
            None => self.event(E::MplsPktTooSmall),
            _ => self.event(E::MplsUnknownPayloadType),
        }
    }

    /// Network Service Header (RFC 8300), as Suricata's `DecodeNSH`: version
    /// 0 only, MD type 1 (fixed 24-byte header) or 2 (variable); the inner
    /// packet is IPv4, IPv6, Ethernet or MPLS.
    fn nsh(&mut self, off: usize) {
        self.d.layers |= layer::NSH;
        let rest = self.rest(off);
        let Some(hdr) = rest.get(..NSH_MIN_LEN) else {
            return self.event(E::NshHeaderTooSmall);
        };
        if !self.descend() {
            return;
        }
        let ver_flags_len = u16::from_be_bytes([hdr[0], hdr[1]]);
        if ver_flags_len >> 14 != 0 {
            return self.event(E::NshUnsupportedVersion);
        }
        // Length in 4-byte words, header included; some data must follow.
        let len = (ver_flags_len & 0x3f) as usize * 4;
        if len >= rest.len() {
            return self.event(E::NshBadHeaderLength);
        }
        // Suricata reads the whole byte (the top nibble is unassigned).
        match hdr[2] {
            0 | 0x0f => return self.event(E::NshReservedType),
            1 if len != 24 => return self.event(E::NshBadHeaderLength),
            1 | 2 => {}
            _ => return self.event(E::NshUnsupportedType),
        }
        let inner = off + len;
        match hdr[3] {
            NSH_NEXT_IPV4 => self.ipv4(inner),
            NSH_NEXT_IPV6 => self.ipv6(inner),
            NSH_NEXT_ETHERNET => self.ethernet(inner),
            NSH_NEXT_MPLS => self.mpls(inner),
            _ => self.event(E::NshUnknownPayload),
        }
    }

    fn pppoe_session(&mut self, off: usize) {
        self.d.layers |= layer::PPPOE;
        let (Some(&vt), Some(&code)) = (self.data.get(off), self.data.get(off + 1)) else {
            return self.event(E::PppoePktTooSmall);
        };
        if vt != 0x11 || code != 0 {
            return self.event(E::PppoeWrongCode);
        }
        self.ppp(off + 6)
    }

    fn ppp(&mut self, off: usize) {
        // Protocol-field compression (RFC 1661): an odd first byte is a
        // one-byte protocol number.
        if let Some(&b) = self.data.get(off) {
            if b & 1 == 1 {
                return match b {
                    0x21 => self.ipv4(off + 1),
                    0x57 => self.ipv6(off + 1),
                    _ => self.event(E::PppUnsupProto),
                };
            }
        }
        match be16(self.data, off) {
            Some(0x0021) => self.ipv4(off + 2),
            Some(0x0057) => self.ipv6(off + 2),
            // Link control, authentication and compression protocols: no IP.
            Some(p) if p >= 0x8000 => {}
            Some(_) => self.event(E::PppUnsupProto),
            None => self.event(E::PppPktTooSmall),
        }
    }

    fn ipv4(&mut self, off: usize) {
        if !self.descend() {
            return;
        }
        self.d.layers |= layer::IPV4;
        let avail = self.rest(off);
        let h = match Ipv4HeaderSlice::from_slice(avail) {
            Ok(h) => h,
            Err(etherparse::err::ipv4::HeaderSliceError::Len(_)) => {
                return self.event(if avail.len() < 20 {
                    E::Ipv4PktTooSmall
                } else {
                    E::Ipv4TruncPkt
                });
            }
            Err(etherparse::err::ipv4::HeaderSliceError::Content(c)) => {
                use etherparse::err::ipv4::HeaderError;
                return self.event(match c {
                    HeaderError::UnexpectedVersion { .. } => E::Ipv4WrongIpVersion,
                    HeaderError::HeaderLengthSmallerThanHeader { .. } => E::Ipv4HlenTooSmall,
                });
            }
        };
        let hlen = h.slice().len();
        let total = h.total_len() as usize;
        if total < hlen {
            return self.event(E::Ipv4IplenSmallerThanHlen);
        }
        if avail.len() < total {
            if !self.snapped {
                return self.event(E::Ipv4TruncPkt);
            }
            self.capture_cut(E::Ipv4TruncPkt);
        }
        self.ipv4_options(h.options());
        let frag_off = u32::from(h.fragments_offset().value()) * 8;
        let more = h.more_fragments();
        let frag = (frag_off > 0 || more).then_some(FragInfo {
            id: h.identification() as u32,
            offset: frag_off,
            more,
        });
        let proto = h.protocol().0;
        // A new innermost IP header: an outer tunnel's UDP header is no
        // longer this packet's transport.
        self.d.transport = Transport::None;
        self.d.ip = Some(IpInfo {
            version: 4,
            src: IpAddr::V4(Ipv4Addr::from(h.source())),
            dst: IpAddr::V4(Ipv4Addr::from(h.destination())),
            proto,
            ttl: h.ttl(),
            offset: off as u32,
            header_len: hlen as u32,
            payload_len: (total - hlen) as u32,
            frag,
        });
        if frag.is_some() {
            self.d.layers |= layer::FRAG;
        }
        if frag_off > 0 {
            // Only the first fragment carries the transport header.
            return;
        }
        let end = (off + total).min(self.data.len());
        self.transport(4, proto, off + hlen, end, frag.is_some());
    }

    fn ipv4_options(&mut self, opts: &[u8]) {
        let mut i = 0;
        let mut seen: u32 = 0;
        while i < opts.len() {
            let t = opts[i];
            match t {
                0 => break,
                1 => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let Some(&len) = opts.get(i + 1) else {
                return self.event(E::Ipv4OptInvalidLen);
            };
            let len = len as usize;
            if len < 2 || i + len > opts.len() {
                return self.event(E::Ipv4OptInvalidLen);
            }
            // Known option numbers (RR, QS, TS, SEC, LSRR, CIPSO, SID, SSRR, RTRALT).
            let bit = match t {
                7 => 0,
                25 => 1,
                68 => 2,
                130 => 3,
                131 => 4,
                134 => 5,
                136 => 6,
                137 => 7,
                148 => 8,
                _ => {
                    self.event(E::Ipv4OptUnknown);
                    i += len;
                    continue;
                }
            };
            if seen & (1 << bit) != 0 {
                self.event(E::Ipv4OptDuplicate);
            }
            seen |= 1 << bit;
            // Route records need a pointer >= 4 and a length of 3 + 4n.
            if matches!(t, 7 | 131 | 137) && (len < 3 || (len - 3) % 4 != 0 || opts[i + 2] < 4) {
                self.event(E::Ipv4OptMalformed);
            }
            i += len;
        }
    }

    fn ipv6(&mut self, off: usize) {
        if !self.descend() {
            return;
        }
        self.d.layers |= layer::IPV6;
        let avail = self.rest(off);
        let h = match Ipv6HeaderSlice::from_slice(avail) {
            Ok(h) => h,
            Err(etherparse::err::ipv6::HeaderSliceError::Len(_)) => {
                return self.event(E::Ipv6PktTooSmall)
            }
            Err(etherparse::err::ipv6::HeaderSliceError::Content(_)) => {
                return self.event(E::Ipv6WrongIpVersion)
            }
        };
        let mut plen = h.payload_length() as usize;
        if plen == 0 && h.next_header().0 == 0 {
            // Possibly a jumbogram (its length lives in a hop-by-hop option):
            // take what was captured.
            plen = avail.len() - 40;
        }
        if avail.len() < 40 + plen {
            if !self.snapped {
                return self.event(E::Ipv6TruncPkt);
            }
            self.capture_cut(E::Ipv6TruncPkt);
        }
        let end = (off + 40 + plen).min(self.data.len());
        let mut next = h.next_header().0;
        let mut pos = off + 40;
        let mut frag = None;
        let mut seen = ExtHeaderCounts::default();
        let mut first = true;
        // Walk the extension headers; each one is length-checked by etherparse.
        loop {
            let data = self.data;
            let slice = data.get(pos..end).unwrap_or(&[]);
            if !first && frag.is_none() && next != 59 && slice.len() < 2 {
                // Suricata's extension-header walker: fewer than 2 bytes
                // after an extension header is a truncated header, not a
                // too-small transport packet.
                return self.event(E::Ipv6TruncExthdr);
            }
            match next {
                0 | 43 | 60 | 135 | 139 | 140 => {
                    let x = match Ipv6RawExtHeaderSlice::from_slice(slice) {
                        Ok(x) => x,
                        Err(_) => return self.event(E::Ipv6TruncExthdr),
                    };
                    self.ipv6_raw_ext_header(next, x.payload(), first, &mut seen);
                    pos += x.slice().len();
                    next = x.next_header().0;
                }
                44 => {
                    let f = match Ipv6FragmentHeaderSlice::from_slice(slice) {
                        Ok(f) => f,
                        Err(_) => return self.event(E::Ipv6TruncExthdr),
                    };
                    seen.fh = seen.fh.saturating_add(1);
                    if seen.fh > 1 {
                        self.event(E::Ipv6ExthdrDuplFh);
                    }
                    if f.slice()[1] != 0 || f.slice()[3] & 0x06 != 0 {
                        self.event(E::Ipv6FhNonZeroReservedField);
                    }
                    let offset = u32::from(f.fragment_offset().value()) * 8;
                    if offset == 0 && !f.more_fragments() {
                        // An "atomic" fragment: not really fragmented.
                        self.event(E::Ipv6ExthdrUselessFh);
                    } else {
                        frag = Some(FragInfo {
                            id: f.identification(),
                            offset,
                            more: f.more_fragments(),
                        });
                    }
                    pos += 8;
                    next = f.next_header().0;
                }
                51 => {
                    let a = match IpAuthHeaderSlice::from_slice(slice) {
                        Ok(a) => a,
                        Err(_) => return self.event(E::Ipv6TruncExthdr),
                    };
                    seen.ah = seen.ah.saturating_add(1);
                    if seen.ah > 1 {
                        self.event(E::Ipv6ExthdrDuplAh);
                    }
                    pos += a.slice().len();
                    next = a.next_header().0;
                }
                _ => break,
            }
            first = false;
            if frag.is_some_and(|f: FragInfo| f.offset > 0) {
                break;
            }
        }
        if next == 59 && pos < end {
            self.event(E::Ipv6DataAfterNoneHeader);
        }
        self.d.transport = Transport::None;
        self.d.ip = Some(IpInfo {
            version: 6,
            src: IpAddr::V6(Ipv6Addr::from(h.source())),
            dst: IpAddr::V6(Ipv6Addr::from(h.destination())),
            proto: next,
            ttl: h.hop_limit(),
            offset: off as u32,
            header_len: (pos - off) as u32,
            payload_len: end.saturating_sub(pos) as u32,
            frag,
        });
        if frag.is_some() {
            self.d.layers |= layer::FRAG;
        }
        if frag.is_some_and(|f| f.offset > 0) {
            return;
        }
        self.transport(6, next, pos, end, frag.is_some());
    }

    /// The checks of a hop-by-hop (0), routing (43) or destination options
    /// (60) header; `first` is whether it directly follows the IPv6 header.
    fn ipv6_raw_ext_header(
        &mut self,
        kind: u8,
        payload: &[u8],
        first: bool,
        seen: &mut ExtHeaderCounts,
    ) {
        match kind {
            0 => {
                seen.hh = seen.hh.saturating_add(1);
                if seen.hh > 1 || !first {
                    self.event(E::Ipv6ExthdrDuplHh);
                }
                self.ipv6_options(payload, E::Ipv6HopoptsUnknownOpt, E::Ipv6HopoptsOnlyPadding);
            }
            43 => {
                seen.rh = seen.rh.saturating_add(1);
                if seen.rh > 1 {
                    self.event(E::Ipv6ExthdrDuplRh);
                }
                if payload.first() == Some(&0) {
                    self.event(E::Ipv6RhType0);
                }
            }
            60 => {
                seen.dh = seen.dh.saturating_add(1);
                if seen.dh > 2 {
                    self.event(E::Ipv6ExthdrDuplDh);
                }
                self.ipv6_options(payload, E::Ipv6DstoptsUnknownOpt, E::Ipv6DstoptsOnlyPadding);
            }
            _ => {}
        }
    }

    /// Decodes the transport header at `off`; the IP payload ends at `end`.
    fn transport(&mut self, ipv: u8, proto: u8, off: usize, end: usize, fragmented: bool) {
        if fragmented {
            // As Suricata: a fragment's transport header is decoded only
            // after reassembly (a first fragment may carry half a header).
            return;
        }
        let data = self.data;
        let seg = data.get(off..end).unwrap_or(&[]);
        match proto {
            6 => self.tcp(off, seg),
            17 => self.udp(off, seg, fragmented),
            1 => {
                if ipv == 6 {
                    self.event(E::Ipv6Icmpv4);
                }
                self.icmpv4(off, seg)
            }
            58 => {
                if ipv == 4 {
                    self.event(E::Ipv4Icmpv6);
                }
                self.icmpv6(off, seg)
            }
            132 => {
                self.d.layers |= layer::SCTP;
                if seg.len() < 12 {
                    return self.event(E::SctpPktTooSmall);
                }
                if let (Some(sport), Some(dport)) = (be16(seg, 0), be16(seg, 2)) {
                    self.d.transport = Transport::Udp {
                        sport,
                        dport,
                        payload_offset: (off + seg.len().min(12)) as u32,
                        payload_len: seg.len().saturating_sub(12) as u32,
                    };
                }
            }
            // Tunnels: only whole (unfragmented) packets are decapsulated.
            4 if !fragmented => {
                self.tunnel(TunnelKind::IpInIp, proto);
                self.d.layers |= if ipv == 4 {
                    layer::IPV4_IN_IPV4
                } else {
                    layer::IPV4_IN_IPV6
                };
                if ipv == 6 && seg.len() < 20 {
                    return self.event(E::Ipv6Ipv4InIpv6TooSmall);
                }
                if ipv == 6 && seg.first().map(|b| b >> 4) != Some(4) {
                    return self.event(E::Ipv6Ipv4InIpv6WrongVersion);
                }
                self.ipv4(off)
            }
            41 if !fragmented => {
                self.tunnel(TunnelKind::Ipv6InIp, proto);
                self.d.layers |= layer::IPV6_IN_IP;
                if ipv == 6 && seg.len() < 40 {
                    return self.event(E::Ipv6Ipv6InIpv6TooSmall);
                }
                if ipv == 6 && seg.first().map(|b| b >> 4) != Some(6) {
                    return self.event(E::Ipv6Ipv6InIpv6WrongVersion);
                }
                self.ipv6(off)
            }
            47 if !fragmented => self.gre(off, end),
            59 => {}
            _ => {}
        }
    }

    /// Remembers the outermost tunnel (the current IP header is its outer
    /// header) before the inner packet overwrites `d.ip`.
    fn tunnel(&mut self, kind: TunnelKind, proto: u8) {
        let Some(ip) = self.d.ip else { return };
        match &mut self.d.tunnel {
            Some(t) => t.depth = t.depth.saturating_add(1),
            None => {
                self.d.tunnel = Some(TunnelInfo {
                    kind,
                    src: ip.src,
                    dst: ip.dst,
                    proto,
                    depth: 1,
                })
            }
        }
    }

    fn tcp(&mut self, off: usize, seg: &'a [u8]) {
        self.d.layers |= layer::TCP;
        let h = match TcpHeaderSlice::from_slice(seg) {
            Ok(h) => h,
            Err(etherparse::err::tcp::HeaderSliceError::Content(_)) => {
                return self.event(E::TcpHlenTooSmall)
            }
            Err(etherparse::err::tcp::HeaderSliceError::Len(_)) => {
                return self.event(E::TcpPktTooSmall)
            }
        };
        let hlen = h.slice().len();
        let b13 = h.slice()[13];
        let mut t = TcpInfo {
            sport: h.source_port(),
            dport: h.destination_port(),
            seq: h.sequence_number(),
            ack: h.acknowledgment_number(),
            flags: b13,
            window: h.window_size(),
            payload_offset: (off + hlen) as u32,
            payload_len: (seg.len() - hlen) as u32,
            ..TcpInfo::default()
        };
        // Options walked as Suricata's DecodeTCPOptions does: unknown kinds
        // are skipped, an empty SACK and TCP Fast Open options are valid,
        // a length that does not fit ends the walk with an event.
        let opts = &h.slice()[20.min(h.slice().len())..];
        let (mut i, mut seen) = (0usize, 0u8);
        while i < opts.len() {
            let kind = opts[i];
            if kind == 0 {
                break;
            }
            if kind == 1 {
                i += 1;
                continue;
            }
            if opts.len() - i < 2 {
                break;
            }
            let olen = opts[i + 1] as usize;
            if olen < 2 || olen > opts.len() - i {
                self.event(E::TcpOptInvalidLen);
                break;
            }
            let body = &opts[i + 2..i + olen];
            let (ok, bit) = match kind {
                2 => (olen == 4, 1),
                3 => (olen == 3, 2),
                4 => (olen == 2, 4),
                8 => (olen == 10, 8),
                5 => (
                    olen == 2 || ((10..=34).contains(&olen) && (olen - 2) % 8 == 0),
                    16,
                ),
                34 => (
                    olen == 2 || ((4..=18).contains(&olen) && (olen - 2) % 2 == 0),
                    32,
                ),
                253 | 254 => (
                    olen == 4 || olen == 12,
                    if olen >= 4 && body[..2] == [0xf9, 0x89] {
                        32
                    } else {
                        0
                    },
                ),
                19 => (olen == 18, 0),
                29 => (olen >= 4, 0),
                _ => (true, 0),
            };
            if !ok {
                self.event(E::TcpOptInvalidLen);
            } else if bit != 0 {
                if seen & bit != 0 {
                    self.event(E::TcpOptDuplicate);
                } else {
                    seen |= bit;
                    match kind {
                        2 => t.mss = Some(u16::from_be_bytes([body[0], body[1]])),
                        3 => t.wscale = Some(body[0]),
                        4 => t.sack_permitted = true,
                        // Only counted (bit 32) with its experimental magic.
                        34 | 253 | 254 => t.tfo = true,
                        8 => {
                            t.timestamp =
                                Some((be32(body, 0).unwrap_or(0), be32(body, 4).unwrap_or(0)))
                        }
                        _ => {}
                    }
                }
            }
            i += olen;
        }
        self.d.transport = Transport::Tcp(t);
    }

    fn udp(&mut self, off: usize, seg: &[u8], fragmented: bool) {
        self.d.layers |= layer::UDP;
        let h = match UdpHeaderSlice::from_slice(seg) {
            Ok(h) => h,
            Err(_) => return self.event(E::UdpHlenTooSmall),
        };
        let ulen = h.length() as usize;
        if !fragmented {
            if ulen < 8 {
                return self.event(E::UdpLenInvalid);
            }
            if seg.len() < ulen && !self.snapped {
                return self.event(E::UdpPktTooSmall);
            }
            if ulen < seg.len() && !self.snapped {
                // Trailing bytes after the datagram: Suricata flags this.
                self.event(E::UdpLenInvalid);
            }
        }
        let payload_end = if fragmented {
            seg.len()
        } else {
            ulen.min(seg.len())
        };
        let (sport, dport) = (h.source_port(), h.destination_port());
        self.d.transport = Transport::Udp {
            sport,
            dport,
            payload_offset: (off + 8) as u32,
            payload_len: payload_end.saturating_sub(8) as u32,
        };
        if fragmented || self.d.invalid {
            return;
        }
        let body = off + 8;
        let pend = off + payload_end;
        if dport == UDP_VXLAN {
            self.vxlan(body, pend);
        } else if dport == UDP_GENEVE {
            self.geneve(body, pend);
        } else if sport == UDP_TEREDO || dport == UDP_TEREDO {
            self.teredo(body, pend);
        }
    }

    fn vxlan(&mut self, off: usize, end: usize) {
        // 8-byte header, I flag (0x08) set; inner Ethernet follows.
        if end < off + 8 + 14 || self.data.get(off).map(|f| f & 0x08) != Some(0x08) {
            return;
        }
        self.d.layers |= layer::VXLAN;
        self.tunnel(TunnelKind::Vxlan, 17);
        self.ethernet(off + 8);
    }

    fn geneve(&mut self, off: usize, end: usize) {
        let (Some(&b0), Some(proto)) = (self.data.get(off), be16(self.data, off + 2)) else {
            return;
        };
        if b0 >> 6 != 0 {
            return; // unknown version: not Geneve after all
        }
        let inner = off + 8 + (b0 & 0x3f) as usize * 4;
        if inner >= end {
            return;
        }
        self.d.layers |= layer::GENEVE;
        self.tunnel(TunnelKind::Geneve, 17);
        match proto {
            ETH_TEB => self.ethernet(inner),
            ETH_IPV4 => self.ipv4(inner),
            ETH_IPV6 => self.ipv6(inner),
            _ => {}
        }
    }

    fn teredo(&mut self, mut off: usize, end: usize) {
        // Optional authentication (0x0001) and origin indication (0x0000) headers.
        if be16(self.data, off) == Some(0x0001) {
            let (Some(&idl), Some(&aul)) = (self.data.get(off + 2), self.data.get(off + 3)) else {
                return;
            };
            off += 4 + idl as usize + aul as usize + 9;
        }
        if be16(self.data, off) == Some(0x0000) {
            off += 8;
        }
        // Only a well-formed IPv6 header whose length matches is Teredo;
        // otherwise the datagram is ordinary UDP on port 3544.
        let Some(plen) = be16(self.data, off + 4) else {
            return;
        };
        if self.data.get(off).map(|b| b >> 4) != Some(6) || off + 40 + plen as usize != end {
            return;
        }
        self.d.layers |= layer::TEREDO;
        self.tunnel(TunnelKind::Teredo, 17);
        self.ipv6(off);
    }

    fn gre(&mut self, off: usize, end: usize) {
        self.d.layers |= layer::GRE;
        let (Some(flags), Some(proto)) = (be16(self.data, off), be16(self.data, off + 2)) else {
            return self.event(E::GrePktTooSmall);
        };
        let version = flags & 0x7;
        let mut hlen = 4usize;
        match version {
            0 => {
                if flags & 0x0700 != 0 {
                    return self.event(E::GreVersion0Recur);
                }
                if flags & 0x00f8 != 0 {
                    return self.event(E::GreVersion0Flags);
                }
                if flags & 0xc000 != 0 {
                    hlen += 4; // checksum (+ offset) present
                }
                if flags & 0x2000 != 0 {
                    hlen += 4; // key
                }
                if flags & 0x1000 != 0 {
                    hlen += 4; // sequence
                }
                if flags & 0x4000 != 0 {
                    // Source route entries: walk them to the terminating null entry.
                    let mut p = off + hlen;
                    loop {
                        let (Some(_af), Some(&_sre_off), Some(&sre_len)) = (
                            be16(self.data, p),
                            self.data.get(p + 2),
                            self.data.get(p + 3),
                        ) else {
                            return self.event(E::GreVersion0HdrTooBig);
                        };
                        p += 4 + sre_len as usize;
                        if sre_len == 0 {
                            break;
                        }
                    }
                    hlen = p - off;
                }
            }
            1 => {
                if flags & 0x8000 != 0 {
                    return self.event(E::GreVersion1Chksum);
                }
                if flags & 0x4000 != 0 {
                    return self.event(E::GreVersion1Route);
                }
                if flags & 0x0800 != 0 {
                    return self.event(E::GreVersion1Ssr);
                }
                if flags & 0x0700 != 0 {
                    return self.event(E::GreVersion1Recur);
                }
                if flags & 0x0078 != 0 {
                    return self.event(E::GreVersion1Flags);
                }
                if flags & 0x2000 == 0 {
                    return self.event(E::GreVersion1NoKey);
                }
                if proto != ETH_PPP {
                    return self.event(E::GreVersion1WrongProtocol);
                }
                hlen += 4;
                if flags & 0x1000 != 0 {
                    hlen += 4;
                }
                if flags & 0x0080 != 0 {
                    hlen += 4; // acknowledgment number
                }
            }
            _ => return self.event(E::GreWrongVersion),
        }
        let inner = off + hlen;
        if inner > end {
            return self.event(if version == 0 {
                E::GreVersion0HdrTooBig
            } else {
                E::GreVersion1HdrTooBig
            });
        }
        if !self.descend() {
            return;
        }
        match proto {
            ETH_PPP => {
                self.tunnel(TunnelKind::Gre, 47);
                if inner == end {
                    return; // PPTP keep-alive / ack only
                }
                // PPP in GRE may omit address/control (0xff03).
                let p = if be16(self.data, inner) == Some(0xff03) {
                    inner + 2
                } else {
                    inner
                };
                self.ppp(p)
            }
            ETH_ERSPAN_II => {
                self.d.layers |= layer::ERSPAN;
                if flags & 0x1000 == 0 {
                    // No sequence number: ERSPAN type I, Ethernet follows directly.
                    self.tunnel(TunnelKind::ErspanI, 47);
                    return self.ethernet(inner);
                }
                let Some(w) = be16(self.data, inner) else {
                    return self.event(E::ErspanHeaderTooSmall);
                };
                if w >> 12 != 1 {
                    return self.event(E::ErspanUnsupportedVersion);
                }
                if inner + 8 > end {
                    return self.event(E::ErspanHeaderTooSmall);
                }
                self.tunnel(TunnelKind::ErspanII, 47);
                self.ethernet(inner + 8)
            }
            ETH_ERSPAN_III => {
                self.d.layers |= layer::ERSPAN;
                let (Some(w), Some(&last)) = (be16(self.data, inner), self.data.get(inner + 11))
                else {
                    return self.event(E::ErspanHeaderTooSmall);
                };
                if w >> 12 != 2 {
                    return self.event(E::ErspanUnsupportedVersion);
                }
                // O flag: an 8-byte platform-specific subheader follows.
                let h = if last & 0x01 != 0 { 20 } else { 12 };
                if inner + h > end {
                    return self.event(E::ErspanHeaderTooSmall);
                }
                self.tunnel(TunnelKind::ErspanIII, 47);
                self.ethernet(inner + h)
            }
            _ => {
                self.tunnel(TunnelKind::Gre, 47);
                self.depth -= 1; // ethertype() layers count themselves
                self.ethertype(proto, inner)
            }
        }
    }

    /// The options of a hop-by-hop or destination options header, as
    /// Suricata's DecodeIPV6ExtHdrs reads them: Pad1 and PadN (a PadN of
    /// length 0 is an event), router alert, jumbo payload and home address
    /// are known; any other type is an "unknown option" event, and a header
    /// holding only padding is its own event.
    fn ipv6_options(&mut self, opts: &[u8], unknown: E, only_padding: E) {
        let (mut i, mut padding, mut other) = (0usize, 0u32, 0u32);
        while i < opts.len() {
            let t = opts[i];
            if t == 0 {
                padding += 1;
                i += 1;
                continue;
            }
            let Some(&len) = opts.get(i + 1) else {
                break;
            };
            match t {
                1 => {
                    padding += 1;
                    if len == 0 {
                        self.event(E::Ipv6ZeroLenPadn);
                    }
                }
                0x05 | 0xc2 | 0xc9 => other += 1,
                _ => {
                    other += 1;
                    self.event(unknown);
                }
            }
            i += 2 + len as usize;
        }
        if padding > 0 && other == 0 {
            self.event(only_padding);
        }
    }

    fn icmpv4(&mut self, off: usize, seg: &[u8]) {
        self.d.layers |= layer::ICMPV4;
        let s = match Icmpv4Slice::from_slice(seg) {
            Ok(s) => s,
            Err(_) => return self.event(E::Icmpv4PktTooSmall),
        };
        let (t, c) = (s.type_u8(), s.code_u8());
        // The types and codes Suricata 7's ICMPv4 decoder knows: router
        // solicitation (10) is not among them, and a router advertisement
        // (9) may carry any code (16: does not route common traffic).
        let max_code = match t {
            9 => Some(u8::MAX),
            0 | 8 | 4 | 13 | 14 | 15 | 16 | 17 | 18 => Some(0),
            3 => Some(15),
            5 => Some(3),
            11 => Some(1),
            12 => Some(2),
            _ => None,
        };
        match max_code {
            None => self.event(E::Icmpv4UnknownType),
            Some(m) if c > m => self.event(E::Icmpv4UnknownCode),
            _ => {}
        }
        if matches!(t, 3 | 4 | 5 | 11 | 12) {
            // Error messages quote the offending IPv4 header.
            let inner = &seg[8.min(seg.len())..];
            if inner.len() < 20 {
                self.event(E::Icmpv4Ipv4TruncPkt);
            } else if inner[0] >> 4 != 4 {
                self.event(E::Icmpv4Ipv4UnknownVer);
            }
        }
        // The header's length depends on the type, as in Suricata's
        // DecodeICMPV4: timestamps and router advertisements carry more.
        let mut hlen = 8usize;
        match t {
            13 | 14 => {
                if seg.len() < 20 {
                    self.event(E::Icmpv4Ipv4TruncPkt);
                } else {
                    hlen = 20;
                }
            }
            9 if seg.len() >= 8 => {
                let adv = seg[4] as usize * seg[5] as usize * 4;
                if seg.len() < 8 + adv {
                    self.event(E::Icmpv4Ipv4TruncPkt);
                } else {
                    hlen = 8 + adv;
                }
            }
            _ => {}
        }
        let echo =
            matches!(t, 0 | 8).then(|| (be16(seg, 4).unwrap_or(0), be16(seg, 6).unwrap_or(0)));
        self.d.transport = Transport::Icmp {
            icmp_type: t,
            icmp_code: c,
            echo,
            payload_offset: (off + hlen.min(seg.len())) as u32,
            payload_len: seg.len().saturating_sub(hlen) as u32,
        };
    }

    fn icmpv6(&mut self, off: usize, seg: &[u8]) {
        self.d.layers |= layer::ICMPV6;
        let s = match Icmpv6Slice::from_slice(seg) {
            Ok(s) => s,
            Err(_) => return self.event(E::Icmpv6PktTooSmall),
        };
        let (t, c) = (s.type_u8(), s.code_u8());
        let max_code = match t {
            1 => Some(7),
            2 | 128 | 129 | 130 | 131 | 132 | 133 | 134 | 135 | 136 | 143 => Some(0),
            3 => Some(1),
            4 => Some(3),
            137 => Some(0),
            138 => Some(255),
            139 | 140 => Some(2),
            141..=142 | 144..=158 => Some(255),
            100 | 101 | 200 | 201 => {
                self.event(E::Icmpv6ExperimentationType);
                Some(255)
            }
            5..=99 | 102..=126 | 159..=199 => {
                self.event(E::Icmpv6UnassignedType);
                Some(255)
            }
            _ => None,
        };
        match max_code {
            None => self.event(E::Icmpv6UnknownType),
            Some(m) if c > m => self.event(E::Icmpv6UnknownCode),
            _ => {}
        }
        if (1..=4).contains(&t) {
            let inner = &seg[8.min(seg.len())..];
            if inner.len() < 40 {
                self.event(E::Icmpv6Ipv6TruncPkt);
            } else if inner[0] >> 4 != 6 {
                self.event(E::Icmpv6Ipv6UnknownVersion);
            }
        }
        let echo =
            matches!(t, 128 | 129).then(|| (be16(seg, 4).unwrap_or(0), be16(seg, 6).unwrap_or(0)));
        self.d.transport = Transport::Icmp {
            icmp_type: t,
            icmp_code: c,
            echo,
            payload_offset: (off + 8.min(seg.len())) as u32,
            payload_len: seg.len().saturating_sub(8) as u32,
        };
    }
}
