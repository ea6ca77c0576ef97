//! The threshold runtime: the detection engine asks [`ThresholdEngine::decide`]
//! about each candidate alert and gets a [`Decision`].
//!
//! Semantics follow Suricata 7 (`detect-engine-threshold.c`,
//! `util-threshold-config.c`, `detect-engine-alert.c`):
//!
//! 1. `suppress` lines with an `ip` list are checked first; a match drops the
//!    alert (the rule's other effects, e.g. flowbits, still happen) and no
//!    counter moves.
//! 2. The rule's one effective filter (its `threshold:`/`detection_filter:`,
//!    or what `threshold.config` put in its place, see
//!    [`ThresholdConfig`]) is applied. A window starts at the first
//!    counted match and lasts `seconds`; a match at or after
//!    `start + seconds` starts a new window.
//!    - `limit`: alert on the first `count` matches of a window.
//!    - `threshold`: alert on every `count`-th match of a window (the counter
//!      restarts after each alert; with `count 1` every match alerts).
//!    - `both`: alert once per window, on the `count`-th match.
//!    - `detection_filter`: alert on every match after the first `count` of a
//!      window.
//!    - `rate_filter`: always alert; once more than `count` matches fall in
//!      a window, the alert's action becomes `new_action` for `timeout`
//!      seconds (then counting starts again).
//! 3. A `suppress` without `ip` makes the rule noalert: the filter still
//!    counts, but nothing is alerted.
//!
//! Time is only the packet time passed in. State is bounded: at most
//! `max_entries` trackers; at the bound the least recently used one is
//! evicted and counted. Given the same sequence of calls the decisions are
//! the same.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use zonewatch_types::Timestamp;

use crate::threshold::{
    Filter, FilterKind, FilterType, NewAction, Resolution, RuleThreshold, ThresholdConfig, Track,
};

/// Default bound on tracked entries.
pub const DEFAULT_MAX_ENTRIES: usize = 65_536;

/// What to do with a candidate alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Write the alert with the rule's own action.
    Alert,
    /// Write the alert; a `rate_filter` changed its action to this.
    AlertWithAction(NewAction),
    /// Do not write the alert, but the rule's action still applies
    /// (Suricata's "silent match": suppressed, noalert, or a `limit`/`both`
    /// window already used up).
    Silent,
    /// Do not write the alert and do not apply the rule's action (the
    /// `threshold`/`both`/`detection_filter` count is not reached yet).
    Discard,
}

impl Decision {
    /// Whether an alert event is written.
    pub fn alerts(self) -> bool {
        matches!(self, Decision::Alert | Decision::AlertWithAction(_))
    }
}

/// Counters for the stats event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThresholdStats {
    /// Trackers held now.
    pub tracked: usize,
    /// Trackers evicted at the `max_entries` bound.
    pub evicted: u64,
    /// Trackers removed by [`ThresholdEngine::expire`].
    pub expired: u64,
    /// Alerts dropped by a `suppress` line (with or without ip).
    pub suppressed: u64,
    /// Alerts held back by a threshold, limit, both or detection_filter.
    pub thresholded: u64,
    /// Alerts whose action a `rate_filter` changed.
    pub rate_filtered: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TrackKey {
    Src(IpAddr),
    Dst(IpAddr),
    Pair(IpAddr, IpAddr),
    Rule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    gid: u32,
    sid: u32,
    track: TrackKey,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Position in the recency order.
    seq: u64,
    /// Window start.
    start: Timestamp,
    count: u32,
    /// Second at which a rate_filter's new action started.
    rate_since: Option<i64>,
    /// Window length, for expiry.
    seconds: u32,
}

/// Applies thresholds to candidate alerts. One per detection thread (or,
/// for results independent of the worker count, one after the
/// deterministic merge); the configuration is shared.
#[derive(Debug)]
pub struct ThresholdEngine {
    config: Arc<ThresholdConfig>,
    entries: HashMap<Key, Entry>,
    recency: BTreeMap<u64, Key>,
    next_seq: u64,
    max_entries: usize,
    stats: ThresholdStats,
}

/// Result of one filter step, as Suricata's return codes: 0, 1, 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    NoMatch,
    Match,
    Silent,
    MatchWithAction(NewAction),
}

impl ThresholdEngine {
    /// An engine for `config` holding at most `max_entries` trackers
    /// (at least 1).
    pub fn new(config: Arc<ThresholdConfig>, max_entries: usize) -> ThresholdEngine {
        ThresholdEngine {
            config,
            entries: HashMap::new(),
            recency: BTreeMap::new(),
            next_seq: 0,
            max_entries: max_entries.max(1),
            stats: ThresholdStats::default(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Arc<ThresholdConfig> {
        &self.config
    }

    /// Goes on with another configuration (a rule reload), keeping every
    /// tracker: a window counting towards a threshold keeps counting.
    pub fn set_config(&mut self, config: Arc<ThresholdConfig>) {
        self.config = config;
    }

    /// Counters.
    pub fn stats(&self) -> ThresholdStats {
        ThresholdStats {
            tracked: self.entries.len(),
            ..self.stats
        }
    }

    /// Decides about one candidate alert of rule (`gid`, `sid`) on a packet
    /// from `src` to `dst` at packet time `ts`. `rule_threshold` is the
    /// rule's parsed `threshold:` or `detection_filter:` option, if any.
    pub fn decide(
        &mut self,
        gid: u32,
        sid: u32,
        src: IpAddr,
        dst: IpAddr,
        ts: Timestamp,
        rule_threshold: Option<&RuleThreshold>,
    ) -> Decision {
        let (noalert, filter) = match self.config.resolve(gid, sid, src, dst, rule_threshold) {
            Resolution::Suppressed => {
                self.stats.suppressed += 1;
                return Decision::Silent;
            }
            Resolution::Filter { noalert, filter } => (noalert, filter),
        };
        let step = match filter {
            None => Step::Match,
            Some(f) => self.apply(&f, gid, sid, src, dst, ts),
        };
        let decision = match step {
            Step::NoMatch => {
                self.stats.thresholded += 1;
                Decision::Discard
            }
            Step::Silent => {
                self.stats.thresholded += 1;
                Decision::Silent
            }
            Step::Match => Decision::Alert,
            Step::MatchWithAction(a) => {
                self.stats.rate_filtered += 1;
                Decision::AlertWithAction(a)
            }
        };
        if noalert && decision != Decision::Discard {
            self.stats.suppressed += 1;
            return Decision::Silent;
        }
        decision
    }

    /// Removes trackers whose window ended before `now` (a rate_filter in
    /// its timeout is kept until a match ends the timeout). Optional: memory is bounded either way; call it on
    /// the packet clock's ticks to keep the table small. Never changes a
    /// later decision (an expired tracker would restart its window anyway).
    pub fn expire(&mut self, now: Timestamp) {
        let before = self.entries.len();
        let recency = &mut self.recency;
        self.entries.retain(|_, e| {
            let window_over = now >= e.start.plus_secs(u64::from(e.seconds));
            // A rate_filter in its timeout keeps its tracker: the first match
            // after the timeout must find it (that match is not counted).
            let keep = !(window_over && e.rate_since.is_none());
            if !keep {
                recency.remove(&e.seq);
            }
            keep
        });
        self.stats.expired += (before - self.entries.len()) as u64;
    }

    fn key(gid: u32, sid: u32, track: Track, src: IpAddr, dst: IpAddr) -> Key {
        let track = match track {
            Track::BySrc => TrackKey::Src(src),
            Track::ByDst => TrackKey::Dst(dst),
            Track::ByBoth => {
                if src <= dst {
                    TrackKey::Pair(src, dst)
                } else {
                    TrackKey::Pair(dst, src)
                }
            }
            Track::ByRule => TrackKey::Rule,
        };
        Key { gid, sid, track }
    }

    /// Looks the tracker up, marking it most recently used.
    fn lookup(&mut self, key: &Key) -> Option<&mut Entry> {
        let seq = self.next_seq;
        let e = self.entries.get_mut(key)?;
        self.recency.remove(&e.seq);
        e.seq = seq;
        self.recency.insert(seq, *key);
        self.next_seq += 1;
        Some(e)
    }

    /// A new tracker: one match counted, window starting at `ts`.
    fn insert(&mut self, key: Key, f: &Filter, ts: Timestamp) {
        while self.entries.len() >= self.max_entries {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
            self.stats.evicted += 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(
            key,
            Entry {
                seq,
                start: ts,
                count: 1,
                rate_since: None,
                seconds: f.seconds,
            },
        );
        self.recency.insert(seq, key);
    }

    /// One match of a rule through filter `f`: the tracker's new state and
    /// what becomes of the alert.
    fn apply(
        &mut self,
        f: &Filter,
        gid: u32,
        sid: u32,
        src: IpAddr,
        dst: IpAddr,
        ts: Timestamp,
    ) -> Step {
        let key = Self::key(gid, sid, f.track, src, dst);
        let Some(e) = self.lookup(&key) else {
            let step = first_match(f);
            // Suricata keeps no tracker for a threshold of count 1: every
            // match alerts.
            if !(matches!(f.ty, FilterType::Plain(FilterKind::Threshold)) && f.count == 1) {
                self.insert(key, f, ts);
            }
            return step;
        };
        e.next_match(f, ts)
    }
}

/// The first match for a tracker (it then counts one).
fn first_match(f: &Filter) -> Step {
    match f.ty {
        FilterType::Plain(FilterKind::Limit) => Step::Match,
        FilterType::Plain(FilterKind::Threshold | FilterKind::Both) => {
            if f.count == 1 {
                Step::Match
            } else {
                Step::NoMatch
            }
        }
        FilterType::Plain(FilterKind::DetectionFilter) => Step::NoMatch,
        FilterType::Rate { .. } => Step::Match,
    }
}

impl Entry {
    /// Restarts the window at `ts` with this match counted.
    fn restart(&mut self, ts: Timestamp) {
        self.start = ts;
        self.count = 1;
    }

    /// A later match for the tracker.
    fn next_match(&mut self, f: &Filter, ts: Timestamp) -> Step {
        let count = f.count;
        let in_window = ts < self.start.plus_secs(u64::from(f.seconds));
        let kind = match f.ty {
            FilterType::Rate { action, timeout } => {
                return self.rate_match(count, action, timeout, ts, in_window)
            }
            FilterType::Plain(kind) => kind,
        };
        if !in_window {
            self.restart(ts);
            return match kind {
                FilterKind::Limit => Step::Match,
                FilterKind::Both if count == 1 => Step::Match,
                _ => Step::NoMatch,
            };
        }
        self.count = self.count.saturating_add(1);
        match kind {
            FilterKind::Limit if self.count <= count => Step::Match,
            FilterKind::Limit => Step::Silent,
            FilterKind::Threshold if self.count >= count => {
                self.count = 0;
                Step::Match
            }
            FilterKind::Threshold => Step::NoMatch,
            FilterKind::Both if self.count == count => Step::Match,
            FilterKind::Both if self.count > count => Step::Silent,
            FilterKind::Both => Step::NoMatch,
            FilterKind::DetectionFilter if self.count > count => Step::Match,
            FilterKind::DetectionFilter => Step::NoMatch,
        }
    }

    /// A later match through a `rate_filter`: past `count` matches in the
    /// window, `action` applies for `timeout` seconds.
    fn rate_match(
        &mut self,
        count: u32,
        action: NewAction,
        timeout: u32,
        ts: Timestamp,
        in_window: bool,
    ) -> Step {
        let reached = match self.rate_since {
            Some(since) => {
                if ts.secs().saturating_sub(since) > i64::from(timeout) {
                    // Timeout over; this match does not count.
                    self.rate_since = None;
                    false
                } else {
                    true
                }
            }
            None => {
                if in_window {
                    self.count = self.count.saturating_add(1);
                    if self.count > count {
                        self.rate_since = Some(ts.secs());
                        true
                    } else {
                        false
                    }
                } else {
                    self.restart(ts);
                    false
                }
            }
        };
        match (reached, action) {
            // log and sdrop are parsed but, as in Suricata, leave the action alone.
            (true, NewAction::Log | NewAction::Sdrop) | (false, _) => Step::Match,
            (true, a) => Step::MatchWithAction(a),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threshold::{parse_detection_filter_keyword, parse_threshold_keyword};
    use crate::vars::Vars;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_parts(1_700_000_000 + secs, 0)
    }

    fn engine(conf: &str) -> ThresholdEngine {
        let (c, errors) = ThresholdConfig::parse(conf, "t", &Vars::suricata_defaults());
        assert!(errors.is_empty(), "{errors:?}");
        ThresholdEngine::new(Arc::new(c), DEFAULT_MAX_ENTRIES)
    }

    /// Runs `n` matches one second apart from the same hosts; returns the
    /// indices (0-based) that alerted.
    fn run(
        e: &mut ThresholdEngine,
        sid: u32,
        rule: Option<&RuleThreshold>,
        n: usize,
    ) -> Vec<usize> {
        (0..n)
            .filter(|&i| {
                e.decide(1, sid, ip("10.0.0.1"), ip("10.0.0.2"), t(i as i64), rule)
                    .alerts()
            })
            .collect()
    }

    #[test]
    fn limit_first_n_per_window() {
        let r = parse_threshold_keyword("type limit, track by_src, count 2, seconds 10").unwrap();
        let mut e = engine("");
        // 0..9 in window 1, 10..19 window 2, 20..24 window 3.
        assert_eq!(run(&mut e, 1, Some(&r), 25), vec![0, 1, 10, 11, 20, 21]);
        // Over the limit is a silent match (actions still apply).
        let d = e.decide(1, 1, ip("10.0.0.1"), ip("1.1.1.1"), t(22), Some(&r));
        assert_eq!(d, Decision::Silent);
    }

    #[test]
    fn threshold_every_nth() {
        let r =
            parse_threshold_keyword("type threshold, track by_src, count 3, seconds 100").unwrap();
        let mut e = engine("");
        assert_eq!(run(&mut e, 1, Some(&r), 10), vec![2, 5, 8]);
        let d = e.decide(1, 1, ip("10.0.0.1"), ip("1.1.1.1"), t(9), Some(&r));
        assert_eq!(d, Decision::Discard);
        // count 1: every match.
        let r1 =
            parse_threshold_keyword("type threshold, track by_src, count 1, seconds 100").unwrap();
        assert_eq!(run(&mut e, 2, Some(&r1), 4), vec![0, 1, 2, 3]);
        assert_eq!(
            e.stats().tracked,
            1,
            "count 1 keeps no tracker, as in Suricata"
        );
    }

    #[test]
    fn threshold_window_restart_counts_the_restarting_match() {
        let r =
            parse_threshold_keyword("type threshold, track by_src, count 2, seconds 5").unwrap();
        let mut e = engine("");
        let a = ip("10.0.0.1");
        let b = ip("10.0.0.2");
        assert!(!e.decide(1, 1, a, b, t(0), Some(&r)).alerts());
        // 5 s later is outside [0, 5): new window with this match counted.
        assert!(!e.decide(1, 1, a, b, t(5), Some(&r)).alerts());
        assert!(e.decide(1, 1, a, b, t(6), Some(&r)).alerts());
    }

    #[test]
    fn both_once_per_window_after_n() {
        let r = parse_threshold_keyword("type both, track by_src, count 3, seconds 10").unwrap();
        let mut e = engine("");
        assert_eq!(run(&mut e, 1, Some(&r), 25), vec![2, 12, 22]);
        let r1 = parse_threshold_keyword("type both, track by_src, count 1, seconds 10").unwrap();
        assert_eq!(run(&mut e, 2, Some(&r1), 25), vec![0, 10, 20]);
    }

    #[test]
    fn detection_filter_after_count_exceeded() {
        // suricata-verify threshold/detection_filter-rule-hostsrc: 8 matches
        // in one window; count 1 -> 7 alerts, 2 -> 6, 4 -> 4, 7 -> 1, 8 -> 0.
        for (count, alerts) in [(1, 7), (2, 6), (4, 4), (7, 1), (8, 0)] {
            let r = parse_detection_filter_keyword(&format!(
                "track by_src, count {count}, seconds 3600"
            ))
            .unwrap();
            let mut e = engine("");
            assert_eq!(run(&mut e, 1, Some(&r), 8).len(), alerts, "count {count}");
        }
        let r = parse_detection_filter_keyword("track by_dst, count 2, seconds 5").unwrap();
        let mut e = engine("");
        assert_eq!(run(&mut e, 1, Some(&r), 12), vec![2, 3, 4, 7, 8, 9]);
    }

    #[test]
    fn limit_by_rule_bug_4503() {
        // suricata-verify bug-4503: by_rule limit 5 per 300 s; one alert
        // expected when the rule matches once; and at most 5 for many.
        let r = parse_threshold_keyword("type limit, track by_rule, count 5, seconds 300").unwrap();
        let mut e = engine("");
        let mut n = 0;
        for i in 0..50u8 {
            let src = IpAddr::from([192, 168, 0, i]);
            if e.decide(1, 1, src, ip("8.8.8.8"), t(i64::from(i)), Some(&r))
                .alerts()
            {
                n += 1;
            }
        }
        assert_eq!(n, 5);
    }

    #[test]
    fn tracking_keys() {
        let r = parse_threshold_keyword("type limit, track by_src, count 1, seconds 60").unwrap();
        let mut e = engine("");
        let (a, b, c) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        assert!(e.decide(1, 1, a, b, t(0), Some(&r)).alerts());
        assert!(!e.decide(1, 1, a, c, t(1), Some(&r)).alerts());
        assert!(e.decide(1, 1, b, a, t(1), Some(&r)).alerts());
        // Another sid has its own tracker.
        assert!(e.decide(1, 2, a, b, t(1), Some(&r)).alerts());
        let r = parse_threshold_keyword("type limit, track by_dst, count 1, seconds 60").unwrap();
        assert!(e.decide(1, 3, a, c, t(0), Some(&r)).alerts());
        assert!(!e.decide(1, 3, b, c, t(1), Some(&r)).alerts());
        // by_both: both directions are one pair.
        let r = parse_threshold_keyword("type limit, track by_both, count 1, seconds 60").unwrap();
        assert!(e.decide(1, 4, a, b, t(0), Some(&r)).alerts());
        assert!(!e.decide(1, 4, b, a, t(1), Some(&r)).alerts());
        assert!(e.decide(1, 4, a, c, t(1), Some(&r)).alerts());
        // IPv6 works the same.
        assert!(e
            .decide(1, 5, ip("2001:db8::1"), a, t(0), Some(&r))
            .alerts());
    }

    #[test]
    fn suppress_by_ip_first_and_noalert() {
        let mut e = engine(
            "suppress gen_id 1, sig_id 2002087, track by_src, ip 209.132.180.67\n\
             suppress gen_id 1, sig_id 0, track by_dst, ip [10.9.0.0/16]\n\
             suppress gen_id 0, sig_id 0, track by_either, ip 172.16.5.5\n\
             suppress gen_id 1, sig_id 42\n",
        );
        let (x, y) = (ip("209.132.180.67"), ip("8.8.8.8"));
        assert_eq!(e.decide(1, 2002087, x, y, t(0), None), Decision::Silent);
        assert_eq!(e.decide(1, 2002087, y, x, t(0), None), Decision::Alert);
        assert_eq!(
            e.decide(1, 7, y, ip("10.9.1.1"), t(0), None),
            Decision::Silent
        );
        assert_eq!(
            e.decide(3, 7, y, ip("10.9.1.1"), t(0), None),
            Decision::Alert
        );
        assert_eq!(
            e.decide(3, 7, ip("172.16.5.5"), y, t(0), None),
            Decision::Silent
        );
        assert_eq!(
            e.decide(3, 7, y, ip("172.16.5.5"), t(0), None),
            Decision::Silent
        );
        assert_eq!(e.decide(1, 42, y, y, t(0), None), Decision::Silent);
        assert_eq!(e.stats().suppressed, 5);
        // Suppressed matches do not count towards the rule's threshold.
        let r =
            parse_threshold_keyword("type threshold, track by_rule, count 2, seconds 60").unwrap();
        assert_eq!(e.decide(1, 2002087, x, y, t(1), Some(&r)), Decision::Silent);
        assert_eq!(
            e.decide(1, 2002087, y, y, t(2), Some(&r)),
            Decision::Discard
        );
        assert_eq!(e.decide(1, 2002087, y, y, t(3), Some(&r)), Decision::Alert);
    }

    #[test]
    fn noalert_still_counts() {
        let r =
            parse_threshold_keyword("type threshold, track by_rule, count 2, seconds 60").unwrap();
        let mut e = engine("suppress gen_id 1, sig_id 9");
        let (a, b) = (ip("1.1.1.1"), ip("2.2.2.2"));
        assert_eq!(e.decide(1, 9, a, b, t(0), Some(&r)), Decision::Discard);
        assert_eq!(e.decide(1, 9, a, b, t(1), Some(&r)), Decision::Silent);
    }

    #[test]
    fn config_threshold_replaces_rule_threshold_for_its_sid() {
        let rule =
            parse_threshold_keyword("type limit, track by_src, count 1, seconds 60").unwrap();
        let mut e = engine(
            "threshold gen_id 1, sig_id 2002087, type limit, track by_src, count 3, seconds 60",
        );
        assert_eq!(run(&mut e, 2002087, Some(&rule), 5), vec![0, 1, 2]);
        // event_filter is the same thing; detection_filter is replaced too.
        let df = parse_detection_filter_keyword("track by_src, count 100, seconds 60").unwrap();
        let mut e =
            engine("event_filter gen_id 1, sig_id 5, type both, track by_src, count 2, seconds 60");
        assert_eq!(run(&mut e, 5, Some(&df), 5), vec![1]);
        // The later of two lines for one sid wins.
        let mut e = engine(
            "threshold gen_id 1, sig_id 5, type limit, track by_src, count 1, seconds 60\n\
             threshold gen_id 1, sig_id 5, type limit, track by_src, count 2, seconds 60",
        );
        assert_eq!(run(&mut e, 5, None, 5), vec![0, 1]);
    }

    #[test]
    fn wildcards_do_not_override_rule_thresholds() {
        let mut e =
            engine("threshold gen_id 0, sig_id 0, type limit, track by_src, count 1, seconds 60");
        let rule =
            parse_threshold_keyword("type limit, track by_src, count 2, seconds 60").unwrap();
        assert_eq!(run(&mut e, 1, None, 4), vec![0]);
        assert_eq!(run(&mut e, 2, Some(&rule), 4), vec![0, 1]);
        let mut e =
            engine("threshold gen_id 1, sig_id 0, type limit, track by_src, count 1, seconds 60");
        assert_eq!(run(&mut e, 3, None, 3), vec![0]);
        let n = (0..3)
            .filter(|&i| {
                e.decide(2, 3, ip("1.1.1.1"), ip("2.2.2.2"), t(i), None)
                    .alerts()
            })
            .count();
        assert_eq!(n, 3, "gen_id 1 wildcard does not cover gid 2");
        // A sid-specific line still overrides a wildcard, in either order.
        for conf in [
            "threshold gen_id 0, sig_id 0, type limit, track by_src, count 1, seconds 60\n\
             threshold gen_id 1, sig_id 7, type limit, track by_src, count 3, seconds 60",
            "threshold gen_id 1, sig_id 7, type limit, track by_src, count 3, seconds 60\n\
             threshold gen_id 0, sig_id 0, type limit, track by_src, count 1, seconds 60",
        ] {
            let mut e = engine(conf);
            assert_eq!(run(&mut e, 7, None, 5), vec![0, 1, 2], "{conf}");
        }
    }

    #[test]
    fn rate_filter_changes_action_then_times_out() {
        // Docs example: more than 10 matches a minute from one source ->
        // drop for 300 s.
        let mut e = engine(
            "rate_filter gen_id 1, sig_id 888, track by_src, count 10, seconds 60, new_action drop, timeout 300",
        );
        let (a, b) = (ip("203.0.113.9"), ip("10.0.0.22"));
        let ds: Vec<_> = (0..12)
            .map(|i| e.decide(1, 888, a, b, t(i), None))
            .collect();
        assert!(ds[..10].iter().all(|d| *d == Decision::Alert), "{ds:?}");
        assert_eq!(ds[10], Decision::AlertWithAction(NewAction::Drop));
        assert_eq!(ds[11], Decision::AlertWithAction(NewAction::Drop));
        // Another source is not affected.
        assert_eq!(e.decide(1, 888, b, a, t(12), None), Decision::Alert);
        // Still dropping 300 s after the start (10 + 300), not after.
        assert_eq!(
            e.decide(1, 888, a, b, t(310), None),
            Decision::AlertWithAction(NewAction::Drop)
        );
        assert_eq!(e.decide(1, 888, a, b, t(311), None), Decision::Alert);
        assert_eq!(e.stats().rate_filtered, 3);
        // Counting starts again.
        let ds: Vec<_> = (312..330)
            .map(|i| e.decide(1, 888, a, b, t(i), None))
            .collect();
        let first_drop = ds.iter().position(|d| *d != Decision::Alert);
        assert_eq!(first_drop, Some(10));
    }

    #[test]
    fn rate_filter_does_not_override_rule_threshold() {
        let rule =
            parse_threshold_keyword("type limit, track by_src, count 1, seconds 60").unwrap();
        let mut e = engine(
            "rate_filter gen_id 1, sig_id 5, track by_rule, count 1, seconds 60, new_action drop, timeout 10",
        );
        assert_eq!(run(&mut e, 5, Some(&rule), 3), vec![0]);
        // log/sdrop are accepted and leave the action alone.
        let mut e = engine(
            "rate_filter gen_id 1, sig_id 6, track by_rule, count 1, seconds 60, new_action sdrop, timeout 10",
        );
        assert_eq!(run(&mut e, 6, None, 3), vec![0, 1, 2]);
        assert_eq!(e.stats().rate_filtered, 0);
    }

    #[test]
    fn sub_second_window_edges_use_full_precision() {
        let r = parse_threshold_keyword("type limit, track by_rule, count 1, seconds 1").unwrap();
        let mut e = engine("");
        let (a, b) = (ip("1.1.1.1"), ip("2.2.2.2"));
        let base = Timestamp::from_parts(100, 500_000_000);
        assert!(e.decide(1, 1, a, b, base, Some(&r)).alerts());
        assert!(!e
            .decide(1, 1, a, b, Timestamp(base.0 + 999_999_999), Some(&r))
            .alerts());
        assert!(e
            .decide(1, 1, a, b, Timestamp(base.0 + 1_000_000_000), Some(&r))
            .alerts());
    }

    #[test]
    fn bounded_with_lru_eviction_counted_and_deterministic() {
        let r = parse_threshold_keyword("type limit, track by_src, count 1, seconds 3600").unwrap();
        let mk = || ThresholdEngine::new(Arc::new(ThresholdConfig::empty()), 100);
        let mut e1 = mk();
        let mut e2 = mk();
        let mut out1 = Vec::new();
        let mut out2 = Vec::new();
        for i in 0..1000u32 {
            let src = IpAddr::from((i % 300).to_be_bytes());
            let ts = t(i64::from(i));
            out1.push(e1.decide(1, 1, src, ip("1.1.1.1"), ts, Some(&r)));
            out2.push(e2.decide(1, 1, src, ip("1.1.1.1"), ts, Some(&r)));
        }
        assert_eq!(out1, out2);
        let s = e1.stats();
        assert_eq!(s.tracked, 100);
        assert!(s.evicted >= 900, "{s:?}");
        // The most recently used source is still tracked; evicted ones start over.
        let recent = IpAddr::from((999u32 % 300).to_be_bytes());
        assert!(!e1
            .decide(1, 1, recent, ip("1.1.1.1"), t(1000), Some(&r))
            .alerts());
        let old = IpAddr::from(150u32.to_be_bytes());
        assert!(e1
            .decide(1, 1, old, ip("1.1.1.1"), t(1001), Some(&r))
            .alerts());
    }

    #[test]
    fn expire_drops_finished_windows_without_changing_decisions() {
        let r = parse_threshold_keyword("type both, track by_src, count 2, seconds 10").unwrap();
        let mut e = engine("");
        let (a, b) = (ip("1.1.1.1"), ip("2.2.2.2"));
        e.decide(1, 1, a, b, t(0), Some(&r));
        e.expire(t(5));
        assert_eq!(e.stats().tracked, 1);
        assert!(e.decide(1, 1, a, b, t(6), Some(&r)).alerts());
        e.expire(t(10));
        assert_eq!(e.stats().tracked, 0);
        assert_eq!(e.stats().expired, 1);
        assert!(!e.decide(1, 1, a, b, t(11), Some(&r)).alerts());
        assert!(e.decide(1, 1, a, b, t(12), Some(&r)).alerts());
    }
}
