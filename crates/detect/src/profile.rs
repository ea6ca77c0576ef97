//! Rule profiling (`zonewatch rules profile`), as Suricata's rule
//! profiling: per rule the times it was a candidate, fully evaluated and
//! matched, and the CPU ticks its evaluations took; per signature group
//! the packets it inspected, their candidates and ticks.
//!
//! A normal run pays nothing for it: the evaluation loops are generic over
//! a [`Probe`], and the detector calls them with `()` (every probe call
//! empty, compiled away) unless the engine was asked to profile, which is
//! decided once per packet, not per rule. Each worker counts into its own
//! [`Profile`]; the detector hands it to the engine's collector when it is
//! dropped (its worker ended), so the profile is complete once the
//! pipeline's run returned.

use std::sync::Mutex;
use std::time::Instant;
use zonewatch_applayer::AppProto;

/// CPU ticks: the time-stamp counter on x86_64 (what Suricata's
/// profiling reads), nanoseconds since the first call elsewhere.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) fn ticks() -> u64 {
    // SAFETY: RDTSC has no preconditions and every x86_64 CPU has it; the
    // intrinsic is only `unsafe` because all `core::arch` ones are.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// CPU ticks: the time-stamp counter on x86_64 (what Suricata's
/// profiling reads), nanoseconds since the first call elsewhere.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(crate) fn ticks() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Where the evaluation loops report what they did. `()` ignores it all.
pub(crate) trait Probe {
    /// A point in time (`()` for the no-op probe: not even read).
    type Mark: Copy;
    /// Now.
    fn mark() -> Self::Mark;
    /// The candidates of one packet or transaction.
    fn candidates(&mut self, rules: &[u32]);
    /// One full evaluation of `rule`, begun at `since`.
    fn evaluated(&mut self, rule: u32, since: Self::Mark, matched: bool);
    /// One packet or transaction inspected in `group` from `since`, with
    /// `candidates` candidate rules.
    fn inspected(&mut self, group: GroupKey, since: Self::Mark, candidates: usize);
}

impl Probe for () {
    type Mark = ();
    #[inline(always)]
    fn mark() {}
    #[inline(always)]
    fn candidates(&mut self, _: &[u32]) {}
    #[inline(always)]
    fn evaluated(&mut self, _: u32, _: (), _: bool) {}
    #[inline(always)]
    fn inspected(&mut self, _: GroupKey, _: (), _: usize) {}
}

/// What a profiled inspection ran in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum GroupKey {
    /// A packet signature group, by index.
    Packet(u32),
    /// Transaction rules of an app-layer protocol.
    Tx(AppProto),
    /// Decode-event rules of packets without IP.
    NoIp,
}

/// One rule's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleCounts {
    /// Times the rule was a candidate: its fast pattern occurred (the
    /// prefilter's hit) or, without one, its group was inspected.
    pub prefilter_hits: u64,
    /// Full evaluations (candidates of the wrong transaction side or
    /// protocol, and those after a pass rule matched, are not evaluated).
    pub evaluations: u64,
    /// Matches (alerts before the per-packet cap and thresholds, and
    /// matches of `noalert` and pass rules).
    pub matches: u64,
    /// CPU ticks spent evaluating it.
    pub ticks: u64,
}

impl RuleCounts {
    fn add(&mut self, o: &RuleCounts) {
        self.prefilter_hits += o.prefilter_hits;
        self.evaluations += o.evaluations;
        self.matches += o.matches;
        self.ticks += o.ticks;
    }
}

/// One signature group's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCounts {
    /// Packets (or transactions) inspected.
    pub packets: u64,
    /// Candidate rules over them.
    pub candidates: u64,
    /// CPU ticks: prefilter scans and evaluations.
    pub ticks: u64,
}

impl GroupCounts {
    fn add(&mut self, o: &GroupCounts) {
        self.packets += o.packets;
        self.candidates += o.candidates;
        self.ticks += o.ticks;
    }
}

/// One worker's profile.
#[derive(Debug, Clone, Default)]
pub(crate) struct Profile {
    /// By engine rule index.
    rules: Vec<RuleCounts>,
    /// By packet group index.
    groups: Vec<GroupCounts>,
    /// Transaction rules by protocol (few protocols: a list).
    tx: Vec<(AppProto, GroupCounts)>,
    no_ip: GroupCounts,
}

impl Profile {
    pub(crate) fn new(rules: usize, groups: usize) -> Profile {
        Profile {
            rules: vec![RuleCounts::default(); rules],
            groups: vec![GroupCounts::default(); groups],
            ..Default::default()
        }
    }

    fn merge(&mut self, o: &Profile) {
        self.rules
            .iter_mut()
            .zip(&o.rules)
            .for_each(|(a, b)| a.add(b));
        self.groups
            .iter_mut()
            .zip(&o.groups)
            .for_each(|(a, b)| a.add(b));
        for (proto, c) in &o.tx {
            self.tx_group(*proto).add(c);
        }
        self.no_ip.add(&o.no_ip);
    }

    fn tx_group(&mut self, proto: AppProto) -> &mut GroupCounts {
        let i = match self.tx.iter().position(|(p, _)| *p == proto) {
            Some(i) => i,
            None => {
                self.tx.push((proto, GroupCounts::default()));
                self.tx.len() - 1
            }
        };
        &mut self.tx[i].1
    }
}

impl Probe for Profile {
    type Mark = u64;

    #[inline(always)]
    fn mark() -> u64 {
        ticks()
    }

    fn candidates(&mut self, rules: &[u32]) {
        for &r in rules {
            self.rules[r as usize].prefilter_hits += 1;
        }
    }

    fn evaluated(&mut self, rule: u32, since: u64, matched: bool) {
        let c = &mut self.rules[rule as usize];
        c.evaluations += 1;
        c.matches += matched as u64;
        c.ticks += ticks().wrapping_sub(since);
    }

    fn inspected(&mut self, group: GroupKey, since: u64, candidates: usize) {
        let elapsed = ticks().wrapping_sub(since);
        let g = match group {
            GroupKey::Packet(i) => &mut self.groups[i as usize],
            GroupKey::Tx(p) => self.tx_group(p),
            GroupKey::NoIp => &mut self.no_ip,
        };
        g.packets += 1;
        g.candidates += candidates as u64;
        g.ticks += elapsed;
    }
}

/// The engine's collector of the workers' profiles, and the clock
/// reading that calibrates ticks against wall time at the end.
#[derive(Debug)]
pub(crate) struct Collector {
    started: (Instant, u64),
    merged: Mutex<Option<Profile>>,
}

impl Collector {
    pub(crate) fn new() -> Collector {
        Collector {
            started: (Instant::now(), ticks()),
            merged: Mutex::new(None),
        }
    }

    /// Adds one worker's profile.
    pub(crate) fn merge(&self, p: &Profile) {
        let mut m = self.merged.lock().unwrap_or_else(|e| e.into_inner());
        match m.as_mut() {
            Some(all) => all.merge(p),
            None => *m = Some(p.clone()),
        }
    }

    /// The profile so far: per rule (by engine index) and per group, and
    /// ticks per microsecond measured from the collector's creation to now
    /// (one calibration over the whole run, so no extra wait).
    pub(crate) fn report(&self, rules: usize, labels: Vec<String>) -> RuleProfile {
        let (t0, c0) = self.started;
        let secs = t0.elapsed().as_secs_f64();
        let elapsed_ticks = ticks().wrapping_sub(c0) as f64;
        let ticks_per_us = if secs > 0.0 && elapsed_ticks > 0.0 {
            elapsed_ticks / (secs * 1e6)
        } else {
            1.0
        };
        let p = self
            .merged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| Profile::new(rules, labels.len()));
        let mut groups: Vec<(String, GroupCounts)> = labels.into_iter().zip(p.groups).collect();
        let mut tx = p.tx;
        tx.sort_by_key(|(proto, _)| *proto);
        groups.extend(
            tx.into_iter()
                .map(|(proto, c)| (format!("{} transactions", proto.name()), c)),
        );
        groups.push(("packets without IP".to_string(), p.no_ip));
        RuleProfile {
            ticks_per_us,
            rules: p.rules,
            groups,
        }
    }
}

/// A run's rule profile, from [`crate::Engine::profile`].
#[derive(Debug, Clone)]
pub struct RuleProfile {
    /// CPU ticks per microsecond on this machine (calibrated over the run).
    pub ticks_per_us: f64,
    /// Counts by engine rule index ([`crate::Engine::meta`]).
    pub rules: Vec<RuleCounts>,
    /// Signature groups (what selects them) with their counts: the packet
    /// groups, then transaction rules per protocol, then packets without IP.
    pub groups: Vec<(String, GroupCounts)>,
}
