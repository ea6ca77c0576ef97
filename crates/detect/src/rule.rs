//! The compiled rule model: what evaluation needs of one signature, with
//! names, addresses, ports, flowbits and inspection programs resolved.
//! `compile.rs` makes these from parsed signatures; `engine.rs` holds them
//! in evaluation order; `groups.rs` and the detector read them.

use crate::program::Program;
use std::sync::Arc;
use zonewatch_ruleconf::{AddressSet, PortSet, RuleThreshold};
use zonewatch_rules::{Action, FlowOpts, HeaderTest};

/// What a rule says about itself, for the alert record.
#[derive(Debug, Clone)]
pub struct RuleMeta {
    /// Generator id.
    pub gid: u32,
    /// Signature id.
    pub sid: u64,
    /// Revision.
    pub rev: u32,
    /// `msg`.
    pub msg: Arc<str>,
    /// Classification description ("" without classtype).
    pub category: Arc<str>,
    /// 1 (highest) to 4; from `priority`, else the classtype, else 3.
    pub severity: u8,
    /// Action word (`alert`, `drop`, `reject`, `pass`).
    pub action: &'static str,
    /// Metadata pairs.
    pub metadata: Arc<[(String, String)]>,
    /// Where the rule was written.
    pub origin: String,
    /// `target:` keyword: `Some(true)` when the target is the destination.
    pub target_dest: Option<bool>,
}

/// The protocol of the rule header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Any,
    V4,
    V6,
    Tcp,
    TcpPkt,
    TcpStream,
    Udp,
    Icmp,
    Icmp4,
    Icmp6,
    Sctp,
}

impl Proto {
    /// Whether a packet of IP version `version` carrying `ip_proto` is of
    /// this protocol.
    #[inline]
    pub(crate) fn admits(self, version: u8, ip_proto: u8) -> bool {
        match self {
            Proto::Any => true,
            Proto::V4 => version == 4,
            Proto::V6 => version == 6,
            Proto::Tcp | Proto::TcpPkt | Proto::TcpStream => ip_proto == IPPROTO_TCP,
            Proto::Udp => ip_proto == IPPROTO_UDP,
            Proto::Icmp => ip_proto == IPPROTO_ICMP || ip_proto == IPPROTO_ICMPV6,
            Proto::Icmp4 => ip_proto == IPPROTO_ICMP,
            Proto::Icmp6 => ip_proto == IPPROTO_ICMPV6,
            Proto::Sctp => ip_proto == IPPROTO_SCTP,
        }
    }
}

/// IP protocol numbers the rule model names.
pub(crate) const IPPROTO_ICMP: u8 = 1;
pub(crate) const IPPROTO_TCP: u8 = 6;
pub(crate) const IPPROTO_UDP: u8 = 17;
pub(crate) const IPPROTO_ICMPV6: u8 = 58;
pub(crate) const IPPROTO_SCTP: u8 = 132;

/// A header sticky buffer (`tcp.hdr`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HdrBuf {
    Ipv4,
    Ipv6,
    Tcp,
    Udp,
    Icmp4,
    Icmp6,
}

/// A flowbit, by its engine-wide id (a bit of the flow's bit set).
pub(crate) type FlowbitId = u32;

/// A `flowbits` check: the bits, and whether all of them (`a&b`) or any
/// (`a|b`) are meant.
#[derive(Debug)]
pub(crate) enum FbCheck {
    IsSet(Vec<FlowbitId>, bool),
    IsNotSet(Vec<FlowbitId>, bool),
}

impl FbCheck {
    /// The check's bit ids, to renumber them.
    pub(crate) fn bits_mut(&mut self) -> &mut [FlowbitId] {
        match self {
            FbCheck::IsSet(bs, _) | FbCheck::IsNotSet(bs, _) => bs,
        }
    }
}

/// A `flowbits` command, run when the rule matches.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FbCmd {
    Set(FlowbitId),
    Unset(FlowbitId),
    Toggle(FlowbitId),
}

impl FbCmd {
    /// The command's bit id, to renumber it.
    pub(crate) fn bit_mut(&mut self) -> &mut FlowbitId {
        match self {
            FbCmd::Set(b) | FbCmd::Unset(b) | FbCmd::Toggle(b) => b,
        }
    }
}

/// `app-layer-protocol:[!]name`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppLayerProtocolTest {
    pub negated: bool,
    /// `None`: `failed`/`unknown`, no protocol identified.
    pub proto: Option<zonewatch_applayer::AppProto>,
}

impl AppLayerProtocolTest {
    /// Whether a flow whose identified protocol is `proto` passes.
    #[inline]
    pub(crate) fn admits(self, proto: Option<zonewatch_applayer::AppProto>) -> bool {
        (proto == self.proto) != self.negated
    }
}

/// A fast pattern: the bytes the prefilter looks for, and whether caseless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FastPattern {
    pub bytes: Vec<u8>,
    pub nocase: bool,
}

/// One compiled rule.
pub(crate) struct Rule {
    pub meta: RuleMeta,
    pub action: Action,
    pub noalert: bool,
    pub proto: Proto,
    pub src: AddressSet,
    pub dst: AddressSet,
    pub sport: PortSet,
    pub dport: PortSet,
    pub bidir: bool,
    pub flow: FlowOpts,
    pub tests: Vec<HeaderTest>,
    pub payload: Option<Program>,
    pub hdr: Vec<(HdrBuf, Program)>,
    pub fb_checks: Vec<FbCheck>,
    pub fb_cmds: Vec<FbCmd>,
    pub threshold: Option<RuleThreshold>,
    pub decode_events: Vec<String>,
    pub stream_events: Vec<String>,
    /// `app-layer-event` names as the app layer raises them.
    pub app_events: Vec<String>,
    /// `flowint` commands and checks.
    pub flowints: Vec<zonewatch_rules::Flowint>,
    /// Suricata's IP-only rules: checked on the first packet of each flow
    /// direction only.
    pub iponly: bool,
    /// The flow's app-layer protocol must be this (`alert http ...`, or
    /// implied by the buffers).
    pub app: Option<zonewatch_applayer::AppProto>,
    /// Inspection of transaction buffers: the rule runs per transaction.
    pub app_progs: Vec<(zonewatch_applayer::Buffer, Program)>,
    /// A transaction rule inspects the to_client side.
    pub tx_to_client: bool,
    /// `app-layer-protocol`.
    pub app_layer_protocol: Option<AppLayerProtocolTest>,
    /// Tests on the transaction's numbers.
    pub tx_tests: Vec<zonewatch_rules::TxTest>,
}

/// Coarse protocol classes for grouping the packet rules: TCP, UDP, ICMP
/// (v4 and v6), everything else.
pub(crate) const CLASSES: usize = 4;
pub(crate) const CLASS_TCP: usize = 0;
pub(crate) const CLASS_UDP: usize = 1;
pub(crate) const CLASS_ICMP: usize = 2;
pub(crate) const CLASS_OTHER: usize = 3;

/// The protocol class of a packet carrying IP protocol `proto`.
pub(crate) fn class_of(proto: u8) -> usize {
    match proto {
        IPPROTO_TCP => CLASS_TCP,
        IPPROTO_UDP => CLASS_UDP,
        IPPROTO_ICMP | IPPROTO_ICMPV6 => CLASS_ICMP,
        _ => CLASS_OTHER,
    }
}

/// Whether a rule of protocol `p` can match packets of class `class`.
pub(crate) fn proto_in_class(p: Proto, class: usize) -> bool {
    match p {
        Proto::Any | Proto::V4 | Proto::V6 => true,
        Proto::Tcp | Proto::TcpPkt | Proto::TcpStream => class == CLASS_TCP,
        Proto::Udp => class == CLASS_UDP,
        Proto::Icmp | Proto::Icmp4 | Proto::Icmp6 => class == CLASS_ICMP,
        Proto::Sctp => class == CLASS_OTHER,
    }
}
