//! Lints: rules that load but are slow, can never match, or depend on
//! flowbits no rule provides. Used by `zonewatch rules check`; the engine
//! itself never refuses a rule because of a lint.
//!
//! [`Linter`] takes the files one at a time (as the engine does) and keeps
//! only what the cross-rule lints need (flowbit names, one hash per sid),
//! not the parsed rules: a whole ET Open set stays small.

use crate::{parse_rule, UintCmp};
use crate::{split_rules, BufferMatch, FlowOpts, Flowbit, HeaderTest, Item, Origin, Signature};
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// What a lint found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LintCode {
    /// The same gid:sid as an earlier rule, with identical text.
    DuplicateSidSame,
    /// The same gid:sid as an earlier rule, with different text.
    DuplicateSidDifferent,
    /// Payload inspection without a positive content: no fast pattern, so
    /// the rule is evaluated on every packet of its signature group.
    NoFastPattern,
    /// A `pcre` with no positive content beside it: the regex runs on
    /// every packet of the group.
    PcreWithoutLiteral,
    /// The rule's options contradict each other or ask for values that
    /// cannot occur.
    NeverMatches,
    /// `flowbits:isset`/`isnotset` of a name no loaded rule sets.
    FlowbitNeverSet,
    /// `flowbits:set` of a name no loaded rule checks.
    FlowbitNeverChecked,
}

impl LintCode {
    /// Stable name (the `code` of `rules check --format json`).
    pub fn name(self) -> &'static str {
        match self {
            LintCode::DuplicateSidSame => "duplicate-sid-same",
            LintCode::DuplicateSidDifferent => "duplicate-sid-different",
            LintCode::NoFastPattern => "no-fast-pattern",
            LintCode::PcreWithoutLiteral => "pcre-without-literal",
            LintCode::NeverMatches => "never-matches",
            LintCode::FlowbitNeverSet => "flowbit-never-set",
            LintCode::FlowbitNeverChecked => "flowbit-never-checked",
        }
    }

    /// Every code, for documentation and tests.
    pub const ALL: [LintCode; 7] = [
        LintCode::DuplicateSidSame,
        LintCode::DuplicateSidDifferent,
        LintCode::NoFastPattern,
        LintCode::PcreWithoutLiteral,
        LintCode::NeverMatches,
        LintCode::FlowbitNeverSet,
        LintCode::FlowbitNeverChecked,
    ];
}

/// One finding about one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// The rule's file and first line.
    pub origin: Origin,
    /// 1-based column on the rule's joined text (of the keyword at fault).
    pub column: usize,
    /// The rule's sid.
    pub sid: u64,
    /// What.
    pub code: LintCode,
    /// The finding, in a sentence.
    pub message: String,
    /// What would fix it.
    pub hint: String,
}

/// Where a flowbit name was first used.
#[derive(Debug, Clone)]
struct FirstUse {
    origin: Origin,
    column: usize,
    sid: u64,
}

/// Lints over a set of rule files.
#[derive(Default)]
pub struct Linter {
    lints: Vec<Lint>,
    /// gid:sid → first rule with it and a hash of its text.
    seen: HashMap<(u32, u64), (Origin, u64)>,
    set: BTreeMap<String, FirstUse>,
    checked: BTreeMap<String, FirstUse>,
}

impl Linter {
    /// Lints one file's text. `loaded(line)` tells whether the engine loaded
    /// the rule starting at that line: rules it skipped are only checked for
    /// duplicate sids (their flowbits do not count, so a check whose setter
    /// was skipped is reported).
    pub fn file(&mut self, text: &str, file: &str, loaded: impl Fn(usize) -> bool) {
        let file: Arc<str> = Arc::from(file);
        for raw in split_rules(text) {
            let origin = Origin {
                file: file.clone(),
                line: raw.line,
            };
            let Ok(sig) = parse_rule(&raw.text, origin.clone()) else {
                continue;
            };
            self.duplicate(&sig, &raw.text);
            if loaded(raw.line) {
                self.lint_rule(&sig, &raw.text);
                self.note_flowbits(&sig, &raw.text);
            }
        }
    }

    /// The lints found, with the flowbit lints (which need every file), in
    /// file order then line.
    pub fn finish(mut self) -> Vec<Lint> {
        for (name, u) in &self.checked {
            if !self.set.contains_key(name) {
                self.lints.push(Lint {
                    origin: u.origin.clone(),
                    column: u.column,
                    sid: u.sid,
                    code: LintCode::FlowbitNeverSet,
                    message: format!("flowbit {name:?} is checked but no loaded rule sets it"),
                    hint: "load the rule that sets it (it may have been skipped: see its error), or fix the name".into(),
                });
            }
        }
        for (name, u) in &self.set {
            if !self.checked.contains_key(name) {
                self.lints.push(Lint {
                    origin: u.origin.clone(),
                    column: u.column,
                    sid: u.sid,
                    code: LintCode::FlowbitNeverChecked,
                    message: format!("flowbit {name:?} is set but no loaded rule checks it"),
                    hint: "remove the set, or load the rules that check it".into(),
                });
            }
        }
        self.lints.sort_by(|a, b| {
            (&*a.origin.file, a.origin.line).cmp(&(&*b.origin.file, b.origin.line))
        });
        self.lints
    }

    fn duplicate(&mut self, sig: &Signature, text: &str) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.trim().hash(&mut h);
        let hash = h.finish();
        match self.seen.get(&(sig.gid, sig.sid)) {
            None => {
                self.seen
                    .insert((sig.gid, sig.sid), (sig.origin.clone(), hash));
            }
            Some((first, first_hash)) => {
                let same = *first_hash == hash;
                self.lints.push(Lint {
                    origin: sig.origin.clone(),
                    column: column_of(text, "sid:"),
                    sid: sig.sid,
                    code: if same {
                        LintCode::DuplicateSidSame
                    } else {
                        LintCode::DuplicateSidDifferent
                    },
                    message: format!(
                        "sid {}:{} {} {first}; this one is skipped",
                        sig.gid,
                        sig.sid,
                        if same {
                            "repeats the identical rule of"
                        } else {
                            "is already used by a different rule at"
                        }
                    ),
                    hint: if same {
                        "delete this copy (the file is probably loaded twice or concatenated)"
                            .into()
                    } else {
                        "give one of the two rules a new sid".into()
                    },
                });
            }
        }
    }

    fn lint_rule(&mut self, sig: &Signature, text: &str) {
        let mut push = |code, keyword: &str, message: String, hint: &str| {
            self.lints.push(Lint {
                origin: sig.origin.clone(),
                column: column_of(text, keyword),
                sid: sig.sid,
                code,
                message,
                hint: hint.to_string(),
            })
        };
        for (keyword, why) in never_matches(sig) {
            push(
                LintCode::NeverMatches,
                keyword,
                format!("can never match: {why}"),
                "fix or remove the contradicting option",
            );
        }
        let has_literal = sig.buffers.iter().any(has_positive_content);
        let has_pcre = sig
            .buffers
            .iter()
            .flat_map(|b| &b.items)
            .any(|i| matches!(i, Item::Pcre(_)));
        let inspects_payload = sig.buffers.iter().any(|b| !b.items.is_empty());
        let runs_on = runs_on(sig);
        if has_pcre && !has_literal {
            push(
                LintCode::PcreWithoutLiteral,
                "pcre:",
                format!("pcre without a content beside it: the regex runs on {runs_on} (slow)"),
                "add a content with a literal part of the expression (it becomes the fast pattern)",
            );
        } else if inspects_payload && !has_literal {
            push(
                LintCode::NoFastPattern,
                "(",
                format!("no positive content to use as fast pattern: the rule is evaluated on {runs_on}"),
                "add a content (a literal the matched data always holds)",
            );
        }
    }

    fn note_flowbits(&mut self, sig: &Signature, text: &str) {
        let at = |name: &str| FirstUse {
            origin: sig.origin.clone(),
            column: column_of(text, name),
            sid: sig.sid,
        };
        for f in &sig.flowbits {
            match f {
                Flowbit::Set(n) | Flowbit::Toggle(n) | Flowbit::Unset(n) => {
                    // `set a&b`-style lists do not exist for set; one name.
                    if !matches!(f, Flowbit::Unset(_)) {
                        self.set.entry(n.clone()).or_insert_with(|| at(n));
                    }
                }
                Flowbit::IsSet(names, _) | Flowbit::IsNotSet(names, _) => {
                    for n in names {
                        self.checked.entry(n.clone()).or_insert_with(|| at(n));
                    }
                }
            }
        }
    }
}

/// What a rule without a fast pattern is evaluated on: packet rules on
/// every packet of their signature group, rules with an app-layer buffer on
/// every transaction of their protocol.
fn runs_on(sig: &Signature) -> &'static str {
    let packet_only = sig
        .buffers
        .iter()
        .all(|b| b.buffer == "pkt" || b.buffer.ends_with(".hdr"));
    if packet_only {
        "every packet of its signature group"
    } else {
        "every transaction of its app-layer protocol"
    }
}

/// Whether a buffer's list holds a content that must be present.
fn has_positive_content(b: &BufferMatch) -> bool {
    b.items
        .iter()
        .any(|i| matches!(i, Item::Content(c) if !c.negated && !c.pattern.is_empty()))
}

/// The options that make the rule unsatisfiable: (keyword, why).
fn never_matches(sig: &Signature) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let FlowOpts {
        established,
        not_established,
        to_server,
        to_client,
        only_stream,
        no_stream,
        only_frag,
        no_frag,
    } = sig.flow;
    let pairs = [
        (
            established,
            not_established,
            "established",
            "not_established",
        ),
        (to_server, to_client, "to_server", "to_client"),
        (only_stream, no_stream, "only_stream", "no_stream"),
        (only_frag, no_frag, "only_frag", "no_frag"),
    ];
    for (a, b, na, nb) in pairs {
        if a && b {
            out.push((
                "flow:",
                format!("flow:{na} and flow:{nb} exclude each other"),
            ));
        }
    }
    for t in &sig.header_tests {
        let (keyword, cmp, max) = match t {
            HeaderTest::Dsize(c) => ("dsize:", c, 65535),
            HeaderTest::Ttl(c) => ("ttl:", c, 255),
            HeaderTest::Tos(c) => ("tos:", c, 255),
            HeaderTest::IpProto(c) => ("ip_proto:", c, 255),
            HeaderTest::IType(c) => ("itype:", c, 255),
            HeaderTest::ICode(c) => ("icode:", c, 255),
            HeaderTest::Id(c) => ("id:", c, 65535),
            HeaderTest::Window(c) => ("window:", c, 65535),
            HeaderTest::IcmpId(c) => ("icmp_id:", c, 65535),
            HeaderTest::IcmpSeq(c) => ("icmp_seq:", c, 65535),
            HeaderTest::FragOffset(c) => ("fragoffset:", c, 8191),
            _ => continue,
        };
        if !satisfiable(*cmp, max) {
            out.push((
                keyword,
                format!("{keyword}{} never holds (values 0-{max})", show(*cmp)),
            ));
        }
    }
    if sig.flow.established && sig.header_tests.iter().any(is_syn_only) {
        out.push((
            "flags:",
            "flags:S (a SYN without ACK) is never part of an established flow".into(),
        ));
    }
    out
}

/// `flags:S` exactly, or with everything else excluded: an opening SYN.
fn is_syn_only(t: &HeaderTest) -> bool {
    const SYN: u8 = 0x02;
    matches!(t, HeaderTest::Flags(crate::BitsMode::Exact, bits, ignore) if *bits == SYN && ignore & 0x10 == 0)
}

/// Whether some value in 0..=max satisfies `c`.
fn satisfiable(c: UintCmp, max: u64) -> bool {
    match c {
        UintCmp::Eq(a) => a <= max,
        UintCmp::Ne(_) => true,
        UintCmp::Lt(a) => a > 0,
        UintCmp::Le(_) => true,
        UintCmp::Gt(a) => a < max,
        UintCmp::Ge(a) => a <= max,
        UintCmp::Between(a, b) => b > a.saturating_add(1) && a < max,
    }
}

fn show(c: UintCmp) -> String {
    match c {
        UintCmp::Eq(a) => a.to_string(),
        UintCmp::Ne(a) => format!("!{a}"),
        UintCmp::Lt(a) => format!("<{a}"),
        UintCmp::Le(a) => format!("<={a}"),
        UintCmp::Gt(a) => format!(">{a}"),
        UintCmp::Ge(a) => format!(">={a}"),
        UintCmp::Between(a, b) => format!("{a}<>{b}"),
    }
}

/// 1-based column of the first `needle` in the rule's options (after the
/// opening parenthesis, so a header word is not taken for a keyword), else
/// of the parenthesis, else 1.
fn column_of(text: &str, needle: &str) -> usize {
    let open = text.find('(').unwrap_or(0);
    if needle == "(" {
        return open + 1;
    }
    text[open..].find(needle).map_or(open + 1, |i| open + i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint(text: &str) -> Vec<(LintCode, usize, u64)> {
        let mut l = Linter::default();
        l.file(text, "t.rules", |_| true);
        l.finish()
            .into_iter()
            .map(|x| (x.code, x.origin.line, x.sid))
            .collect()
    }

    #[test]
    fn each_lint_on_its_rule() {
        let text = "\
alert tcp any any -> any 80 (msg:\"a\"; content:\"x\"; sid:1;)
alert tcp any any -> any 80 (msg:\"a\"; content:\"x\"; sid:1;)
alert tcp any any -> any 80 (msg:\"b\"; content:\"y\"; sid:1;)
alert tcp any any -> any 80 (msg:\"c\"; pcre:\"/a+b/\"; sid:2;)
alert tcp any any -> any 80 (msg:\"d\"; byte_test:1,>,3,0; sid:3;)
alert tcp any any -> any 80 (msg:\"e\"; dsize:<0; sid:4;)
alert tcp any any -> any 80 (msg:\"f\"; flow:established,not_established; content:\"x\"; sid:5;)
alert tcp any any -> any 80 (msg:\"g\"; flowbits:isset,nobody; content:\"x\"; sid:6;)
alert tcp any any -> any 80 (msg:\"h\"; flowbits:set,lonely; content:\"x\"; sid:7;)
alert tcp any any -> any 80 (msg:\"i\"; flags:S; flow:established; sid:8;)
alert tcp any any -> any 80 (msg:\"ok\"; flowbits:set,pair; content:\"x\"; sid:9;)
alert tcp any any -> any 80 (msg:\"ok\"; flowbits:isset,pair; content:\"x\"; dsize:>10; sid:10;)
";
        let got = lint(text);
        let want = [
            (LintCode::DuplicateSidSame, 2, 1),
            (LintCode::DuplicateSidDifferent, 3, 1),
            (LintCode::PcreWithoutLiteral, 4, 2),
            (LintCode::NoFastPattern, 5, 3),
            (LintCode::NeverMatches, 6, 4),
            (LintCode::NeverMatches, 7, 5),
            (LintCode::FlowbitNeverSet, 8, 6),
            (LintCode::FlowbitNeverChecked, 9, 7),
            (LintCode::NeverMatches, 10, 8),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn skipped_rules_do_not_set_flowbits() {
        let text = "\
alert tcp any any -> any 80 (msg:\"s\"; flowbits:set,x; flowbits:noalert; content:\"a\"; sid:1;)
alert tcp any any -> any 80 (msg:\"c\"; flowbits:isset,x; content:\"b\"; sid:2;)
";
        let mut l = Linter::default();
        l.file(text, "t.rules", |line| line != 1);
        let got: Vec<LintCode> = l.finish().into_iter().map(|x| x.code).collect();
        assert_eq!(got, [LintCode::FlowbitNeverSet]);
    }

    #[test]
    fn satisfiable_bounds() {
        assert!(!satisfiable(UintCmp::Lt(0), 10));
        assert!(satisfiable(UintCmp::Lt(1), 10));
        assert!(!satisfiable(UintCmp::Gt(10), 10));
        assert!(!satisfiable(UintCmp::Eq(11), 10));
        assert!(!satisfiable(UintCmp::Between(3, 4), 10));
        assert!(satisfiable(UintCmp::Between(3, 5), 10));
        assert!(!satisfiable(UintCmp::Between(u64::MAX, u64::MAX), 10));
    }

    #[test]
    fn arbitrary_text_does_not_panic() {
        let mut seed = 7u64;
        let alphabet = b"alert tcp any -> 80 ()\";:,|!<>SdsizeflowbitspcreContent\n\\";
        for _ in 0..2000 {
            let mut s = Vec::new();
            for _ in 0..(seed % 90) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let text = String::from_utf8_lossy(&s);
            let mut l = Linter::default();
            l.file(&text, "f", |_| true);
            let _ = l.finish();
        }
    }
}
