//! Denial of service as the victim sees it: traffic towards each protected address, from
//! however many sources, one alert per victim and attack kind.
//!
//! Per packet, a cheap classification ([`DosDetector::classify`]) decides whether the packet
//! is *unsolicited* traffic of an attack kind (a SYN, a flow-starting ACK/RST/SYN-ACK, UDP or
//! ICMP on a flow the victim never answered, IP fragments of such flows, a UDP response from
//! a reflection service port that starts a flow: the victim never asked). Only those packets
//! touch the tables; the packets of answered flows cost one classification and nothing more.
//!
//! State (all bounded, evictions counted):
//! - per victim: one-second buckets of packets and bytes per kind, window counters (SYNs and
//!   completed handshakes, UDP flows and answered ones, flows started and answered), distinct
//!   sources (HyperLogLog), a baseline of the victim's counted packets per second (an EWMA of
//!   the seconds without an attack);
//! - per attack (victim, kind): start, last second above half its threshold, packets, bytes,
//!   peak pps and bps, its own distinct sources, sample sources, top source ports;
//! - per prefix (/24, /64): counted packets per second, distinct victims and sources (carpet
//!   bombing: many victims, each maybe below its own threshold).
//!
//! An attack starts when a kind's packets (or bits) in the victim's current second reach the
//! kind's threshold (SYN: when few handshakes completed; UDP: when the victim answered few
//! flows); the first alert goes out at once, then an update every `update-interval` seconds
//! and a last one when it ends (`end-after` seconds below half the threshold, or end of
//! input). With `protected` set, a protected host sending responses from reflection ports
//! or unanswered floods to an outside address is a city host taking part: its own alert,
//! keyed by the outside target.

use std::net::IpAddr;

use serde_json::json;
use zonewatch_types::{ipproto, Direction, Timestamp};

use crate::alert::{AnomalyAlert, Category};
use crate::common::{secs, ts_secs, Common, Detector, Inputs, NS_PER_SEC};
use crate::obs::{PacketObs, TcpFlags};
use crate::sketch::{ips_json, Hll, Ip, Sample};
use crate::table::{hash64, Table, TableCounters, TableStats};
use crate::yaml::Section;

/// First sid: kind `k` has sid `SID_BASE + k`; carpet bombing is [`SID_CARPET`].
pub const SID_BASE: u32 = 9_000_800;
/// Carpet bombing of a prefix.
pub const SID_CARPET: u32 = 9_000_820;

const SYN: usize = 0;
const ACK: usize = 1;
const RST: usize = 2;
const SYNACK: usize = 3;
const UDP: usize = 4;
const ICMP: usize = 5;
const FRAG: usize = 6;
/// Reflection kinds, one per service, in [`SERVICES`] order.
const REFLECT: usize = 7;
const REFLECT_OTHER: usize = 15;
const PART_REFLECTOR: usize = 16;
const PART_BOT: usize = 17;
const KINDS: usize = 18;

/// Reflection services by source port (ISAKMP has two). The last kind, "other", takes the
/// configurable `other-reflection-ports`.
const SERVICES: [(&str, &[u16]); 8] = [
    ("DNS", &[53]),
    ("NTP", &[123]),
    ("SSDP", &[1900]),
    ("CLDAP", &[389]),
    ("memcached", &[11211]),
    ("SNMP", &[161]),
    ("ISAKMP/NAT-T", &[500, 4500]),
    ("chargen", &[19]),
];

const NAMES: [&str; KINDS] = [
    "spoofed TCP SYN flood",
    "TCP ACK flood",
    "TCP RST flood",
    "TCP SYN-ACK/RST backscatter (reflection)",
    "UDP flood",
    "ICMP flood",
    "IP fragment flood",
    "DNS reflection/amplification",
    "NTP reflection/amplification",
    "SSDP reflection/amplification",
    "CLDAP reflection/amplification",
    "memcached reflection/amplification",
    "SNMP reflection/amplification",
    "ISAKMP/NAT-T reflection/amplification",
    "chargen reflection/amplification",
    "UDP reflection/amplification (other service)",
    "city host answering as a reflector",
    "city host flooding (bot)",
];

/// The YAML key of each kind's packets-per-second threshold.
const PPS_KEYS: [&str; KINDS] = [
    "syn-pps",
    "ack-pps",
    "rst-pps",
    "synack-pps",
    "udp-pps",
    "icmp-pps",
    "fragment-pps",
    "dns-pps",
    "ntp-pps",
    "ssdp-pps",
    "cldap-pps",
    "memcached-pps",
    "snmp-pps",
    "isakmp-pps",
    "chargen-pps",
    "other-reflection-pps",
    "participant-reflector-pps",
    "participant-bot-pps",
];

const PPS_DEFAULTS: [u64; KINDS] = [
    200, 500, 500, 200, 2000, 500, 500, 50, 50, 50, 50, 20, 50, 50, 50, 200, 200, 500,
];

/// Settings (`rules/detectors/dos.yaml`).
#[derive(Debug, Clone)]
pub struct DosConfig {
    /// Shared keys (`max-entries`: victims tracked).
    pub common: Common,
    /// Protected addresses (HOME_NET, zones); empty: every destination.
    pub protected: Vec<ipnet::IpNet>,
    /// Destinations never reported.
    pub allow: Vec<ipnet::IpNet>,
    /// Window of distinct sources and ratios, seconds.
    pub window: u64,
    /// Seconds below half the threshold that end an attack.
    pub end_after: u64,
    /// Packets per second per victim, per kind.
    pub pps: [u64; KINDS],
    /// Bits per second of one kind to one victim that start an attack whatever its pps.
    pub bps: u64,
    /// SYN flood: at most this share of the window's SYNs completed a handshake.
    pub max_completed_ratio: f64,
    /// UDP flood: at most this share of the window's UDP flows was answered.
    pub max_answered_ratio: f64,
    /// TCP/UDP floods: more destination ports than this from fewer than
    /// `spoof-min-sources` sources is a port scan, not a flood.
    pub max_dest_ports: u64,
    /// (see `max-dest-ports`)
    pub spoof_min_sources: u64,
    /// UDP source ports of the "other" reflection kind.
    pub other_reflection_ports: Vec<u16>,
    /// Attacks tracked at once.
    pub max_attacks: usize,
    /// Carpet bombing: prefix length of IPv4 and IPv6 victims.
    pub carpet_prefix_v4: u8,
    /// (IPv6)
    pub carpet_prefix_v6: u8,
    /// Carpet bombing: counted packets per second to the prefix ...
    pub carpet_pps: u64,
    /// ... towards at least this many victims ...
    pub carpet_min_victims: u64,
    /// ... from at least this many sources.
    pub carpet_min_sources: u64,
    /// Prefixes tracked.
    pub carpet_max_entries: usize,
}

impl DosConfig {
    /// Reads the `detector:` section.
    pub fn read(s: &Section, common: Common) -> Self {
        let mut pps = PPS_DEFAULTS;
        for (k, p) in pps.iter_mut().enumerate() {
            *p = s.u64(PPS_KEYS[k], *p, 1, 1 << 32);
        }
        let mut other = s.ports("other-reflection-ports");
        if s.node("other-reflection-ports").is_none() {
            other = vec![
                7, 17, 69, 111, 137, 520, 3283, 3702, 5060, 5353, 10001, 27015,
            ];
        }
        other.sort_unstable();
        DosConfig {
            common,
            protected: s.nets("protected"),
            allow: s.nets("allow-destinations"),
            window: s.u64("window", 10, 1, 3600),
            end_after: s.u64("end-after", 30, 1, 3600),
            pps,
            bps: s.u64("bps", 200_000_000, 1000, 1 << 40),
            max_completed_ratio: s.f64("max-completed-ratio", 0.3, 0.0, 1.0),
            max_answered_ratio: s.f64("max-answered-ratio", 0.2, 0.0, 1.0),
            other_reflection_ports: other,
            max_dest_ports: s.u64("max-dest-ports", 10, 1, 65_536),
            spoof_min_sources: s.u64("spoof-min-sources", 50, 1, 1 << 32),
            max_attacks: s.u64("max-attacks", 4096, 1, 1 << 20) as usize,
            carpet_prefix_v4: s.u64("carpet-prefix-v4", 24, 8, 32) as u8,
            carpet_prefix_v6: s.u64("carpet-prefix-v6", 64, 16, 128) as u8,
            carpet_pps: s.u64("carpet-pps", 500, 1, 1 << 32),
            carpet_min_victims: s.u64("carpet-min-victims", 16, 2, 1 << 20),
            carpet_min_sources: s.u64("carpet-min-sources", 10, 1, 1 << 32),
            carpet_max_entries: s.u64("carpet-max-entries", 4096, 1, 1 << 22) as usize,
        }
    }
}

/// One victim (or, for the participant kinds, one outside target).
#[derive(Clone, Copy)]
struct Victim {
    bucket_start: i64,
    pkts: [u32; KINDS],
    bytes: [u32; KINDS],
    /// Kinds with an ongoing attack (bit per kind).
    active: u32,
    win_start: i64,
    syn: u32,
    syn_completed: u32,
    udp_flows: u32,
    udp_answered: u32,
    sources: Hll,
    /// Destination ports of the window's TCP and UDP flood packets.
    dports: Hll,
    /// Counted packets per second outside attacks (EWMA).
    baseline_pps: f32,
}

/// One ongoing attack: a victim and kind, or a prefix (carpet bombing).
#[derive(Clone, Copy)]
struct Attack {
    start: i64,
    last_above: i64,
    last_report: i64,
    pkts: u64,
    bytes: u64,
    peak_pps: u64,
    peak_bps: u64,
    sources: Hll,
    sample_sources: Sample<Ip, 8>,
    top_ports: TopPorts,
    alerts: u32,
    baseline_pps: f32,
    /// IP protocol of the packet that started it (the alert's `proto`).
    proto: u8,
}

/// Space-saving top source ports (reflection services seen in the attack).
#[derive(Clone, Copy, Default)]
struct TopPorts {
    ports: [(u16, u32); 4],
}

impl TopPorts {
    fn add(&mut self, port: u16) {
        if let Some(e) = self.ports.iter_mut().find(|e| e.0 == port && e.1 > 0) {
            e.1 += 1;
            return;
        }
        let min = self
            .ports
            .iter_mut()
            .min_by_key(|e| e.1)
            .expect("four slots");
        *min = (port, min.1 + 1);
    }
    fn json(&self) -> serde_json::Value {
        let mut v: Vec<(u16, u32)> = self.ports.iter().copied().filter(|e| e.1 > 0).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        json!(v.iter().map(|e| e.0).collect::<Vec<_>>())
    }
}

/// One prefix of victims.
#[derive(Clone, Copy)]
struct Prefix {
    bucket_start: i64,
    pkts: u32,
    bytes: u64,
    win_start: i64,
    victims: Hll,
    sources: Hll,
    sample_victims: Sample<Ip, 8>,
    /// Flows started towards the prefix in the window, and those answered (a TCP handshake
    /// completed, a first reply of other protocols): a busy server farm answers.
    started: u32,
    answered: u32,
    attack: Option<Attack>,
}

type AttackKey = (IpAddr, u8);

/// The denial-of-service detector.
pub struct DosDetector {
    cfg: DosConfig,
    victims: Table<IpAddr, Victim>,
    attacks: Table<AttackKey, Attack>,
    prefixes: Table<(IpAddr, u8), Prefix>,
    /// Attacks ongoing, in start order (ticks report them in this order).
    active: Vec<AttackKey>,
    /// Carpet attacks ongoing, in start order.
    active_prefixes: Vec<(IpAddr, u8)>,
    seed: u64,
    alerts: u64,
    rejected: u64,
    /// Packets counted (unsolicited, of an attack kind): the ones that touch the tables.
    counted: u64,
}

impl DosDetector {
    /// A detector with its tables.
    pub fn new(cfg: DosConfig) -> Self {
        let idle = cfg.window.max(cfg.end_after) + cfg.common.update_interval;
        DosDetector {
            victims: Table::new(cfg.common.max_entries, idle, cfg.common.seed ^ 0xd05),
            attacks: Table::new(cfg.max_attacks, idle, cfg.common.seed ^ 0xd05a),
            prefixes: Table::new(cfg.carpet_max_entries, idle, cfg.common.seed ^ 0xd05c),
            active: Vec::new(),
            active_prefixes: Vec::new(),
            seed: cfg.common.seed ^ 0xd0,
            cfg,
            alerts: 0,
            rejected: 0,
            counted: 0,
        }
    }

    fn protected(&self, a: &IpAddr) -> bool {
        self.cfg.protected.is_empty() || self.cfg.protected.iter().any(|n| n.contains(a))
    }

    fn reflection_kind(&self, sport: u16) -> Option<usize> {
        if let Some(i) = SERVICES.iter().position(|(_, p)| p.contains(&sport)) {
            return Some(REFLECT + i);
        }
        self.cfg
            .other_reflection_ports
            .binary_search(&sport)
            .ok()
            .map(|_| REFLECT_OTHER)
    }

    /// The attack kind of an unsolicited packet and the address it is counted for, or
    /// `None` for the packets of answered flows (most traffic).
    fn classify(&self, o: &PacketObs) -> Option<(IpAddr, usize)> {
        // Only the flow's first direction can be unsolicited; and once the other side
        // answered, TCP and UDP flows are conversations (SYN floods are judged by their
        // first packets, UDP floods by the flows never answered).
        if o.direction != Direction::ToServer {
            return None;
        }
        let kind = match o.proto {
            ipproto::TCP => {
                if !o.is_first() {
                    return None;
                }
                let f = o.tcp_flags & (TcpFlags::SYN | TcpFlags::ACK | TcpFlags::RST);
                match f {
                    TcpFlags::SYN => SYN,
                    f if f == TcpFlags::SYN | TcpFlags::ACK => SYNACK,
                    // A reflector's RST from its service port to the spoofed client port
                    // is backscatter of the same reflection, not a flood of its own.
                    f if f & TcpFlags::RST != 0 && o.sport < 1024 && o.dport >= 1024 => SYNACK,
                    f if f & TcpFlags::RST != 0 => RST,
                    TcpFlags::ACK => ACK,
                    _ => return None,
                }
            }
            ipproto::UDP => {
                if o.flow_pkts_toclient != 0 {
                    return None;
                }
                match self.reflection_kind(o.sport) {
                    Some(k) if o.sport != o.dport => k,
                    _ => UDP,
                }
            }
            ipproto::ICMP | ipproto::ICMPV6 => {
                // Errors (unreachable, time exceeded, ...) are answers: a victim's port
                // unreachables to a UDP flood would make the attacker look flooded.
                // Neighbour discovery and router messages are the link's own chatter.
                let answer = match (o.proto, o.icmp) {
                    (ipproto::ICMP, Some((t, _))) => matches!(t, 3 | 4 | 5 | 11 | 12),
                    (_, Some((t, _))) => matches!(t, 1..=4 | 133..=137 | 143),
                    _ => false,
                };
                if answer {
                    return None;
                }
                ICMP
            }
            _ => return None,
        };
        // Reassembled floods are fragment floods; reflected answers stay by service (large
        // amplified answers are often fragmented: they are still that service's reflection).
        let kind = if o.fragments > 1 && matches!(kind, UDP | ICMP) {
            FRAG
        } else {
            kind
        };
        if !self.cfg.protected.is_empty() && !self.protected(&o.dst) {
            // An outside destination: only a protected sender taking part counts.
            if !self.protected(&o.src) {
                return None;
            }
            return match kind {
                k if (REFLECT..=REFLECT_OTHER).contains(&k) => None,
                SYN | UDP | ICMP | FRAG => Some((o.dst, PART_BOT)),
                _ => None,
            };
        }
        Some((o.dst, kind))
    }

    /// A protected host's response from a reflection port to an outside address that
    /// asked (the request may have been spoofed: the reflector cannot know).
    fn participant_response(&self, o: &PacketObs) -> Option<IpAddr> {
        if self.cfg.protected.is_empty()
            || o.proto != ipproto::UDP
            || o.direction != Direction::ToClient
            || self.reflection_kind(o.sport).is_none()
            || !self.protected(&o.src)
            || self.protected(&o.dst)
        {
            return None;
        }
        Some(o.dst)
    }

    /// Completed handshakes and first replies only update an existing victim.
    fn note_answers(&mut self, o: &PacketObs) {
        let now = o.ts.0;
        if o.proto == ipproto::TCP
            && o.direction == Direction::ToServer
            && o.flow_pkts_toserver == 2
            && o.flow_pkts_toclient >= 1
            && o.tcp_flags & (TcpFlags::ACK | TcpFlags::SYN | TcpFlags::RST) == TcpFlags::ACK
        {
            if let Some(v) = self.victims.get_mut(&o.dst, now) {
                v.syn_completed = v.syn_completed.saturating_add(1);
            }
            self.note_prefix_answer(o.dst, now);
        } else if o.proto != ipproto::TCP && o.is_first_reply() {
            if o.proto == ipproto::UDP {
                if let Some(v) = self.victims.get_mut(&o.src, now) {
                    v.udp_answered = v.udp_answered.saturating_add(1);
                }
            }
            self.note_prefix_answer(o.src, now);
        }
    }

    fn note_prefix_answer(&mut self, victim: IpAddr, now: i64) {
        let key = prefix_of(victim, self.cfg.carpet_prefix_v4, self.cfg.carpet_prefix_v6);
        if let Some(p) = self.prefixes.get_mut(&key, now) {
            p.answered = p.answered.saturating_add(1);
        }
    }

    /// Per packet (hot path).
    pub fn observe(&mut self, o: &PacketObs, out: &mut Vec<AnomalyAlert>) {
        let counted = match self.classify(o) {
            Some(c) => Some(c),
            None => self.participant_response(o).map(|t| (t, PART_REFLECTOR)),
        };
        let Some((addr, kind)) = counted else {
            if o.flow_pkts_toserver == 2 || o.flow_pkts_toclient == 1 {
                self.note_answers(o);
            }
            return;
        };
        if self.cfg.allow.iter().any(|n| n.contains(&addr)) {
            return;
        }
        self.counted += 1;
        let now = o.ts.0;
        let pkts = o.fragments.max(1);
        let hs = hash64(self.seed, &o.src);
        let window = secs(self.cfg.window);
        let v = self.victims.entry(addr, now, || Victim {
            bucket_start: now,
            pkts: [0; KINDS],
            bytes: [0; KINDS],
            active: 0,
            win_start: now,
            syn: 0,
            syn_completed: 0,
            udp_flows: 0,
            udp_answered: 0,
            sources: Hll::default(),
            dports: Hll::default(),
            baseline_pps: 0.0,
        });
        if now - v.bucket_start >= NS_PER_SEC {
            let v = *v;
            self.roll(addr, v, now);
        }
        let v = self.victims.get_mut(&addr, now).expect("entry made above");
        if now - v.win_start >= window {
            v.win_start = now;
            (v.syn, v.syn_completed, v.udp_flows, v.udp_answered) = (0, 0, 0, 0);
            v.sources = Hll::default();
            v.dports = Hll::default();
        }
        v.pkts[kind] = v.pkts[kind].saturating_add(pkts);
        let before_bits = v.bytes[kind] as u64 * 8;
        v.bytes[kind] = v.bytes[kind].saturating_add(o.ip_len);
        v.sources.insert(hs);
        if matches!(kind, SYN | ACK | RST | UDP) {
            v.dports.insert(hash64(self.seed, &o.dport));
        }
        match kind {
            SYN => v.syn = v.syn.saturating_add(1),
            UDP if o.is_first() => v.udp_flows = v.udp_flows.saturating_add(1),
            _ => {}
        }
        let bit = 1u32 << kind;
        if v.active & bit != 0 {
            if let Some(a) = self.attacks.get_mut(&(addr, kind as u8), now) {
                a.pkts += pkts as u64;
                a.bytes += o.ip_len as u64;
                a.sources.insert(hs);
                a.sample_sources.add(Ip(o.src));
                a.top_ports.add(o.sport);
            }
        } else {
            let bits = v.bytes[kind] as u64 * 8;
            let crossed = (v.pkts[kind] as u64 >= self.cfg.pps[kind]
                && ((v.pkts[kind] - pkts) as u64) < self.cfg.pps[kind])
                || (bits >= self.cfg.bps && before_bits < self.cfg.bps);
            if crossed {
                let v = *v;
                self.start(addr, kind, &v, o, out);
            }
        }
        if kind < PART_REFLECTOR {
            self.carpet(o, now, pkts, hs, out);
        }
    }

    /// Closes a victim's second: peaks of its attacks, the baseline outside attacks.
    fn roll(&mut self, addr: IpAddr, v: Victim, now: i64) {
        let total: u64 = v.pkts.iter().map(|&p| p as u64).sum();
        let mut active = v.active;
        for kind in 0..KINDS {
            if active & (1 << kind) == 0 {
                continue;
            }
            match self.attacks.get_mut(&(addr, kind as u8), i64::MIN) {
                Some(a) => {
                    a.peak_pps = a.peak_pps.max(v.pkts[kind] as u64);
                    a.peak_bps = a.peak_bps.max(v.bytes[kind] as u64 * 8);
                    let thr = self.cfg.pps[kind];
                    if v.pkts[kind] as u64 * 2 >= thr || v.bytes[kind] as u64 * 16 >= self.cfg.bps {
                        a.last_above = v.bucket_start;
                    }
                }
                None => active &= !(1 << kind),
            }
        }
        let Some(e) = self.victims.get_mut(&addr, now) else {
            return;
        };
        if active == 0 {
            // Seconds without traffic pull the baseline down as well.
            let idle_secs = ((now - e.bucket_start) / NS_PER_SEC).clamp(1, 60) as i32;
            let keep = 0.9f32.powi(idle_secs);
            e.baseline_pps = e.baseline_pps * keep + 0.1 * total as f32;
        }
        e.active = active;
        e.bucket_start = now;
        e.pkts = [0; KINDS];
        e.bytes = [0; KINDS];
    }

    fn start(
        &mut self,
        addr: IpAddr,
        kind: usize,
        v: &Victim,
        o: &PacketObs,
        out: &mut Vec<AnomalyAlert>,
    ) {
        // One source (or a few) probing many ports is a scan, the port scan detector's.
        let scan = matches!(kind, SYN | ACK | RST | UDP)
            && v.dports.estimate() > self.cfg.max_dest_ports
            && v.sources.estimate() < self.cfg.spoof_min_sources;
        let ok = !scan
            && match kind {
                SYN => v.syn_completed as f64 <= self.cfg.max_completed_ratio * v.syn.max(1) as f64,
                UDP => v.udp_answered as f64 <= self.cfg.max_answered_ratio * v.udp_flows as f64,
                _ => true,
            };
        if !ok {
            self.rejected += 1;
            return;
        }
        let now = o.ts.0;
        let key = (addr, kind as u8);
        let existing = self.attacks.get_mut(&key, now).is_some();
        if let Some(e) = self.victims.get_mut(&addr, now) {
            e.active |= 1 << kind;
        }
        if existing {
            // The victim entry was evicted and made again: the attack goes on.
            return;
        }
        let mut a = Attack {
            start: now,
            last_above: now,
            last_report: now,
            pkts: v.pkts[kind] as u64,
            bytes: v.bytes[kind] as u64,
            peak_pps: v.pkts[kind] as u64,
            peak_bps: v.bytes[kind] as u64 * 8,
            sources: v.sources,
            sample_sources: Sample::default(),
            top_ports: TopPorts::default(),
            alerts: 1,
            baseline_pps: v.baseline_pps,
            proto: o.proto,
        };
        a.sample_sources.add(Ip(o.src));
        a.top_ports.add(o.sport);
        self.attacks.entry(key, now, || a);
        self.active.push(key);
        self.alerts += 1;
        out.push(self.alert(now, key, &a, "started", false));
    }

    fn carpet(&mut self, o: &PacketObs, now: i64, pkts: u32, hs: u64, out: &mut Vec<AnomalyAlert>) {
        let key = prefix_of(o.dst, self.cfg.carpet_prefix_v4, self.cfg.carpet_prefix_v6);
        let window = secs(self.cfg.window);
        let p = self.prefixes.entry(key, now, || Prefix {
            bucket_start: now,
            pkts: 0,
            bytes: 0,
            win_start: now,
            victims: Hll::default(),
            sources: Hll::default(),
            sample_victims: Sample::default(),
            started: 0,
            answered: 0,
            attack: None,
        });
        if now - p.bucket_start >= NS_PER_SEC {
            if let Some(a) = &mut p.attack {
                a.peak_pps = a.peak_pps.max(p.pkts as u64);
                a.peak_bps = a.peak_bps.max(p.bytes * 8);
                if p.pkts as u64 * 2 >= self.cfg.carpet_pps {
                    a.last_above = p.bucket_start;
                }
            }
            p.bucket_start = now;
            p.pkts = 0;
            p.bytes = 0;
        }
        if now - p.win_start >= window && p.attack.is_none() {
            p.win_start = now;
            p.victims = Hll::default();
            p.sources = Hll::default();
            p.sample_victims = Sample::default();
            (p.started, p.answered) = (0, 0);
        }
        if o.is_first() {
            p.started = p.started.saturating_add(1);
        }
        p.pkts = p.pkts.saturating_add(pkts);
        p.bytes += o.ip_len as u64;
        p.victims.insert(hash64(self.seed, &o.dst));
        p.sources.insert(hs);
        p.sample_victims.add(Ip(o.dst));
        if let Some(a) = &mut p.attack {
            a.pkts += pkts as u64;
            a.bytes += o.ip_len as u64;
            a.sample_sources.add(Ip(o.src));
            a.top_ports.add(o.sport);
            return;
        }
        if (p.pkts as u64) < self.cfg.carpet_pps
            || p.victims.estimate() < self.cfg.carpet_min_victims
            || p.sources.estimate() < self.cfg.carpet_min_sources
            || p.answered as f64 > self.cfg.max_answered_ratio * p.started as f64
        {
            return;
        }
        let mut a = Attack {
            start: now,
            last_above: now,
            last_report: now,
            pkts: p.pkts as u64,
            bytes: p.bytes,
            peak_pps: p.pkts as u64,
            peak_bps: p.bytes * 8,
            sources: p.sources,
            sample_sources: Sample::default(),
            top_ports: TopPorts::default(),
            alerts: 1,
            baseline_pps: 0.0,
            proto: o.proto,
        };
        a.sample_sources.add(Ip(o.src));
        a.top_ports.add(o.sport);
        p.attack = Some(a);
        let p = *p;
        self.active_prefixes.push(key);
        self.alerts += 1;
        out.push(self.carpet_alert(now, key, &p, &a, "started", false));
    }

    /// Updates of ongoing attacks and their ends.
    pub fn tick(&mut self, now: Timestamp, flush: bool, out: &mut Vec<AnomalyAlert>) {
        let now = now.0;
        // Close the seconds of victims that went quiet (their next packet never came).
        for i in 0..self.active.len() {
            let addr = self.active[i].0;
            if let Some(v) = self.victims.get_mut(&addr, i64::MIN) {
                if now - v.bucket_start >= NS_PER_SEC || flush {
                    let v = *v;
                    self.roll(addr, v, now);
                }
            }
        }
        let end_after = secs(self.cfg.end_after);
        let every = secs(self.cfg.common.update_interval);
        let mut keep = Vec::with_capacity(self.active.len());
        for key in std::mem::take(&mut self.active) {
            let Some(a) = self.attacks.get_mut(&key, i64::MIN) else {
                continue; // evicted at the cap (counted)
            };
            let ended = flush || now - a.last_above >= end_after;
            if ended || now - a.last_report >= every {
                a.last_report = now;
                a.alerts += 1;
                let a = *a;
                self.alerts += 1;
                let state = if ended { "ended" } else { "ongoing" };
                out.push(self.alert(now, key, &a, state, true));
            }
            if ended {
                if let Some(v) = self.victims.get_mut(&key.0, i64::MIN) {
                    v.active &= !(1 << key.1);
                }
                self.attacks.remove(&key);
            } else {
                keep.push(key);
            }
        }
        self.active = keep;
        self.tick_carpets(now, flush, out);
    }

    fn tick_carpets(&mut self, now: i64, flush: bool, out: &mut Vec<AnomalyAlert>) {
        let end_after = secs(self.cfg.end_after);
        let every = secs(self.cfg.common.update_interval);
        let mut keep = Vec::new();
        for key in std::mem::take(&mut self.active_prefixes) {
            let Some(p) = self.prefixes.get_mut(&key, i64::MIN) else {
                continue;
            };
            let Some(a) = &mut p.attack else { continue };
            if now - p.bucket_start >= NS_PER_SEC || flush {
                a.peak_pps = a.peak_pps.max(p.pkts as u64);
                a.peak_bps = a.peak_bps.max(p.bytes * 8);
                if p.pkts as u64 * 2 >= self.cfg.carpet_pps {
                    a.last_above = p.bucket_start;
                }
                p.bucket_start = now;
                p.pkts = 0;
                p.bytes = 0;
            }
            let ended = flush || now - a.last_above >= end_after;
            if ended || now - a.last_report >= every {
                a.last_report = now;
                a.alerts += 1;
                let a = *a;
                let p = *p;
                self.alerts += 1;
                let state = if ended { "ended" } else { "ongoing" };
                out.push(self.carpet_alert(now, key, &p, &a, state, true));
            }
            if ended {
                if let Some(p) = self.prefixes.get_mut(&key, i64::MIN) {
                    p.attack = None;
                }
            } else {
                keep.push(key);
            }
        }
        self.active_prefixes = keep;
    }

    /// Severity from the attack's size: its peak against the larger of its threshold and
    /// the victim's baseline (×10: one step up; ×100 or ≥ 1 Gbit/s: two).
    fn severity(&self, peak_pps: u64, peak_bps: u64, threshold: u64, baseline: f32) -> u8 {
        let base = (threshold as f64).max(baseline as f64);
        let ratio = peak_pps as f64 / base.max(1.0);
        let s = self.cfg.common.severity;
        if ratio >= 100.0 || peak_bps >= 1_000_000_000 {
            s.saturating_sub(2).max(1)
        } else if ratio >= 10.0 || peak_bps >= self.cfg.bps {
            s.saturating_sub(1).max(1)
        } else {
            s
        }
    }

    fn evidence(&self, now: i64, a: &Attack, state: &str, threshold: u64) -> serde_json::Value {
        json!({
            "state": state,
            "start": ts_secs(a.start),
            "end": if state == "ended" { json!(ts_secs(a.last_above.max(a.start))) } else { json!(null) },
            "duration_secs": ts_secs(now - a.start),
            "packets": a.pkts,
            "bytes": a.bytes,
            "peak_pps": a.peak_pps,
            "peak_bps": a.peak_bps,
            "threshold_pps": threshold,
            "threshold_bps": self.cfg.bps,
            "baseline_pps": (a.baseline_pps as f64 * 10.0).round() / 10.0,
            "distinct_sources": a.sources.estimate(),
            "sample_sources": ips_json(&a.sample_sources),
            "alert_count": a.alerts,
        })
    }

    fn alert(
        &self,
        now: i64,
        key: AttackKey,
        a: &Attack,
        state: &str,
        update: bool,
    ) -> AnomalyAlert {
        let kind = key.1 as usize;
        let mut ev = self.evidence(now, a, state, self.cfg.pps[kind]);
        let m = ev.as_object_mut().expect("object");
        m.insert("kind".into(), json!(NAMES[kind]));
        let participant = kind >= PART_REFLECTOR;
        m.insert(
            if participant { "target" } else { "victim" }.into(),
            json!(key.0.to_string()),
        );
        if (REFLECT..=REFLECT_OTHER).contains(&kind) || kind == SYNACK || kind == PART_REFLECTOR {
            m.insert("top_source_ports".into(), a.top_ports.json());
            m.insert("avg_packet_bytes".into(), json!(a.bytes / a.pkts.max(1)));
            m.insert("unsolicited".into(), json!(kind != PART_REFLECTOR));
        }
        if let Some(v) = self.victims_peek(&key.0) {
            let unanswered = if v.syn > 0 && kind == SYN {
                1.0 - v.syn_completed as f64 / v.syn as f64
            } else if v.udp_flows > 0 {
                1.0 - (v.udp_answered as f64 / v.udp_flows as f64).min(1.0)
            } else {
                1.0
            };
            m.insert(
                "unanswered_ratio".into(),
                json!((unanswered.max(0.0) * 1000.0).round() / 1000.0),
            );
        }
        let src = a.sample_sources.as_slice().first().map_or(key.0, |i| i.0);
        AnomalyAlert {
            ts: Timestamp(now),
            detector: "dos",
            category: Category::DenialOfService,
            signature: format!("ZW DOS {}", NAMES[kind]),
            signature_id: SID_BASE + kind as u32,
            severity: self.severity(a.peak_pps, a.peak_bps, self.cfg.pps[kind], a.baseline_pps),
            src_ip: src,
            dest_ip: Some(key.0),
            src_port: None,
            dest_port: None,
            proto: Some(a.proto),
            update,
            evidence: ev,
        }
    }

    fn victims_peek(&self, addr: &IpAddr) -> Option<Victim> {
        self.victims.peek(addr).copied()
    }

    fn carpet_alert(
        &self,
        now: i64,
        key: (IpAddr, u8),
        p: &Prefix,
        a: &Attack,
        state: &str,
        update: bool,
    ) -> AnomalyAlert {
        let mut ev = self.evidence(now, a, state, self.cfg.carpet_pps);
        let m = ev.as_object_mut().expect("object");
        m.insert("kind".into(), json!("carpet bombing"));
        m.insert("prefix".into(), json!(format!("{}/{}", key.0, key.1)));
        m.insert("distinct_victims".into(), json!(p.victims.estimate()));
        m.insert("sample_victims".into(), ips_json(&p.sample_victims));
        m.insert("top_source_ports".into(), a.top_ports.json());
        let src = a.sample_sources.as_slice().first().map_or(key.0, |i| i.0);
        AnomalyAlert {
            ts: Timestamp(now),
            detector: "dos",
            category: Category::DenialOfService,
            signature: "ZW DOS carpet bombing of a prefix".into(),
            signature_id: SID_CARPET,
            severity: self.severity(a.peak_pps, a.peak_bps, self.cfg.carpet_pps, 0.0),
            src_ip: src,
            dest_ip: Some(key.0),
            src_port: None,
            dest_port: None,
            proto: Some(a.proto),
            update,
            evidence: ev,
        }
    }
}

/// The prefix of `a` (network address, length).
fn prefix_of(a: IpAddr, v4: u8, v6: u8) -> (IpAddr, u8) {
    match a {
        IpAddr::V4(x) => {
            let mask = u32::MAX.checked_shl(32 - v4 as u32).unwrap_or(0);
            (IpAddr::V4((u32::from(x) & mask).into()), v4)
        }
        IpAddr::V6(x) => {
            let mask = u128::MAX.checked_shl(128 - v6 as u32).unwrap_or(0);
            (IpAddr::V6((u128::from(x) & mask).into()), v6)
        }
    }
}

impl Detector for DosDetector {
    fn inputs(&self) -> Inputs {
        Inputs {
            packets: true,
            ..Inputs::default()
        }
    }
    fn observe_packet(&mut self, o: &PacketObs, out: &mut Vec<AnomalyAlert>) {
        self.observe(o, out);
    }
    fn tick(&mut self, now: Timestamp, flush: bool, out: &mut Vec<AnomalyAlert>) {
        DosDetector::tick(self, now, flush, out);
    }
    fn expire(&mut self, now: Timestamp) {
        // Ongoing attacks keep their victims: expiry goes by last packet, and an attack's
        // victim sees packets; attacks end by tick, not by expiry.
        self.victims.expire(now.0);
        self.prefixes.expire(now.0);
    }
    fn table_stats(&self) -> TableStats {
        // The three tables as one: entries, caps, counters and bytes added up.
        let (v, a, p) = (
            self.victims.stats(),
            self.attacks.stats(),
            self.prefixes.stats(),
        );
        let c = |f: fn(&TableCounters) -> u64| f(&v.counters) + f(&a.counters) + f(&p.counters);
        TableStats {
            entries: v.entries + a.entries + p.entries,
            cap: v.cap + a.cap + p.cap,
            counters: TableCounters {
                inserts: c(|t| t.inserts),
                evictions: c(|t| t.evictions),
                expired: c(|t| t.expired),
                peak: c(|t| t.peak),
            },
            bytes: v.bytes + a.bytes + p.bytes,
        }
    }
    fn alerts(&self) -> u64 {
        self.alerts
    }
    fn extra_counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("rejected", self.rejected),
            ("counted", self.counted),
            ("victim_evictions", self.victims.counters.evictions),
            ("attack_evictions", self.attacks.counters.evictions),
            ("prefix_evictions", self.prefixes.counters.evictions),
            ("victim_bytes", self.victims.stats().bytes as u64),
        ]
    }
}
