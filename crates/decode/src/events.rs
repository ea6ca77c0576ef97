//! Decoder events, named as Suricata names them so that Suricata's
//! `decoder-events.rules` mean the same thing for zonewatch.

macro_rules! decoder_events {
    ($($variant:ident => $name:literal, $invalid:literal;)*) => {
        /// Something odd or broken found while decoding a packet.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum DecodeEvent { $(#[doc = $name] $variant,)* }

        impl DecodeEvent {
            /// Every event, in declaration order (index = `as u8`).
            pub const ALL: &'static [DecodeEvent] = &[$(DecodeEvent::$variant,)*];

            /// Suricata's name without the `decoder.` prefix, as written in
            /// `decode-event:` rule options (e.g. `ipv4.trunc_pkt`).
            pub fn rule_name(self) -> &'static str {
                match self { $(DecodeEvent::$variant => $name,)* }
            }

            /// The full name used in anomaly events and stats
            /// (e.g. `decoder.ipv4.trunc_pkt`).
            pub fn name(self) -> &'static str {
                match self { $(DecodeEvent::$variant => concat!("decoder.", $name),)* }
            }

            /// Whether the packet is unusable past the layer that raised the
            /// event (it then joins no flow, as in Suricata).
            pub fn invalidates(self) -> bool {
                match self { $(DecodeEvent::$variant => $invalid,)* }
            }

            /// Looks an event up by its rule name (`ipv4.trunc_pkt`).
            pub fn from_rule_name(s: &str) -> Option<DecodeEvent> {
                Self::ALL.iter().copied().find(|e| e.rule_name() == s)
            }
        }
    };
}

decoder_events! {
    EthernetPktTooSmall => "ethernet.pkt_too_small", true;
    EthernetUnknownEthertype => "ethernet.unknown_ethertype", false;
    SllPktTooSmall => "sll.pkt_too_small", true;
    LtnullPktTooSmall => "ltnull.pkt_too_small", true;
    LtnullUnsupportedType => "ltnull.unsupported_type", true;
    IprawInvalidIpVersion => "ipraw.invalid_ip_version", true;
    VlanHeaderTooSmall => "vlan.header_too_small", true;
    VlanTooManyLayers => "vlan.too_many_layers", true;
    VlanUnknownType => "vlan.unknown_type", true;
    MplsHeaderTooSmall => "mpls.header_too_small", true;
    MplsPktTooSmall => "mpls.pkt_too_small", true;
    MplsBadLabelRouterAlert => "mpls.bad_label_router_alert", false;
    MplsBadLabelImplicitNull => "mpls.bad_label_implicit_null", false;
    MplsBadLabelReserved => "mpls.bad_label_reserved", false;
    MplsUnknownPayloadType => "mpls.unknown_payload_type", true;
    PppoePktTooSmall => "pppoe.pkt_too_small", true;
    PppoeWrongCode => "pppoe.wrong_code", true;
    PppPktTooSmall => "ppp.pkt_too_small", true;
    PppUnsupProto => "ppp.unsup_proto", true;
    GrePktTooSmall => "gre.pkt_too_small", true;
    GreWrongVersion => "gre.wrong_version", true;
    GreVersion0Recur => "gre.version0_recur", true;
    GreVersion0Flags => "gre.version0_flags", true;
    GreVersion0HdrTooBig => "gre.version0_hdr_too_big", true;
    GreVersion1Chksum => "gre.version1_chksum", true;
    GreVersion1Route => "gre.version1_route", true;
    GreVersion1Ssr => "gre.version1_ssr", true;
    GreVersion1Recur => "gre.version1_recur", true;
    GreVersion1Flags => "gre.version1_flags", true;
    GreVersion1NoKey => "gre.version1_no_key", true;
    GreVersion1WrongProtocol => "gre.version1_wrong_protocol", true;
    GreVersion1HdrTooBig => "gre.version1_hdr_too_big", true;
    ErspanHeaderTooSmall => "erspan.header_too_small", true;
    ErspanUnsupportedVersion => "erspan.unsupported_version", true;
    NshHeaderTooSmall => "nsh.header_too_small", true;
    NshUnsupportedVersion => "nsh.unsupported_version", false;
    NshBadHeaderLength => "nsh.bad_header_length", true;
    NshReservedType => "nsh.reserved_type", false;
    NshUnsupportedType => "nsh.unsupported_type", false;
    NshUnknownPayload => "nsh.unknown_payload", false;
    Ipv4PktTooSmall => "ipv4.pkt_too_small", true;
    Ipv4HlenTooSmall => "ipv4.hlen_too_small", true;
    Ipv4IplenSmallerThanHlen => "ipv4.iplen_smaller_than_hlen", true;
    Ipv4TruncPkt => "ipv4.trunc_pkt", true;
    Ipv4OptInvalidLen => "ipv4.opt_invalid_len", false;
    Ipv4OptMalformed => "ipv4.opt_malformed", false;
    Ipv4OptDuplicate => "ipv4.opt_duplicate", false;
    Ipv4OptUnknown => "ipv4.opt_unknown", false;
    Ipv4OptEolRequired => "ipv4.opt_eol_required", false;
    Ipv4WrongIpVersion => "ipv4.wrong_ip_version", true;
    Ipv4Icmpv6 => "ipv4.icmpv6", false;
    Ipv4FragPktTooLarge => "ipv4.frag_pkt_too_large", false;
    Ipv4FragOverlap => "ipv4.frag_overlap", false;
    Ipv6PktTooSmall => "ipv6.pkt_too_small", true;
    Ipv6TruncPkt => "ipv6.trunc_pkt", true;
    Ipv6TruncExthdr => "ipv6.trunc_exthdr", true;
    Ipv6ExthdrDuplFh => "ipv6.exthdr_dupl_fh", false;
    Ipv6ExthdrUselessFh => "ipv6.exthdr_useless_fh", false;
    Ipv6ExthdrDuplRh => "ipv6.exthdr_dupl_rh", false;
    Ipv6ExthdrDuplHh => "ipv6.exthdr_dupl_hh", false;
    Ipv6ExthdrDuplDh => "ipv6.exthdr_dupl_dh", false;
    Ipv6ExthdrDuplAh => "ipv6.exthdr_dupl_ah", false;
    Ipv6WrongIpVersion => "ipv6.wrong_ip_version", true;
    Ipv6RhType0 => "ipv6.rh_type_0", false;
    Ipv6HopoptsUnknownOpt => "ipv6.hopopts_unknown_opt", false;
    Ipv6HopoptsOnlyPadding => "ipv6.hopopts_only_padding", false;
    Ipv6DstoptsUnknownOpt => "ipv6.dstopts_unknown_opt", false;
    Ipv6DstoptsOnlyPadding => "ipv6.dstopts_only_padding", false;
    Ipv6ZeroLenPadn => "ipv6.zero_len_padn", false;
    Ipv6FhNonZeroReservedField => "ipv6.fh_non_zero_reserved_field", false;
    Ipv6DataAfterNoneHeader => "ipv6.data_after_none_header", false;
    Ipv6UnknownNextHeader => "ipv6.unknown_next_header", false;
    Ipv6Icmpv4 => "ipv6.icmpv4", false;
    Ipv6FragPktTooLarge => "ipv6.frag_pkt_too_large", false;
    Ipv6FragOverlap => "ipv6.frag_overlap", false;
    Ipv6FragInvalidLength => "ipv6.frag_invalid_length", false;
    Ipv6Ipv4InIpv6TooSmall => "ipv6.ipv4_in_ipv6_too_small", true;
    Ipv6Ipv4InIpv6WrongVersion => "ipv6.ipv4_in_ipv6_wrong_version", true;
    Ipv6Ipv6InIpv6TooSmall => "ipv6.ipv6_in_ipv6_too_small", true;
    Ipv6Ipv6InIpv6WrongVersion => "ipv6.ipv6_in_ipv6_wrong_version", true;
    TcpPktTooSmall => "tcp.pkt_too_small", true;
    TcpHlenTooSmall => "tcp.hlen_too_small", true;
    TcpInvalidOptlen => "tcp.invalid_optlen", true;
    TcpOptInvalidLen => "tcp.opt_invalid_len", false;
    TcpOptDuplicate => "tcp.opt_duplicate", false;
    UdpPktTooSmall => "udp.pkt_too_small", true;
    UdpHlenTooSmall => "udp.hlen_too_small", true;
    UdpLenInvalid => "udp.len_invalid", true;
    Icmpv4PktTooSmall => "icmpv4.pkt_too_small", true;
    Icmpv4UnknownType => "icmpv4.unknown_type", false;
    Icmpv4UnknownCode => "icmpv4.unknown_code", false;
    Icmpv4Ipv4TruncPkt => "icmpv4.ipv4_trunc_pkt", false;
    Icmpv4Ipv4UnknownVer => "icmpv4.ipv4_unknown_ver", false;
    Icmpv6PktTooSmall => "icmpv6.pkt_too_small", true;
    Icmpv6UnknownType => "icmpv6.unknown_type", false;
    Icmpv6UnknownCode => "icmpv6.unknown_code", false;
    Icmpv6Ipv6TruncPkt => "icmpv6.ipv6_trunc_pkt", false;
    Icmpv6Ipv6UnknownVersion => "icmpv6.ipv6_unknown_version", false;
    Icmpv6UnassignedType => "icmpv6.unassigned_type", false;
    Icmpv6ExperimentationType => "icmpv6.experimentation_type", false;
    TooManyLayers => "too_many_layers", true;
    SctpPktTooSmall => "sctp.pkt_too_small", true;
    Ipv4FragIgnored => "ipv4.frag_ignored", false;
    Ipv6FragIgnored => "ipv6.frag_ignored", false;
}

/// The events of one packet: a small inline set (a packet rarely raises more
/// than one; further ones are counted by the caller as overflow, not lost
/// silently).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventSet {
    len: u8,
    items: [Option<DecodeEvent>; EventSet::CAP],
    /// Events that did not fit.
    pub overflow: u8,
}

impl EventSet {
    /// How many events one packet keeps.
    pub const CAP: usize = 8;

    /// Adds an event (once; a repeat of the same event is ignored).
    pub fn push(&mut self, e: DecodeEvent) {
        if self.iter().any(|x| x == e) {
            return;
        }
        if (self.len as usize) < Self::CAP {
            self.items[self.len as usize] = Some(e);
            self.len += 1;
        } else {
            self.overflow = self.overflow.saturating_add(1);
        }
    }
    /// The events, in the order raised.
    pub fn iter(&self) -> impl Iterator<Item = DecodeEvent> + '_ {
        self.items[..self.len as usize].iter().flatten().copied()
    }
    /// No event raised.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Whether `e` was raised.
    pub fn contains(&self, e: DecodeEvent) -> bool {
        self.iter().any(|x| x == e)
    }
}
