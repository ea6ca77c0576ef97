//! Evaluation: detection rules per record, correlation windows over record time.

use crate::config::{CorrelationLimits, FieldRef};
use crate::matcher::Ctx;
use crate::rules::{CorrelationType, Gate, Level, RuleSet, Search};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use zonewatch_syslog::LogRecord;
use zonewatch_types::Timestamp;

/// Correlation details of an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelationInfo {
    /// Correlation type.
    pub kind: CorrelationType,
    /// Group-by field names and the group's values.
    pub group: Vec<(String, String)>,
    /// Events (`event_count`), distinct values (`value_count`) or rules (`temporal`).
    pub count: u64,
    /// Time of the first event counted.
    pub window_start: Timestamp,
    /// Time of the last event counted.
    pub window_end: Timestamp,
    /// Ids of the referenced rules.
    pub rules: Vec<String>,
}

/// An alert.
#[derive(Debug, Clone, PartialEq)]
pub struct SigmaMatch {
    /// Rule id.
    pub rule_id: String,
    /// Rule title.
    pub title: String,
    /// Rule level.
    pub level: Level,
    /// Suricata severity 1 (highest) – 4, see [`Level::severity`].
    pub severity: u8,
    /// Rule tags.
    pub tags: Vec<String>,
    /// Alert time (record time; for a window closed by `flush`, the window end).
    pub timestamp: Timestamp,
    /// The matched record; for correlations the record that completed the window (`None` when
    /// the window was closed by time or `flush`).
    pub record: Option<LogRecord>,
    /// Set for correlation alerts.
    pub correlation: Option<CorrelationInfo>,
}

/// Engine counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Records evaluated.
    pub records: u64,
    /// Detection matches (including ones not emitted because a correlation consumes them).
    pub detection_matches: u64,
    /// Correlation alerts.
    pub correlation_alerts: u64,
    /// Correlation groups evicted at the group cap.
    pub groups_evicted: u64,
    /// Records skipped by a correlation because a group-by field was missing.
    pub missing_group_field: u64,
    /// Correlation groups open now.
    pub groups_open: u64,
}

#[derive(Debug, Default)]
struct Group {
    first: Timestamp,
    last: Timestamp,
    count: u64,
    events: VecDeque<Timestamp>,
    values: HashMap<String, Timestamp>,
    seen: Vec<Option<Timestamp>>,
}

/// SipHash with a configured key: group tables resist hash flooding by attacker-chosen group
/// values, and iterate (hence evict) in the same order on every run with the same seed.
#[derive(Debug, Clone, Copy)]
struct SeededHash(u64);

impl std::hash::BuildHasher for SeededHash {
    #[allow(deprecated)]
    type Hasher = std::hash::SipHasher;
    #[allow(deprecated)]
    fn build_hasher(&self) -> Self::Hasher {
        std::hash::SipHasher::new_with_keys(self.0, self.0.rotate_left(32) ^ 0x5a5a_5a5a_5a5a_5a5a)
    }
}

#[derive(Debug)]
struct CorrState {
    groups: HashMap<String, Group, SeededHash>,
    last_sweep: Timestamp,
}

/// Evaluates a [`RuleSet`] over records and keeps correlation state. One per thread (the
/// rule set is shared); correlation state is per engine.
#[derive(Debug)]
pub struct Engine {
    rules: Arc<RuleSet>,
    limits: CorrelationLimits,
    state: Vec<CorrState>,
    stats: EngineStats,
    matched: Vec<usize>,
    scratch: Scratch,
}

/// Per-record working memory, kept between records so that matching does not allocate.
#[derive(Debug, Default)]
struct Scratch {
    /// Per gate: unknown, shut or open for this record.
    gates: Vec<u8>,
    /// Per search of the rule being evaluated.
    memo: Vec<Option<bool>>,
    /// Per rule: one of its prefilter literals was seen (all false between records).
    seen: Vec<bool>,
    /// Rules to evaluate for this record.
    cands: Vec<usize>,
    /// The field-slot index of [`Ctx`].
    slots: Vec<u16>,
}

const GATE_UNKNOWN: u8 = 0;
const GATE_SHUT: u8 = 1;
const GATE_OPEN: u8 = 2;

const SEP: char = '\u{1f}';

impl Engine {
    /// An engine with empty correlation state.
    pub fn new(rules: Arc<RuleSet>, limits: CorrelationLimits) -> Self {
        let n = rules.correlations.len();
        Engine {
            rules,
            limits,
            state: (0..n)
                .map(|_| CorrState {
                    groups: HashMap::with_hasher(SeededHash(limits.hash_seed)),
                    last_sweep: Timestamp::default(),
                })
                .collect(),
            stats: EngineStats::default(),
            matched: Vec::new(),
            scratch: Scratch::default(),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Goes on with `rules` (a reload). A correlation of the new set whose
    /// id, type, referenced rules, group-by fields, window, threshold and
    /// value field are those of a correlation of the old set keeps that
    /// correlation's open groups (its windows go on counting); any other
    /// starts empty. Counters go on. Returns how many correlations kept
    /// their state.
    pub fn replace_rules(&mut self, rules: Arc<RuleSet>) -> usize {
        let same = |a: &crate::CorrelationRule, b: &crate::CorrelationRule| {
            a.meta.id == b.meta.id
                && a.kind == b.kind
                && a.rule_refs == b.rule_refs
                && a.group_by == b.group_by
                && a.timespan_secs == b.timespan_secs
                && a.threshold == b.threshold
                && a.value_field == b.value_field
        };
        let mut old: Vec<Option<CorrState>> = std::mem::take(&mut self.state)
            .into_iter()
            .map(Some)
            .collect();
        let seed = self.limits.hash_seed;
        let mut kept = 0;
        self.state = rules
            .correlations
            .iter()
            .map(|c| {
                let prev = self.rules.correlations.iter().position(|o| same(o, c));
                match prev.and_then(|i| old[i].take()) {
                    Some(st) => {
                        kept += 1;
                        st
                    }
                    None => CorrState {
                        groups: HashMap::with_hasher(SeededHash(seed)),
                        last_sweep: Timestamp::default(),
                    },
                }
            })
            .collect();
        self.rules = rules;
        self.matched.clear();
        self.scratch = Scratch::default();
        kept
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats;
        s.groups_open = self.state.iter().map(|c| c.groups.len() as u64).sum();
        s
    }

    /// Indices of the detection rules matching `rec` (stateless; for callers doing their own
    /// correlation).
    pub fn matching_rules(rules: &RuleSet, rec: &LogRecord, out: &mut Vec<usize>) {
        let mut scratch = Scratch::default();
        let mut ctx = Ctx::new(rec, rules.slots.len());
        Self::match_ctx(rules, rec, &mut ctx, &mut scratch, out);
    }

    fn match_ctx(
        rules: &RuleSet,
        rec: &LogRecord,
        ctx: &mut Ctx<'_>,
        scratch: &mut Scratch,
        out: &mut Vec<usize>,
    ) {
        out.clear();
        let Scratch {
            gates,
            memo,
            seen,
            cands,
            ..
        } = scratch;
        gates.clear();
        gates.resize(rules.gates.len(), GATE_UNKNOWN);
        let mut gate_open = |g: usize| match gates[g] {
            GATE_UNKNOWN => {
                let open = gate_holds(&rules.gates[g], rec);
                gates[g] = if open { GATE_OPEN } else { GATE_SHUT };
                open
            }
            v => v == GATE_OPEN,
        };
        // Candidates: rules one of whose literals the prefilter saw, and the rules it does not
        // cover whose gate is open; evaluated in rule order. Without a prefilter: every
        // active rule.
        cands.clear();
        match &rules.prefilter {
            Some(ac) => {
                if seen.len() != rules.detections.len() {
                    seen.clear();
                    seen.resize(rules.detections.len(), false);
                }
                // The automaton is ASCII-case-insensitive over lowercase literals: on an ASCII
                // message it finds what it finds on the lowercased message, without
                // lowercasing.
                let mut mark = |hay: &str| {
                    for hit in ac.find_overlapping_iter(hay) {
                        for &ri in &rules.prefilter_rules[hit.pattern().as_usize()] {
                            if !seen[ri] {
                                seen[ri] = true;
                                cands.push(ri);
                            }
                        }
                    }
                };
                if rec.message.is_ascii() {
                    mark(&rec.message);
                } else if let Some(m) = ctx.low(0, &FieldRef::Message) {
                    mark(m);
                }
                for &ri in cands.iter() {
                    seen[ri] = false;
                }
                for (g, group) in &rules.unfiltered {
                    if gate_open(*g) {
                        cands.extend_from_slice(group);
                    }
                }
                cands.sort_unstable();
            }
            None => cands.extend_from_slice(&rules.active),
        }
        for &i in cands.iter() {
            let r = &rules.detections[i];
            if !gate_open(r.gate) {
                continue;
            }
            if let Some(need) = &r.need_slots {
                if !need.iter().any(|&s| ctx.raw(s, &rules.slots[s]).is_some()) {
                    continue;
                }
            }
            memo.clear();
            memo.resize(r.searches.len(), None);
            let hit = r.cond.eval(&mut |s| {
                if let Some(v) = memo[s] {
                    return v;
                }
                let v = search_holds(&r.searches[s], ctx);
                memo[s] = Some(v);
                v
            });
            if hit {
                out.push(i);
            }
        }
    }

    /// Evaluates one record; appends alerts to `out`. Records should come in time order;
    /// late records are counted in the window they fall in.
    pub fn process(&mut self, rec: &LogRecord, out: &mut Vec<SigmaMatch>) {
        self.stats.records += 1;
        let rules = Arc::clone(&self.rules);
        let mut matched = std::mem::take(&mut self.matched);
        let mut scratch = std::mem::take(&mut self.scratch);
        let index = std::mem::take(&mut scratch.slots);
        let mut ctx = Ctx::with_index(rec, index, rules.slots.len());
        Self::match_ctx(&rules, rec, &mut ctx, &mut scratch, &mut matched);
        self.sweep(rec.timestamp, out);
        if matched.is_empty() {
            scratch.slots = ctx.into_index();
            self.scratch = scratch;
            self.matched = matched;
            return;
        }
        // A record matching several rules of one count correlation counts once.
        let mut counted: Vec<usize> = Vec::new();
        for &i in &matched {
            self.stats.detection_matches += 1;
            let r = &rules.detections[i];
            if r.emit {
                out.push(SigmaMatch {
                    rule_id: r.meta.id.clone(),
                    title: r.meta.title.clone(),
                    level: r.meta.level,
                    severity: r.meta.level.severity(),
                    tags: r.meta.tags.clone(),
                    timestamp: rec.timestamp,
                    record: Some(rec.clone()),
                    correlation: None,
                });
            }
            for &(ci, pos) in &r.corr_refs {
                let temporal = matches!(
                    rules.correlations[ci].kind,
                    CorrelationType::Temporal | CorrelationType::TemporalOrdered
                );
                if !temporal {
                    if counted.contains(&ci) {
                        continue;
                    }
                    counted.push(ci);
                }
                self.correlate(ci, pos, rec, &mut ctx, out);
            }
        }
        scratch.slots = ctx.into_index();
        self.scratch = scratch;
        self.matched = matched;
    }

    /// [`process`](Self::process) for a record parsed with `extract_fields: false`: its body
    /// fields are extracted ([`zonewatch_syslog::extract_fields`]) only when a rule that reads
    /// extracted fields has its log source open for the record, or when the record matches a
    /// rule (alerts and correlations always see the complete record). Matches, alerts and
    /// counters are those of parsing with extraction and calling `process`; `rec` is left
    /// complete whenever it was needed.
    pub fn process_deferred(&mut self, rec: &mut LogRecord, out: &mut Vec<SigmaMatch>) {
        let needed = match &self.rules.field_gates {
            None => true,
            Some(g) => g.iter().any(|&g| gate_holds(&self.rules.gates[g], rec)),
        };
        if !needed {
            // Rules that read extracted fields are all gated off: matching without them gives
            // the same result.
            let mut matched = std::mem::take(&mut self.matched);
            let mut scratch = std::mem::take(&mut self.scratch);
            let index = std::mem::take(&mut scratch.slots);
            let mut ctx = Ctx::with_index(rec, index, self.rules.slots.len());
            Self::match_ctx(&self.rules, rec, &mut ctx, &mut scratch, &mut matched);
            scratch.slots = ctx.into_index();
            self.scratch = scratch;
            let hit = !matched.is_empty();
            self.matched = matched;
            if !hit {
                self.stats.records += 1;
                self.sweep(rec.timestamp, out);
                return;
            }
        }
        zonewatch_syslog::extract_fields(rec);
        self.process(rec, out);
    }

    /// End of input: closes every open window, emitting those whose condition holds (windows
    /// with an upper bound — `lt`, `lte`, `eq` — can only be decided here or when they
    /// expire; lower-bound-only windows have already fired when reached). Clears all state.
    pub fn flush(&mut self, out: &mut Vec<SigmaMatch>) {
        for ci in 0..self.state.len() {
            let seed = SeededHash(self.limits.hash_seed);
            let groups = std::mem::replace(&mut self.state[ci].groups, HashMap::with_hasher(seed));
            let mut keys: Vec<(String, Group)> = groups.into_iter().collect();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, g) in keys {
                self.close(ci, &k, &g, out);
            }
        }
    }

    /// Time-driven window closing, at most once per shortest timespan of record time.
    fn sweep(&mut self, now: Timestamp, out: &mut Vec<SigmaMatch>) {
        for ci in 0..self.state.len() {
            let span = self.rules.correlations[ci].timespan_secs as i64;
            if now.secs_since(self.state[ci].last_sweep) < span {
                continue;
            }
            self.state[ci].last_sweep = now;
            let expired: Vec<String> = {
                let st = &self.state[ci];
                let mut v: Vec<String> = st
                    .groups
                    .iter()
                    .filter(|(_, g)| now.secs_since(g.first) >= span)
                    .map(|(k, _)| k.clone())
                    .collect();
                v.sort();
                v
            };
            for k in expired {
                if let Some(g) = self.state[ci].groups.remove(&k) {
                    self.close(ci, &k, &g, out);
                }
            }
        }
    }

    /// A window ends: emits if an upper-bounded condition holds.
    fn close(&mut self, ci: usize, key: &str, g: &Group, out: &mut Vec<SigmaMatch>) {
        let c = &self.rules.correlations[ci];
        if c.threshold.monotone() {
            return;
        }
        let n = match c.kind {
            CorrelationType::EventCount => g.count,
            CorrelationType::ValueCount => g.values.len() as u64,
            _ => return,
        };
        if c.threshold.holds(n) {
            let end = g.last;
            self.emit(ci, key, n, g.first, end, None, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        ci: usize,
        key: &str,
        count: u64,
        start: Timestamp,
        end: Timestamp,
        rec: Option<&LogRecord>,
        out: &mut Vec<SigmaMatch>,
    ) {
        let c = &self.rules.correlations[ci];
        self.stats.correlation_alerts += 1;
        let group = if c.group_by.is_empty() {
            Vec::new()
        } else {
            c.group_by
                .iter()
                .cloned()
                .zip(key.split(SEP).map(str::to_owned))
                .collect()
        };
        out.push(SigmaMatch {
            rule_id: c.meta.id.clone(),
            title: c.meta.title.clone(),
            level: c.meta.level,
            severity: c.meta.level.severity(),
            tags: c.meta.tags.clone(),
            timestamp: end,
            record: rec.cloned(),
            correlation: Some(CorrelationInfo {
                kind: c.kind,
                group,
                count,
                window_start: start,
                window_end: end,
                rules: c
                    .rules
                    .iter()
                    .map(|&i| self.rules.detections[i].meta.id.clone())
                    .collect(),
            }),
        });
    }

    fn correlate(
        &mut self,
        ci: usize,
        pos: usize,
        rec: &LogRecord,
        ctx: &mut Ctx<'_>,
        out: &mut Vec<SigmaMatch>,
    ) {
        let rules = Arc::clone(&self.rules);
        let c = &rules.correlations[ci];
        let mut key = String::new();
        for (i, (slot, f)) in c.group_slots.iter().enumerate() {
            match ctx.raw(*slot, f) {
                Some(v) if !v.is_empty() => {
                    if i > 0 {
                        key.push(SEP);
                    }
                    key.extend(v.chars().filter(|&ch| ch != SEP).take(512));
                }
                _ => {
                    self.stats.missing_group_field += 1;
                    return;
                }
            }
        }
        let value = match &c.value_slot {
            Some((slot, f)) => match ctx.raw(*slot, f) {
                Some(v) => Some(v.chars().take(512).collect::<String>()),
                None => return,
            },
            None => None,
        };
        let now = rec.timestamp;
        let span_ns = (c.timespan_secs as i64).saturating_mul(1_000_000_000);
        let horizon = Timestamp(now.0.saturating_sub(span_ns));
        if !self.state[ci].groups.contains_key(&key) {
            self.make_room(ci, now, span_ns);
        }
        let limits = self.limits;
        let nrules = c.rules.len();
        // Fixed window (upper-bounded conditions): close it first if this event is past its end.
        if !c.threshold.monotone() {
            let expired = self.state[ci]
                .groups
                .get(&key)
                .is_some_and(|g| now.0.saturating_sub(g.first.0) >= span_ns);
            if expired {
                if let Some(g) = self.state[ci].groups.remove(&key) {
                    self.close(ci, &key, &g, out);
                }
            }
        }
        let g = self.state[ci]
            .groups
            .entry(key.clone())
            .or_insert_with(|| Group {
                first: now,
                last: now,
                seen: vec![None; nrules],
                ..Group::default()
            });
        g.last = g.last.max(now);
        let fire: Option<(u64, Timestamp)> = match c.kind {
            CorrelationType::EventCount if c.threshold.monotone() => {
                g.events.push_back(now);
                while g.events.front().is_some_and(|t| *t < horizon) {
                    g.events.pop_front();
                }
                let keep = c
                    .threshold
                    .min_count()
                    .min(limits.max_events_per_group as u64) as usize;
                while g.events.len() > keep.max(1) {
                    g.events.pop_front();
                }
                let n = g.events.len() as u64;
                c.threshold
                    .holds(n)
                    .then(|| (n, g.events.front().copied().unwrap_or(now)))
            }
            CorrelationType::EventCount => {
                g.count += 1;
                None
            }
            CorrelationType::ValueCount => {
                if let Some(v) = value {
                    if g.values.len() < limits.max_values_per_group || g.values.contains_key(&v) {
                        g.values.insert(v, now);
                    }
                }
                if c.threshold.monotone() {
                    g.values.retain(|_, t| *t >= horizon);
                    let n = g.values.len() as u64;
                    let start = g.values.values().min().copied().unwrap_or(now);
                    c.threshold.holds(n).then_some((n, start))
                } else {
                    None
                }
            }
            CorrelationType::Temporal | CorrelationType::TemporalOrdered => {
                if let Some(s) = g.seen.get_mut(pos) {
                    *s = Some(now);
                }
                for s in g.seen.iter_mut() {
                    if s.is_some_and(|t| t < horizon) {
                        *s = None;
                    }
                }
                let all = g.seen.iter().all(Option::is_some);
                let ordered =
                    c.kind == CorrelationType::Temporal || g.seen.windows(2).all(|w| w[0] <= w[1]);
                let need = c
                    .threshold
                    .min_count()
                    .max(nrules as u64)
                    .min(nrules as u64);
                let n = g.seen.iter().filter(|s| s.is_some()).count() as u64;
                (all && ordered && n >= need)
                    .then(|| (n, g.seen.iter().flatten().min().copied().unwrap_or(now)))
            }
        };
        if let Some((n, start)) = fire {
            self.state[ci].groups.remove(&key);
            self.emit(ci, &key, n, start, now, Some(rec), out);
        }
    }

    /// At the group cap: drop expired groups (monotone ones silently — they cannot fire any
    /// more), then evict the least recently seen of a sample.
    fn make_room(&mut self, ci: usize, now: Timestamp, span_ns: i64) {
        let max = self.limits.max_groups.max(1);
        let st = &mut self.state[ci];
        if st.groups.len() < max {
            return;
        }
        st.groups
            .retain(|_, g| now.0.saturating_sub(g.last.0) < span_ns);
        while st.groups.len() >= max {
            let victim = st
                .groups
                .iter()
                .take(16)
                .min_by_key(|(_, g)| g.last)
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    st.groups.remove(&k);
                    self.stats.groups_evicted += 1;
                }
                None => break,
            }
        }
    }
}

fn gate_holds(g: &Gate, rec: &LogRecord) -> bool {
    use crate::config::SourceCond::*;
    match g {
        Gate::Always => true,
        Gate::Never => false,
        Gate::All(groups) => groups.iter().all(|conds| {
            conds.iter().any(|c| match c {
                Any => true,
                App(a) => rec.app_name.as_deref().is_some_and(|n| app_matches(n, a)),
                Facility(f) => {
                    rec.facility == *f && !rec.flags.contains(zonewatch_syslog::Flags::NO_PRI)
                }
                MessageContains(s) => rec.message.contains(s.as_str()),
                HasField(f) => rec.field(f).is_some(),
            })
        }),
    }
}

fn app_matches(name: &str, want: &str) -> bool {
    let n = name.as_bytes();
    let w = want.as_bytes();
    n.len() >= w.len()
        && n[..w.len()].eq_ignore_ascii_case(w)
        && (n.len() == w.len() || matches!(n[w.len()], b'(' | b'-' | b'/' | b'[' | b'.'))
}

fn search_holds(s: &Search, ctx: &mut Ctx<'_>) -> bool {
    s.alts.iter().any(|alt| {
        alt.iter().all(|t| {
            if t.all {
                t.values.iter().all(|v| v.test(ctx, t.slot, &t.field))
            } else {
                t.values.iter().any(|v| v.test(ctx, t.slot, &t.field))
            }
        })
    })
}

/// Resolves a field of a record with the rule set's mapping (for rendering alerts).
pub fn field_value<'a>(rec: &'a LogRecord, f: &FieldRef) -> Option<std::borrow::Cow<'a, str>> {
    crate::matcher::resolve(rec, f)
}
