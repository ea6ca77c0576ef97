//! Compiled value tests and the per-record evaluation context.

use crate::config::FieldRef;
use base64::Engine as _;
use ipnet::IpNet;
use memchr::memmem::Finder;
use regex::{Regex, RegexBuilder};
use std::borrow::Cow;
use std::net::IpAddr;
use zonewatch_syslog::LogRecord;

/// Compiled regexes (from `|re` or wildcards) are limited to this size.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Lowercases for case-insensitive comparison (ASCII fast path).
pub fn lower(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// How a string pattern is compared.
#[derive(Debug, Clone)]
pub enum StrOp {
    /// Whole value equals.
    Eq(String),
    /// Value contains.
    Contains(Box<Finder<'static>>),
    /// Value starts with.
    Starts(String),
    /// Value ends with.
    Ends(String),
    /// Wildcard pattern compiled to an anchored regex, with its longest literal piece (which
    /// any matching value contains; used by the rule prefilter).
    Wild(Box<Regex>, String),
}

/// A test on one value.
#[derive(Debug, Clone)]
pub enum ValueTest {
    /// String comparison; `cased` compares the raw value, else the lowercased one (the pattern
    /// is lowercased at compile time).
    Str {
        /// Operation.
        op: StrOp,
        /// Case-sensitive.
        cased: bool,
    },
    /// `|re`.
    Re(Regex),
    /// `|cidr`.
    Cidr(IpNet),
    /// `|lt` etc.
    Num(NumOp, f64),
    /// `null`: field missing or empty.
    Null,
    /// `|exists`.
    Exists(bool),
    /// Any of several literal patterns (merged from a value list): one automaton pass.
    Any {
        /// The patterns (lowercased unless `cased`).
        ac: Box<aho_corasick::AhoCorasick>,
        /// Patterns must occur at the start (else anywhere).
        anchored: bool,
        /// Case-sensitive.
        cased: bool,
        /// The patterns, for the rule prefilter.
        pats: Vec<Vec<u8>>,
    },
    /// The value equals one of a set.
    AnyEq {
        /// The values (lowercased unless `cased`).
        set: std::collections::HashSet<String>,
        /// Case-sensitive.
        cased: bool,
    },
}

/// Merges a list of alternatives (OR) so that literal `contains`, `startswith` and exact
/// values are tested with one automaton or set lookup instead of one scan each.
pub fn merge_any(values: Vec<ValueTest>) -> Result<Vec<ValueTest>, String> {
    use aho_corasick::{AhoCorasick, MatchKind, StartKind};
    let mut out = Vec::new();
    // (contains, starts, eq) per case mode
    type Literals = (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<String>);
    let mut groups: [Literals; 2] = Default::default();
    for v in values {
        match v {
            ValueTest::Str {
                op: StrOp::Contains(f),
                cased,
            } if !f.needle().is_empty() => groups[usize::from(cased)].0.push(f.needle().to_vec()),
            ValueTest::Str {
                op: StrOp::Starts(p),
                cased,
            } if !p.is_empty() => groups[usize::from(cased)].1.push(p.into_bytes()),
            ValueTest::Str {
                op: StrOp::Eq(p),
                cased,
            } => groups[usize::from(cased)].2.push(p),
            other => out.push(other),
        }
    }
    for (i, (contains, starts, eq)) in groups.into_iter().enumerate() {
        let cased = i == 1;
        for (pats, anchored) in [(contains, false), (starts, true)] {
            match pats.len() {
                0 => {}
                1 if !anchored => out.push(ValueTest::Str {
                    op: StrOp::Contains(Box::new(Finder::new(&pats[0]).into_owned())),
                    cased,
                }),
                _ => {
                    let ac = AhoCorasick::builder()
                        .match_kind(MatchKind::Standard)
                        .start_kind(if anchored {
                            StartKind::Anchored
                        } else {
                            StartKind::Unanchored
                        })
                        .build(&pats)
                        .map_err(|e| format!("pattern set too large: {e}"))?;
                    out.push(ValueTest::Any {
                        ac: Box::new(ac),
                        anchored,
                        cased,
                        pats,
                    });
                }
            }
        }
        match eq.len() {
            0 => {}
            1 => out.push(ValueTest::Str {
                op: StrOp::Eq(eq.into_iter().next().unwrap_or_default()),
                cased,
            }),
            _ => out.push(ValueTest::AnyEq {
                set: eq.into_iter().collect(),
                cased,
            }),
        }
    }
    Ok(out)
}

/// Numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum NumOp {
    Lt,
    Lte,
    Gt,
    Gte,
}

/// Where a string pattern is anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// Whole value (no modifier).
    Exact,
    /// `|contains`.
    Contains,
    /// `|startswith`.
    Start,
    /// `|endswith`.
    End,
}

/// Splits a Sigma string into literal text and wildcards (`*`, `?`; `\*`, `\?`, `\\` escape).
fn tokens(p: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut it = p.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.peek() {
                Some(&n @ ('*' | '?' | '\\')) => {
                    lit.push(n);
                    it.next();
                }
                _ => lit.push('\\'),
            },
            '*' | '?' => {
                if !lit.is_empty() {
                    out.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                out.push(if c == '*' { Tok::Star } else { Tok::One });
            }
            _ => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Tok::Lit(lit));
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(String),
    Star,
    One,
}

/// Compiles a string pattern with its anchor (wildcards honoured).
pub fn compile_str(pattern: &str, anchor: Anchor, cased: bool) -> Result<ValueTest, String> {
    let pat = if cased {
        Cow::Borrowed(pattern)
    } else {
        lower(pattern)
    };
    let mut toks = tokens(&pat);
    let (mut lead, mut trail) = (
        matches!(anchor, Anchor::Contains | Anchor::End),
        matches!(anchor, Anchor::Contains | Anchor::Start),
    );
    // Leading/trailing `*` become anchors.
    while toks.first() == Some(&Tok::Star) {
        toks.remove(0);
        lead = true;
    }
    while toks.last() == Some(&Tok::Star) {
        toks.pop();
        trail = true;
    }
    let op = match toks.as_slice() {
        [] if lead || trail => StrOp::Contains(Box::new(Finder::new(b"").into_owned())),
        [] => StrOp::Eq(String::new()),
        [Tok::Lit(l)] => match (lead, trail) {
            (false, false) => StrOp::Eq(l.clone()),
            (true, true) => StrOp::Contains(Box::new(Finder::new(l.as_bytes()).into_owned())),
            (false, true) => StrOp::Starts(l.clone()),
            (true, false) => StrOp::Ends(l.clone()),
        },
        _ => {
            let mut re = String::from("(?s)");
            if !lead {
                re.push('^');
            }
            for t in &toks {
                match t {
                    Tok::Lit(l) => re.push_str(&regex::escape(l)),
                    Tok::Star => re.push_str(".*"),
                    Tok::One => re.push('.'),
                }
            }
            if !trail {
                re.push('$');
            }
            let longest = toks
                .iter()
                .filter_map(|t| match t {
                    Tok::Lit(l) => Some(l.as_str()),
                    _ => None,
                })
                .max_by_key(|l| l.len())
                .unwrap_or("")
                .to_owned();
            StrOp::Wild(Box::new(build_regex(&re, false)?), longest)
        }
    };
    Ok(ValueTest::Str { op, cased })
}

/// Builds a size-limited regex.
pub fn build_regex(re: &str, case_insensitive: bool) -> Result<Regex, String> {
    RegexBuilder::new(re)
        .case_insensitive(case_insensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("bad regex {re:?}: {e}"))
}

/// `|windash`: the value with `-` also as `/`, `–`, `—`, `―` at the start of each word.
pub fn windash(v: &str) -> Vec<String> {
    let mut out = vec![v.to_owned()];
    for d in ['/', '–', '—', '―'] {
        let mut s = String::with_capacity(v.len());
        let mut prev_space = true;
        for c in v.chars() {
            if c == '-' && prev_space {
                s.push(d);
            } else {
                s.push(c);
            }
            prev_space = c.is_whitespace();
        }
        if s != v {
            out.push(s);
        }
    }
    out
}

/// `|base64`.
pub fn base64_plain(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

/// `|base64offset`: the three encodings of `v` at offsets 0, 1 and 2, with the characters that
/// depend on unknown neighbouring bytes removed (as pySigma does).
pub fn base64_offsets(v: &[u8]) -> Vec<String> {
    (0..3usize)
        .map(|i| {
            let mut b = vec![b' '; i];
            b.extend_from_slice(v);
            let enc = base64::engine::general_purpose::STANDARD.encode(&b);
            let s = [0usize, 2, 3][i];
            let e = match (v.len() + i) % 3 {
                0 => enc.len(),
                1 => enc.len().saturating_sub(3),
                _ => enc.len().saturating_sub(2),
            };
            enc.get(s..e.max(s)).unwrap_or("").to_owned()
        })
        .collect()
}

/// UTF-16LE bytes of `s` (`|wide`, `|utf16le`).
pub fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// Per-record cache of resolved field values: a dense slot → entry index (cheap to create)
/// and the few entries a record's evaluation actually touches.
pub struct Ctx<'a> {
    rec: &'a LogRecord,
    idx: Vec<u16>,
    vals: Vec<Entry<'a>>,
}

struct Entry<'a> {
    raw: Option<Cow<'a, str>>,
    low: Option<Option<String>>,
}

impl<'a> Ctx<'a> {
    /// A context for `rec` with `slots` field slots.
    pub fn new(rec: &'a LogRecord, slots: usize) -> Self {
        Self::with_index(rec, Vec::new(), slots)
    }

    /// As [`Ctx::new`], reusing the allocation of `index` (from [`Ctx::into_index`]).
    pub fn with_index(rec: &'a LogRecord, mut index: Vec<u16>, slots: usize) -> Self {
        index.clear();
        index.resize(slots, 0);
        Ctx {
            rec,
            idx: index,
            vals: Vec::new(),
        }
    }

    /// The slot index's allocation, for the next record.
    pub fn into_index(self) -> Vec<u16> {
        self.idx
    }

    fn entry(&mut self, slot: usize, f: &FieldRef) -> usize {
        let i = self.idx[slot];
        if i != 0 {
            return i as usize - 1;
        }
        self.vals.push(Entry {
            raw: resolve(self.rec, f),
            low: None,
        });
        let n = self.vals.len();
        self.idx[slot] = u16::try_from(n).unwrap_or(u16::MAX);
        n - 1
    }

    /// Raw value of a field.
    pub fn raw(&mut self, slot: usize, f: &FieldRef) -> Option<&str> {
        let e = self.entry(slot, f);
        self.vals[e].raw.as_deref()
    }

    /// Lowercased value of a field.
    pub fn low(&mut self, slot: usize, f: &FieldRef) -> Option<&str> {
        let e = self.entry(slot, f);
        let ent = &mut self.vals[e];
        if ent.low.is_none() {
            ent.low = Some(ent.raw.as_deref().map(|v| lower(v).into_owned()));
        }
        ent.low.as_ref().and_then(|v| v.as_deref())
    }
}

/// A field's value in a record.
pub fn resolve<'a>(rec: &'a LogRecord, f: &FieldRef) -> Option<Cow<'a, str>> {
    match f {
        FieldRef::Message => Some(Cow::Borrowed(rec.message.as_str())),
        FieldRef::Hostname => rec.hostname.as_deref().map(Cow::Borrowed),
        FieldRef::AppName => rec.app_name.as_deref().map(Cow::Borrowed),
        FieldRef::ProcId => rec.procid.as_deref().map(Cow::Borrowed),
        FieldRef::MsgId => rec.msgid.as_deref().map(Cow::Borrowed),
        FieldRef::Facility => Some(Cow::Borrowed(rec.facility_name())),
        FieldRef::Severity => Some(Cow::Borrowed(rec.severity_name())),
        FieldRef::Pri => Some(Cow::Owned(rec.pri().to_string())),
        FieldRef::SourceAddr => rec.source.map(|a| Cow::Owned(a.ip().to_string())),
        FieldRef::Extracted(name) => rec
            .field(name)
            .or_else(|| {
                rec.structured_data
                    .iter()
                    .flat_map(|e| e.params.iter())
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            })
            .map(Cow::Borrowed),
    }
}

impl ValueTest {
    /// A lowercase literal that must occur in the value for this test to hold, if any:
    /// `Some(list)` means "one of these".
    pub fn necessary_literals(&self) -> Option<Vec<String>> {
        let one = |p: &[u8]| {
            let s = String::from_utf8_lossy(p);
            let l = lower(&s).into_owned();
            (!l.is_empty()).then(|| vec![l])
        };
        match self {
            ValueTest::Str { op, .. } => match op {
                StrOp::Eq(p) | StrOp::Starts(p) | StrOp::Ends(p) => one(p.as_bytes()),
                StrOp::Contains(f) => one(f.needle()),
                StrOp::Wild(_, lit) if lit.len() >= 2 => one(lit.as_bytes()),
                StrOp::Wild(..) => None,
            },
            ValueTest::Any { pats, .. } => {
                let mut v = Vec::new();
                for p in pats {
                    v.extend(one(p)?);
                }
                Some(v)
            }
            ValueTest::AnyEq { set, .. } => {
                let mut v = Vec::new();
                for p in set {
                    v.extend(one(p.as_bytes())?);
                }
                Some(v)
            }
            _ => None,
        }
    }
}

impl StrOp {
    fn test(&self, v: &str) -> bool {
        match self {
            StrOp::Eq(p) => v == p,
            StrOp::Contains(f) => f.find(v.as_bytes()).is_some(),
            StrOp::Starts(p) => v.starts_with(p.as_str()),
            StrOp::Ends(p) => v.ends_with(p.as_str()),
            StrOp::Wild(r, _) => r.is_match(v),
        }
    }
}

impl ValueTest {
    /// Tests a field (slot) of the record in `ctx`.
    pub fn test(&self, ctx: &mut Ctx<'_>, slot: usize, f: &FieldRef) -> bool {
        match self {
            ValueTest::Str { op, cased: true } => ctx.raw(slot, f).is_some_and(|v| op.test(v)),
            ValueTest::Str { op, cased: false } => ctx.low(slot, f).is_some_and(|v| op.test(v)),
            ValueTest::Re(r) => ctx.raw(slot, f).is_some_and(|v| r.is_match(v)),
            ValueTest::Cidr(net) => ctx
                .raw(slot, f)
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
                .is_some_and(|ip| net.contains(&ip)),
            ValueTest::Num(op, n) => ctx
                .raw(slot, f)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|v| match op {
                    NumOp::Lt => v < *n,
                    NumOp::Lte => v <= *n,
                    NumOp::Gt => v > *n,
                    NumOp::Gte => v >= *n,
                }),
            ValueTest::Null => ctx.raw(slot, f).is_none_or(str::is_empty),
            ValueTest::Exists(want) => ctx.raw(slot, f).is_some() == *want,
            ValueTest::Any {
                ac,
                anchored,
                cased,
                ..
            } => {
                let v = if *cased {
                    ctx.raw(slot, f)
                } else {
                    ctx.low(slot, f)
                };
                v.is_some_and(|v| {
                    if *anchored {
                        ac.find(aho_corasick::Input::new(v).anchored(aho_corasick::Anchored::Yes))
                            .is_some()
                    } else {
                        ac.is_match(v)
                    }
                })
            }
            ValueTest::AnyEq { set, cased } => {
                let v = if *cased {
                    ctx.raw(slot, f)
                } else {
                    ctx.low(slot, f)
                };
                v.is_some_and(|v| set.contains(v))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(p: &str, a: Anchor, cased: bool, v: &str) -> bool {
        let vt = compile_str(p, a, cased).unwrap();
        let rec = LogRecord {
            message: v.to_owned(),
            ..Default::default()
        };
        let mut ctx = Ctx::new(&rec, 1);
        vt.test(&mut ctx, 0, &FieldRef::Message)
    }

    #[test]
    fn wildcards_and_anchors() {
        assert!(t("abc", Anchor::Exact, false, "ABC"));
        assert!(!t("abc", Anchor::Exact, false, "xabc"));
        assert!(t("abc", Anchor::Exact, true, "abc"));
        assert!(!t("abc", Anchor::Exact, true, "ABC"));
        assert!(t("*bc", Anchor::Exact, false, "xxBC"));
        assert!(t("a*c", Anchor::Exact, false, "aXXc"));
        assert!(!t("a*c", Anchor::Exact, false, "aXXcd"));
        assert!(t("a?c", Anchor::Contains, false, "zzabcz"));
        assert!(t(r"a\*c", Anchor::Exact, false, "a*c"));
        assert!(!t(r"a\*c", Anchor::Exact, false, "abc"));
        assert!(t("ab", Anchor::Start, false, "ABcd"));
        assert!(t("cd", Anchor::End, false, "abCD"));
        assert!(!t("cd", Anchor::End, false, "cdab"));
        assert!(t("ÄÖ", Anchor::Contains, false, "xäöx"));
    }

    #[test]
    fn base64_and_windash() {
        assert_eq!(base64_plain(b"whoami"), "d2hvYW1p");
        let offs = base64_offsets(b"/bin/sh");
        // Every offset variant must occur in the encoding of some text containing the value.
        for prefix in ["", "x", "xy"] {
            let enc = base64_plain(format!("{prefix}/bin/sh -c id").as_bytes());
            assert!(
                offs.iter()
                    .any(|o| !o.is_empty() && enc.contains(o.as_str())),
                "{prefix:?} {offs:?} {enc}"
            );
        }
        assert_eq!(
            windash("-enc x"),
            vec!["-enc x", "/enc x", "–enc x", "—enc x", "―enc x"]
        );
    }
}
