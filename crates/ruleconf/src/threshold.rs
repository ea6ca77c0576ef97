//! Thresholds: the rule keywords `threshold:` and `detection_filter:`, and
//! `threshold.config` (`suppress`, `threshold`, `event_filter`,
//! `rate_filter`), parsed as Suricata 7 parses them. The runtime that applies
//! them is [`crate::ThresholdEngine`]; `docs/threshold.md` explains the
//! semantics for analysts.
//!
//! Differences from Suricata's parser, all in the direction of accepting
//! what Suricata accepts: options of a `threshold.config` line may come in
//! any order (Suricata wants the documented order). Rejected, with a reason:
//! `count 0`, Suricata 8's `track by_flow`, `type backoff` and `unique_on`.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use crate::addr::AddressSet;
use crate::conffile::{logical_lines, read, too_long, ConfigError, LoadError};
use crate::vars::Vars;

/// How matches are grouped for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// Per source address.
    BySrc,
    /// Per destination address.
    ByDst,
    /// Once for the whole rule.
    ByRule,
    /// Per address pair (both directions count as the same pair).
    ByBoth,
}

/// The kind of a per-rule threshold (`threshold:` / `detection_filter:`)
/// or a `threshold.config` `threshold`/`event_filter` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterKind {
    /// Alert on the first `count` matches of each window of `seconds`.
    Limit,
    /// Alert on every `count`-th match within a window.
    Threshold,
    /// Alert once per window, on the `count`-th match.
    Both,
    /// `detection_filter`: alert on every match after the first `count`
    /// within a window.
    DetectionFilter,
}

/// A parsed `threshold:` or `detection_filter:` rule option (or the
/// equivalent `threshold.config` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleThreshold {
    /// What to do with the count.
    pub kind: FilterKind,
    /// What to count by.
    pub track: Track,
    /// The count (at least 1).
    pub count: u32,
    /// The window in seconds.
    pub seconds: u32,
}

/// An invalid `threshold:` / `detection_filter:` option string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeywordError(pub String);

/// Whom a `suppress ... track` line matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SuppressTrack {
    /// Source address in the list.
    BySrc,
    /// Destination address in the list.
    ByDst,
    /// Source or destination address in the list.
    ByEither,
}

/// `rate_filter` `new_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NewAction {
    /// Alert.
    Alert,
    /// Drop (reported as `blocked` in IPS mode; an alert in IDS mode).
    Drop,
    /// Pass.
    Pass,
    /// Reject.
    Reject,
    /// Accepted by Suricata's parser but not implemented: the action is
    /// left unchanged.
    Log,
    /// Accepted by Suricata's parser but not implemented: the action is
    /// left unchanged.
    Sdrop,
}

impl fmt::Display for NewAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NewAction::Alert => "alert",
            NewAction::Drop => "drop",
            NewAction::Pass => "pass",
            NewAction::Reject => "reject",
            NewAction::Log => "log",
            NewAction::Sdrop => "sdrop",
        })
    }
}

/// One `threshold.config` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThresholdEntry {
    /// `suppress gen_id G, sig_id S[, track T, ip LIST]`: without `track`
    /// the rule never alerts; with it, alerts whose source/destination is
    /// in the list are dropped.
    Suppress {
        /// Generator id (0 = all).
        gid: u32,
        /// Signature id (0 = all of `gid`).
        sid: u32,
        /// Whom to suppress; `None` = every alert of the rule.
        target: Option<(SuppressTrack, AddressSet)>,
    },
    /// `threshold`/`event_filter gen_id G, sig_id S, type T, track T,
    /// count N, seconds T`.
    Threshold {
        /// Generator id (0 = all).
        gid: u32,
        /// Signature id (0 = all of `gid`).
        sid: u32,
        /// The threshold (kind is limit, threshold or both).
        filter: RuleThreshold,
    },
    /// `rate_filter gen_id G, sig_id S, track T, count N, seconds T,
    /// new_action A, timeout T`.
    RateFilter {
        /// Generator id (0 = all).
        gid: u32,
        /// Signature id (0 = all of `gid`).
        sid: u32,
        /// What to count by.
        track: Track,
        /// Matches allowed per window before the action changes.
        count: u32,
        /// The window.
        seconds: u32,
        /// The action once the rate is exceeded.
        new_action: NewAction,
        /// How long the new action holds, in seconds.
        timeout: u32,
    },
}

impl ThresholdEntry {
    fn ids(&self) -> (u32, u32) {
        match *self {
            ThresholdEntry::Suppress { gid, sid, .. }
            | ThresholdEntry::Threshold { gid, sid, .. }
            | ThresholdEntry::RateFilter { gid, sid, .. } => (gid, sid),
        }
    }
}

/// A parsed `threshold.config`, indexed by gen_id/sig_id.
#[derive(Debug, Clone, Default)]
pub struct ThresholdConfig {
    entries: Vec<(usize, ThresholdEntry)>,
    by_sig: HashMap<(u32, u32), Vec<u32>>,
    by_gid: HashMap<u32, Vec<u32>>,
    global: Vec<u32>,
}

/// The effective filter of a rule after `threshold.config` was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterType {
    Plain(FilterKind),
    Rate { action: NewAction, timeout: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Filter {
    pub(crate) ty: FilterType,
    pub(crate) track: Track,
    pub(crate) count: u32,
    pub(crate) seconds: u32,
}

impl From<&RuleThreshold> for Filter {
    fn from(r: &RuleThreshold) -> Self {
        Filter {
            ty: FilterType::Plain(r.kind),
            track: r.track,
            count: r.count,
            seconds: r.seconds,
        }
    }
}

/// What `threshold.config` says about one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// A `suppress ... track ..., ip ...` line matched the addresses.
    Suppressed,
    /// Apply `filter` (if any); `noalert` if a `suppress` without `track`
    /// covers the rule.
    Filter {
        noalert: bool,
        filter: Option<Filter>,
    },
}

impl ThresholdConfig {
    /// No entries.
    pub fn empty() -> ThresholdConfig {
        ThresholdConfig::default()
    }

    /// Parses a file's text; `ip` lists may use `vars`. Bad lines are
    /// skipped and returned as errors naming `file` and the line.
    pub fn parse(text: &str, file: &str, vars: &Vars) -> (ThresholdConfig, Vec<ConfigError>) {
        let mut cfg = ThresholdConfig::default();
        let mut errors = Vec::new();
        for (line, l) in logical_lines(text) {
            let Some(l) = l else {
                errors.push(too_long(file, line));
                continue;
            };
            match parse_line(&l, vars) {
                Ok(e) => cfg.push(line, e),
                Err(message) => errors.push(ConfigError {
                    file: file.to_string(),
                    line,
                    message,
                }),
            }
        }
        (cfg, errors)
    }

    /// Reads and parses a file.
    pub fn load(
        path: &Path,
        vars: &Vars,
    ) -> Result<(ThresholdConfig, Vec<ConfigError>), LoadError> {
        let text = read(path)?;
        Ok(ThresholdConfig::parse(
            &text,
            &path.display().to_string(),
            vars,
        ))
    }

    fn push(&mut self, line: usize, e: ThresholdEntry) {
        let idx = self.entries.len() as u32;
        let (gid, sid) = e.ids();
        match (gid, sid) {
            (0, _) => self.global.push(idx),
            (g, 0) => self.by_gid.entry(g).or_default().push(idx),
            (g, s) => self.by_sig.entry((g, s)).or_default().push(idx),
        }
        self.entries.push((line, e));
    }

    /// The entries with their line numbers, in file order.
    pub fn entries(&self) -> impl Iterator<Item = (usize, &ThresholdEntry)> {
        self.entries.iter().map(|(l, e)| (*l, e))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Applies the entries that cover (gid, sid), in file order, the way
    /// Suricata installs them on the rule at load time:
    /// - `suppress` without track: the rule becomes noalert; with track and
    ///   ip: checked first, a match suppresses the alert.
    /// - `gen_id 0`/`sig_id 0` wildcards (threshold, event_filter,
    ///   rate_filter) apply only to rules that have no threshold yet (rule
    ///   keywords win).
    /// - a `rate_filter` for the exact sid applies only if the rule has no
    ///   threshold yet.
    /// - a `threshold`/`event_filter` for the exact sid replaces the rule's
    ///   threshold or detection_filter (or an earlier line's).
    pub(crate) fn resolve(
        &self,
        gid: u32,
        sid: u32,
        src: IpAddr,
        dst: IpAddr,
        rule: Option<&RuleThreshold>,
    ) -> Resolution {
        let mut filter = rule.map(Filter::from);
        if self.entries.is_empty() {
            return Resolution::Filter {
                noalert: false,
                filter,
            };
        }
        let empty: &[u32] = &[];
        let a = self.by_sig.get(&(gid, sid)).map_or(empty, Vec::as_slice);
        let b = self.by_gid.get(&gid).map_or(empty, Vec::as_slice);
        let c = self.global.as_slice();
        let mut noalert = false;
        let (mut i, mut j, mut k) = (0, 0, 0);
        loop {
            // Three-way merge of ascending index lists = file order.
            let next = [a.get(i), b.get(j), c.get(k)]
                .into_iter()
                .enumerate()
                .filter_map(|(n, v)| v.map(|v| (*v, n)))
                .min();
            let Some((idx, from)) = next else { break };
            match from {
                0 => i += 1,
                1 => j += 1,
                _ => k += 1,
            }
            let Some((_, entry)) = self.entries.get(idx as usize) else {
                break;
            };
            let exact = from == 0;
            match entry {
                ThresholdEntry::Suppress { target, .. } => match target {
                    None => noalert = true,
                    Some((t, set)) => {
                        let hit = match t {
                            SuppressTrack::BySrc => set.contains(src),
                            SuppressTrack::ByDst => set.contains(dst),
                            SuppressTrack::ByEither => set.contains(src) || set.contains(dst),
                        };
                        if hit {
                            return Resolution::Suppressed;
                        }
                    }
                },
                ThresholdEntry::Threshold { filter: f, .. } => {
                    if exact || filter.is_none() {
                        filter = Some(Filter::from(f));
                    }
                }
                ThresholdEntry::RateFilter {
                    track,
                    count,
                    seconds,
                    new_action,
                    timeout,
                    ..
                } => {
                    if filter.is_none() {
                        filter = Some(Filter {
                            ty: FilterType::Rate {
                                action: *new_action,
                                timeout: *timeout,
                            },
                            track: *track,
                            count: *count,
                            seconds: *seconds,
                        });
                    }
                }
            }
        }
        Resolution::Filter { noalert, filter }
    }
}

/// Parses the option string of the `threshold:` rule keyword:
/// `type limit|threshold|both, track by_src|by_dst|by_rule|by_both,
/// count N, seconds T` (any order, each once).
pub fn parse_threshold_keyword(s: &str) -> Result<RuleThreshold, KeywordError> {
    let opts = KeyValues::parse(s, &["type", "track", "count", "seconds"]).map_err(KeywordError)?;
    let kind = parse_type(opts.get("type")).map_err(KeywordError)?;
    Ok(RuleThreshold {
        kind,
        track: parse_track(opts.get("track")).map_err(KeywordError)?,
        count: parse_count(opts.get("count")).map_err(KeywordError)?,
        seconds: parse_u32("seconds", opts.get("seconds")).map_err(KeywordError)?,
    })
}

/// Parses the option string of the `detection_filter:` rule keyword:
/// `track by_src|by_dst|by_rule|by_both, count N, seconds T` (any order,
/// each once).
pub fn parse_detection_filter_keyword(s: &str) -> Result<RuleThreshold, KeywordError> {
    let opts = KeyValues::parse(s, &["track", "count", "seconds"]).map_err(KeywordError)?;
    Ok(RuleThreshold {
        kind: FilterKind::DetectionFilter,
        track: parse_track(opts.get("track")).map_err(KeywordError)?,
        count: parse_count(opts.get("count")).map_err(KeywordError)?,
        seconds: parse_u32("seconds", opts.get("seconds")).map_err(KeywordError)?,
    })
}

/// `key value` options separated by commas (commas inside `[...]` do not
/// separate). Every key of `keys` must appear exactly once, no other key.
struct KeyValues<'a> {
    keys: &'static [&'static str],
    values: Vec<&'a str>,
}

impl<'a> KeyValues<'a> {
    fn parse(s: &'a str, keys: &'static [&'static str]) -> Result<KeyValues<'a>, String> {
        let mut values: Vec<Option<&'a str>> = vec![None; keys.len()];
        for field in split_top_level(s) {
            let field = field.trim();
            if field.is_empty() {
                return Err("empty option (stray `,`)".to_string());
            }
            let (key, value) = match field.find(|c: char| c.is_ascii_whitespace()) {
                Some(n) => (&field[..n], field[n..].trim()),
                None => (field, ""),
            };
            if key == "unique_on" {
                return Err("`unique_on` needs Suricata 8 and is not supported".to_string());
            }
            let Some(pos) = keys.iter().position(|k| *k == key) else {
                return Err(format!(
                    "unknown option `{}` (expected {})",
                    clip(key),
                    keys.join(", ")
                ));
            };
            if value.is_empty() {
                return Err(format!("`{key}` needs a value"));
            }
            if values[pos].is_some() {
                return Err(format!("`{key}` given twice"));
            }
            values[pos] = Some(value);
        }
        let mut out = Vec::with_capacity(keys.len());
        for (k, v) in keys.iter().zip(values) {
            out.push(v.ok_or_else(|| format!("missing `{k}`"))?);
        }
        Ok(KeyValues { keys, values: out })
    }

    fn get(&self, key: &str) -> &'a str {
        self.keys
            .iter()
            .position(|k| *k == key)
            .and_then(|i| self.values.get(i).copied())
            .unwrap_or("")
    }
}

fn clip(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_type(v: &str) -> Result<FilterKind, String> {
    match v.to_ascii_lowercase().as_str() {
        "limit" => Ok(FilterKind::Limit),
        "threshold" => Ok(FilterKind::Threshold),
        "both" => Ok(FilterKind::Both),
        "backoff" => Err("`type backoff` needs Suricata 8 and is not supported".to_string()),
        _ => Err(format!(
            "invalid type `{}` (expected limit, threshold or both)",
            clip(v)
        )),
    }
}

fn parse_track(v: &str) -> Result<Track, String> {
    match v.to_ascii_lowercase().as_str() {
        "by_src" => Ok(Track::BySrc),
        "by_dst" => Ok(Track::ByDst),
        "by_rule" => Ok(Track::ByRule),
        "by_both" => Ok(Track::ByBoth),
        "by_flow" => Err("`track by_flow` needs Suricata 8 and is not supported".to_string()),
        _ => Err(format!(
            "invalid track `{}` (expected by_src, by_dst, by_rule or by_both)",
            clip(v)
        )),
    }
}

fn parse_u32(what: &str, v: &str) -> Result<u32, String> {
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid {what} `{}` (expected a number)", clip(v)));
    }
    v.parse::<u32>()
        .map_err(|_| format!("{what} `{v}` is above 4294967295"))
}

fn parse_count(v: &str) -> Result<u32, String> {
    let n = parse_u32("count", v)?;
    if n == 0 {
        return Err("count must be at least 1".to_string());
    }
    Ok(n)
}

fn parse_new_action(v: &str) -> Result<NewAction, String> {
    match v.to_ascii_lowercase().as_str() {
        "alert" => Ok(NewAction::Alert),
        "drop" => Ok(NewAction::Drop),
        "pass" => Ok(NewAction::Pass),
        "reject" => Ok(NewAction::Reject),
        "log" => Ok(NewAction::Log),
        "sdrop" => Ok(NewAction::Sdrop),
        _ => Err(format!(
            "invalid new_action `{}` (expected alert, drop, pass or reject)",
            clip(v)
        )),
    }
}

/// One logical `threshold.config` line.
fn parse_line(l: &str, vars: &Vars) -> Result<ThresholdEntry, String> {
    let l = l.trim();
    let end = l.find(|c: char| c.is_ascii_whitespace()).unwrap_or(l.len());
    let (word, rest) = (&l[..end], &l[end..]);
    let word_lc = word.to_ascii_lowercase();
    let fields = split_top_level(rest);
    let mut fields = fields.iter().map(|f| f.trim());
    let gid = id_field(fields.next(), "gen_id")?;
    let sid = id_field(fields.next(), "sig_id")?;
    if sid > 0 && gid == 0 {
        return Err("sig_id > 0 needs gen_id > 0".to_string());
    }
    let tail: Vec<&str> = fields.collect();
    let tail = tail.join(",");
    match word_lc.as_str() {
        "suppress" => {
            if tail.trim().is_empty() {
                return Ok(ThresholdEntry::Suppress {
                    gid,
                    sid,
                    target: None,
                });
            }
            let kv = KeyValues::parse(&tail, &["track", "ip"])?;
            let track = match kv.get("track").to_ascii_lowercase().as_str() {
                "by_src" => SuppressTrack::BySrc,
                "by_dst" => SuppressTrack::ByDst,
                "by_either" => SuppressTrack::ByEither,
                other => {
                    return Err(format!(
                        "invalid suppress track `{}` (expected by_src, by_dst or by_either)",
                        clip(other)
                    ))
                }
            };
            let ip = kv.get("ip");
            let set = vars
                .address(ip)
                .map_err(|e| format!("ip `{}`: {e}", clip(ip)))?;
            Ok(ThresholdEntry::Suppress {
                gid,
                sid,
                target: Some((track, set)),
            })
        }
        "threshold" | "event_filter" => {
            let kv = KeyValues::parse(&tail, &["type", "track", "count", "seconds"])?;
            Ok(ThresholdEntry::Threshold {
                gid,
                sid,
                filter: RuleThreshold {
                    kind: parse_type(kv.get("type"))?,
                    track: parse_track(kv.get("track"))?,
                    count: parse_count(kv.get("count"))?,
                    seconds: parse_u32("seconds", kv.get("seconds"))?,
                },
            })
        }
        "rate_filter" => {
            let kv = KeyValues::parse(
                &tail,
                &["track", "count", "seconds", "new_action", "timeout"],
            )?;
            Ok(ThresholdEntry::RateFilter {
                gid,
                sid,
                track: parse_track(kv.get("track"))?,
                count: parse_count(kv.get("count"))?,
                seconds: parse_u32("seconds", kv.get("seconds"))?,
                new_action: parse_new_action(kv.get("new_action"))?,
                timeout: parse_u32("timeout", kv.get("timeout"))?,
            })
        }
        _ => Err(format!(
            "unknown directive `{}` (expected suppress, threshold, event_filter or rate_filter)",
            clip(word)
        )),
    }
}

fn id_field(f: Option<&str>, key: &str) -> Result<u32, String> {
    let f = f.unwrap_or("");
    let v = f
        .strip_prefix(key)
        .map(str::trim)
        .filter(|_| !f.is_empty())
        .ok_or_else(|| format!("expected `{key} N`, found `{}`", clip(f)))?;
    parse_u32(key, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_keyword_forms() {
        let t = parse_threshold_keyword("type limit, track by_src, count 1, seconds 60").unwrap();
        assert_eq!(
            t,
            RuleThreshold {
                kind: FilterKind::Limit,
                track: Track::BySrc,
                count: 1,
                seconds: 60
            }
        );
        let t = parse_threshold_keyword(" track by_rule,count 5 ,seconds 300, type both ").unwrap();
        assert_eq!(
            (t.kind, t.track, t.count, t.seconds),
            (FilterKind::Both, Track::ByRule, 5, 300)
        );
        let t =
            parse_threshold_keyword("type threshold, track by_both, count 10, seconds 0").unwrap();
        assert_eq!(t.track, Track::ByBoth);
        let d = parse_detection_filter_keyword("track by_dst, count 2, seconds 3600").unwrap();
        assert_eq!(
            (d.kind, d.track, d.count),
            (FilterKind::DetectionFilter, Track::ByDst, 2)
        );
    }

    #[test]
    fn threshold_keyword_errors() {
        for bad in [
            "",
            "type limit, track by_src, count 1",
            "type limit, track by_src, count 1, seconds 60, seconds 60",
            "type limit, track by_src, count 0, seconds 60",
            "type limit, track by_src, count -1, seconds 60",
            "type limit, track by_src, count 99999999999, seconds 60",
            "type sometimes, track by_src, count 1, seconds 60",
            "type limit, track by_flow, count 1, seconds 60",
            "type backoff, track by_src, count 1, multiplier 2",
            "type limit, track by_src, count 1, seconds 60,",
            "type limit track by_src, count 1, seconds 60",
            "type, track by_src, count 1, seconds 60",
        ] {
            assert!(parse_threshold_keyword(bad).is_err(), "{bad}");
        }
        let e =
            parse_threshold_keyword("type limit, track by_flow, count 1, seconds 1").unwrap_err();
        assert!(e.to_string().contains("Suricata 8"), "{e}");
        assert!(
            parse_detection_filter_keyword("type limit, track by_src, count 1, seconds 60")
                .is_err()
        );
        assert!(parse_detection_filter_keyword(
            "track by_dst, count 1, seconds 60, unique_on dst_port"
        )
        .is_err());
    }

    fn cfg(text: &str) -> (ThresholdConfig, Vec<ConfigError>) {
        ThresholdConfig::parse(text, "threshold.config", &Vars::suricata_defaults())
    }

    #[test]
    fn config_lines_as_documented() {
        let (c, errors) = cfg("\
# from the Suricata 7 user guide
suppress gen_id 1, sig_id 2002087, track by_src, ip 209.132.180.67
suppress gen_id 1, sig_id 2003614, track by_src, ip 217.110.97.128/25
suppress gen_id 1, sig_id 2003614, track by_src, ip [192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]
suppress gen_id 1, sig_id 2003614, track by_src, ip $HOME_NET
suppress gen_id 1, sig_id 2003614, track by_either, ip 217.110.97.128/25
suppress gen_id 1, sig_id 2000328, track by_src, ip fe80::/10
suppress gen_id 0, sig_id 0, track by_dst, ip 10.88.0.14
suppress gen_id 1, sig_id 2002087
threshold gen_id 1, sig_id 2002087, type both, track by_src, count 3, seconds 5
event_filter gen_id 1, sig_id 2002087, type limit, track by_src, count 1, seconds 15
threshold gen_id 0, sig_id 0, type threshold, track by_src, count 10, seconds 10
rate_filter gen_id 1, sig_id 1000, track by_rule, count 100, seconds 60, \\
    new_action alert, timeout 30
rate_filter gen_id 1, sig_id 888, track by_src, count 10, seconds 60, new_action drop, timeout 300
");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(c.len(), 13);
        let (line, e) = c.entries().nth(11).unwrap();
        assert_eq!(line, 13);
        assert_eq!(
            e,
            &ThresholdEntry::RateFilter {
                gid: 1,
                sid: 1000,
                track: Track::ByRule,
                count: 100,
                seconds: 60,
                new_action: NewAction::Alert,
                timeout: 30
            }
        );
        match c.entries().nth(3).unwrap().1 {
            ThresholdEntry::Suppress {
                target: Some((SuppressTrack::BySrc, set)),
                ..
            } => assert!(set.contains("10.1.1.1".parse().unwrap())),
            other => panic!("{other:?}"),
        };
    }

    #[test]
    fn bad_lines_are_skipped_and_reported_with_line() {
        let (c, errors) = cfg("\
suppress gen_id 1, sig_id 1
suppress gen_id 1, sig_id 2, track by_rule, ip 1.2.3.4
suppress gen_id 1, sig_id 3, track by_src, ip 1.2.3.400
suppress gen_id 1, sig_id 4, track by_src
threshold gen_id 1, sig_id 5, type limit, track by_src, count 0, seconds 1
threshold gen_id 0, sig_id 6, type limit, track by_src, count 1, seconds 1
rate_filter gen_id 1, sig_id 7, track by_src, count 1, seconds 1, new_action explode, timeout 1
limit gen_id 1, sig_id 8
threshold gen_id x, sig_id 9, type limit, track by_src, count 1, seconds 1
threshold sig_id 9, gen_id 1, type limit, track by_src, count 1, seconds 1
threshold gen_id 1, sig_id 10, type limit, track by_src, count 1
rate_filter gen_id 1, sig_id 11, track by_src, count 1, seconds 1, new_action sdrop, timeout 1
suppress gen_id 1, sig_id 12, track by_src, ip $NO_SUCH_VAR
");
        let lines: Vec<_> = errors.iter().map(|e| e.line).collect();
        assert_eq!(
            lines,
            vec![2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13],
            "{errors:#?}"
        );
        assert_eq!(c.len(), 2);
        assert!(
            errors[1]
                .to_string()
                .starts_with("threshold.config:3: ip `1.2.3.400`"),
            "{}",
            errors[1]
        );
        assert!(errors[10].message.contains("NO_SUCH_VAR"), "{}", errors[10]);
    }

    #[test]
    fn hostile_lines_do_not_panic() {
        let long = format!(
            "suppress gen_id 1, sig_id 1, track by_src, ip [{}]",
            "[".repeat(10_000)
        );
        let (_, errors) = cfg(&long);
        assert_eq!(errors.len(), 1);
        for s in [
            "suppress",
            "suppress gen_id",
            ",,,,",
            "threshold gen_id 1, sig_id 1, é é",
            "\\",
            "é",
        ] {
            let _ = cfg(s);
        }
    }
}
