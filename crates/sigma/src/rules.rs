//! Loading Sigma YAML into compiled rules. Every problem is a [`RuleLoadError`] with file, line
//! and rule id; a bad rule is skipped, the rest load.

use crate::cond::{self, Expr};
use crate::config::{FieldRef, SigmaConfig, SourceCond};
use crate::matcher::{self, Anchor, NumOp, ValueTest};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use zonewatch_yamlread::tree::{Kind, Scalar};

/// A node of a rule document: zonewatch's one YAML model (`zonewatch_yamlread::tree`),
/// scalars typed as YAML reads them, every node with its line.
type Node = zonewatch_yamlread::tree::Node<Scalar>;

/// Rule files larger than this are refused.
pub const MAX_RULE_FILE_BYTES: u64 = 4 << 20;
/// Values per field test are capped (after `windash`/`base64offset` expansion).
const MAX_VALUES: usize = 4096;

/// A rule that could not be loaded (the rule is skipped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: rule {}: {message}", file.display(), rule_id.as_deref().unwrap_or("?"))]
pub struct RuleLoadError {
    /// File.
    pub file: PathBuf,
    /// 1-based line of the offending key or value (of the document for a document-wide
    /// problem such as a missing `title`).
    pub line: usize,
    /// Rule id (or title) if it could be read.
    pub rule_id: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Sigma `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Level {
    /// informational
    Informational,
    /// low
    Low,
    /// medium
    #[default]
    Medium,
    /// high
    High,
    /// critical
    Critical,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "informational" => Level::Informational,
            "low" => Level::Low,
            "medium" => Level::Medium,
            "high" => Level::High,
            "critical" => Level::Critical,
            _ => return None,
        })
    }
    /// Suricata's alert severity, 1 (highest) to 4: critical 1, high 2, medium 3,
    /// low and informational 4.
    pub fn severity(self) -> u8 {
        match self {
            Level::Critical => 1,
            Level::High => 2,
            Level::Medium => 3,
            Level::Low | Level::Informational => 4,
        }
    }
    /// The Sigma keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

/// Rule metadata shared by detection and correlation rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleMeta {
    /// `id` (or, if absent, the title).
    pub id: String,
    /// `name` (Sigma 2: how correlations refer to a rule).
    pub name: Option<String>,
    /// `title`.
    pub title: String,
    /// `level`.
    pub level: Level,
    /// `tags`.
    pub tags: Vec<String>,
    /// File and 1-based line of the document.
    pub file: PathBuf,
    /// Line of the document start.
    pub line: usize,
}

/// One `field|modifiers: values` test.
#[derive(Debug, Clone)]
pub(crate) struct FieldTest {
    pub slot: usize,
    pub field: FieldRef,
    pub values: Vec<ValueTest>,
    pub all: bool,
}

/// A search identifier: OR over alternatives, each an AND of field tests.
#[derive(Debug, Clone)]
pub(crate) struct Search {
    pub alts: Vec<Vec<FieldTest>>,
}

/// A compiled detection rule.
#[derive(Debug, Clone)]
pub struct DetectionRule {
    /// Metadata.
    pub meta: RuleMeta,
    pub(crate) searches: Vec<Search>,
    pub(crate) cond: Expr,
    pub(crate) gate: usize,
    /// Emit alerts for this rule's own matches (false if only used by correlations with
    /// `generate: false`).
    pub emit: bool,
    pub(crate) corr_refs: Vec<(usize, usize)>,
    /// One of these field slots must be present for the rule to match (`None`: no such set).
    pub(crate) need_slots: Option<Vec<usize>>,
}

/// Correlation type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrelationType {
    /// Number of matching events per group within the timespan.
    EventCount,
    /// Number of distinct values of a field per group within the timespan.
    ValueCount,
    /// All referenced rules matched for the group within the timespan.
    Temporal,
    /// As `Temporal`, in the order listed.
    TemporalOrdered,
}

impl CorrelationType {
    /// The Sigma keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            CorrelationType::EventCount => "event_count",
            CorrelationType::ValueCount => "value_count",
            CorrelationType::Temporal => "temporal",
            CorrelationType::TemporalOrdered => "temporal_ordered",
        }
    }
}

/// Threshold of a correlation (`gt`, `gte`, `lt`, `lte`, `eq`, combined with AND).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Threshold {
    /// `gt`
    pub gt: Option<u64>,
    /// `gte`
    pub gte: Option<u64>,
    /// `lt`
    pub lt: Option<u64>,
    /// `lte`
    pub lte: Option<u64>,
    /// `eq`
    pub eq: Option<u64>,
}

impl Threshold {
    /// Whether `n` satisfies it.
    pub fn holds(&self, n: u64) -> bool {
        self.gt.is_none_or(|v| n > v)
            && self.gte.is_none_or(|v| n >= v)
            && self.lt.is_none_or(|v| n < v)
            && self.lte.is_none_or(|v| n <= v)
            && self.eq.is_none_or(|v| n == v)
    }
    /// Only lower bounds: can fire as soon as reached (sliding window).
    pub fn monotone(&self) -> bool {
        self.lt.is_none() && self.lte.is_none() && self.eq.is_none()
    }
    /// Smallest count that can satisfy it.
    pub fn min_count(&self) -> u64 {
        let a = self.gt.map_or(0, |v| v.saturating_add(1));
        let b = self.gte.unwrap_or(0);
        a.max(b).max(self.eq.unwrap_or(0)).max(1)
    }
}

/// A compiled correlation rule.
#[derive(Debug, Clone)]
pub struct CorrelationRule {
    /// Metadata.
    pub meta: RuleMeta,
    /// Type.
    pub kind: CorrelationType,
    /// Referenced rules as written.
    pub rule_refs: Vec<String>,
    /// Indices of the referenced detection rules.
    pub(crate) rules: Vec<usize>,
    /// Group-by field names as written, with their resolved slots.
    pub group_by: Vec<String>,
    pub(crate) group_slots: Vec<(usize, FieldRef)>,
    /// Window length in seconds.
    pub timespan_secs: u64,
    /// Threshold.
    pub threshold: Threshold,
    /// `value_count` field.
    pub value_field: Option<String>,
    pub(crate) value_slot: Option<(usize, FieldRef)>,
    /// `generate`.
    pub generate: bool,
}

/// A compiled, immutable set of rules (share it across threads with `Arc`).
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Detection rules.
    pub detections: Vec<DetectionRule>,
    /// Correlation rules.
    pub correlations: Vec<CorrelationRule>,
    pub(crate) slots: Vec<FieldRef>,
    pub(crate) gates: Vec<Gate>,
    /// Prefilter: one automaton over literals that some rules need in the message.
    pub(crate) prefilter: Option<aho_corasick::AhoCorasick>,
    /// Literal id → rules needing it.
    pub(crate) prefilter_rules: Vec<Vec<usize>>,
    /// Per rule: evaluated only if one of its literals was seen.
    pub(crate) prefiltered: Vec<bool>,
    /// With a prefilter: the active rules it does not cover, grouped by gate.
    pub(crate) unfiltered: Vec<(usize, Vec<usize>)>,
    /// Rules whose log source can match syslog records (the others are never evaluated).
    pub(crate) active: Vec<usize>,
    /// Gates of the active rules that read extracted fields (`None`: some active rule's gate
    /// itself reads extracted fields, so every record needs them). See
    /// [`Engine::process_deferred`](crate::Engine::process_deferred).
    pub(crate) field_gates: Option<Vec<usize>>,
    /// Rules that loaded but whose log source never matches a syslog record.
    pub inactive: usize,
}

/// Whether a record belongs to a rule's log source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gate {
    Always,
    Never,
    /// All groups must hold; in a group any condition.
    All(Vec<Vec<SourceCond>>),
}

/// Every value modifier the compiler accepts (`field|contains|all: ...`),
/// with what it does: the source of the modifier table in `docs/rules.md`.
/// A test compiles a rule with each, and checks that the modifiers of the
/// Sigma specification left out are refused.
pub const MODIFIERS: &[(&str, &str)] = &[
    ("contains", "the value anywhere in the field"),
    ("startswith", "the field starts with the value"),
    ("endswith", "the field ends with the value"),
    ("all", "every value of the list must match (default: any)"),
    ("cased", "case-sensitive (default: case-insensitive)"),
    ("re", "regular expression (linear time, size-limited)"),
    ("i", "with `re`: case-insensitive"),
    ("m", "with `re`: multi-line"),
    ("s", "with `re`: `.` matches newlines"),
    ("cidr", "the field is an address in the network"),
    (
        "exists",
        "the field is present (`true`) or absent (`false`)",
    ),
    ("base64", "the value base64-encoded"),
    (
        "base64offset",
        "the value base64-encoded at each of the three offsets",
    ),
    ("wide", "the value as UTF-16LE (before base64)"),
    ("utf16le", "as `wide`"),
    ("utf16", "as `wide`"),
    (
        "windash",
        "a `-` that starts a word also as `/`, en dash, em dash or horizontal bar",
    ),
    ("lt", "number less than"),
    ("lte", "number less than or equal"),
    ("gt", "number greater than"),
    ("gte", "number greater than or equal"),
];

/// What loading produced.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// The rules.
    pub rules: RuleSet,
    /// Rules skipped, with reasons.
    pub errors: Vec<RuleLoadError>,
    /// Files read.
    pub files: usize,
    /// YAML documents that were not rules (no `detection`/`correlation`).
    pub non_rules: usize,
}

struct Builder<'c> {
    cfg: &'c SigmaConfig,
    set: RuleSet,
    slot_ix: HashMap<FieldRef, usize>,
    pending_corr: Vec<(CorrelationRule, Vec<String>)>,
}

struct DocCtx<'a> {
    file: &'a Path,
    /// 1-based line of the document's start.
    line: usize,
    id: Option<String>,
}

impl DocCtx<'_> {
    /// An error at `line` (that of the offending key or value; 0: the document's).
    fn err(&self, line: usize, message: impl Into<String>) -> RuleLoadError {
        RuleLoadError {
            file: self.file.to_owned(),
            line: if line == 0 { self.line } else { line },
            rule_id: self.id.clone(),
            message: message.into(),
        }
    }
}

/// A scalar as text (strings and reals as written, integers and booleans canonical);
/// `None` for null and containers.
fn ystr(y: &Node) -> Option<String> {
    y.text()
}

fn get<'y>(y: &'y Node, k: &str) -> Option<&'y Node> {
    y.get(k)
}

/// The line of key `k` in mapping `y` (0 if absent: the document's line).
fn key_line(y: &Node, k: &str) -> usize {
    y.entry(k).map_or(0, |(l, _)| l)
}

/// The items of a sequence, or the node itself.
fn items(y: &Node) -> Vec<&Node> {
    match &y.kind {
        Kind::Seq(a) => a.iter().collect(),
        _ => vec![y],
    }
}

impl<'c> Builder<'c> {
    fn slot(&mut self, f: FieldRef) -> usize {
        if let Some(&i) = self.slot_ix.get(&f) {
            return i;
        }
        let i = self.set.slots.len();
        self.set.slots.push(f.clone());
        self.slot_ix.insert(f, i);
        i
    }

    fn gate(&mut self, ls: Option<&Node>) -> usize {
        let g = if self.cfg.ignore_logsource {
            Gate::Always
        } else {
            self.gate_of(ls)
        };
        if let Some(i) = self.set.gates.iter().position(|x| *x == g) {
            return i;
        }
        self.set.gates.push(g);
        self.set.gates.len() - 1
    }

    fn gate_of(&self, ls: Option<&Node>) -> Gate {
        let Some(ls) = ls else { return Gate::Always };
        let m = &self.cfg.logsources;
        let text = |k: &str| get(ls, k).and_then(ystr).map(|s| s.to_ascii_lowercase());
        if let Some(p) = text("product") {
            if !m.products.contains(&p) {
                return Gate::Never;
            }
        }
        let mut groups = Vec::new();
        for (key, table) in [("service", &m.services), ("category", &m.categories)] {
            if let Some(v) = text(key) {
                match table.get(&v) {
                    Some(conds) if conds.contains(&SourceCond::Any) => {}
                    Some(conds) => groups.push(conds.clone()),
                    None => return Gate::Never,
                }
            }
        }
        if groups.is_empty() {
            Gate::Always
        } else {
            Gate::All(groups)
        }
    }

    fn load_text(&mut self, text: &str, file: &Path, errors: &mut Vec<RuleLoadError>) -> usize {
        // zonewatch's bounded reader: an alias bomb is refused at its line instead of
        // growing to GBs.
        let docs = match zonewatch_yamlread::tree::documents(text, &zonewatch_yamlread::LIMITS) {
            Ok(d) => d,
            Err(e) => {
                let e = RuleLoadError {
                    file: file.to_owned(),
                    line: e.line,
                    rule_id: None,
                    message: e.message,
                };
                tracing::warn!("{e}");
                errors.push(e);
                return 0;
            }
        };
        let mut non_rules = 0;
        for d in &docs {
            let Some(doc) = d.root.as_ref() else {
                non_rules += 1;
                continue;
            };
            let id = get(doc, "id")
                .and_then(ystr)
                .or_else(|| get(doc, "title").and_then(ystr));
            let ctx = DocCtx {
                file,
                line: d.line,
                id,
            };
            let r = if get(doc, "correlation").is_some() {
                self.correlation(doc, &ctx)
            } else if get(doc, "detection").is_some() {
                self.detection(doc, &ctx)
            } else {
                non_rules += 1;
                continue;
            };
            if let Err(e) = r {
                tracing::warn!("{e}");
                errors.push(e);
            }
        }
        non_rules
    }

    fn meta(&self, doc: &Node, d: &DocCtx<'_>) -> Result<RuleMeta, RuleLoadError> {
        if get(doc, "action").is_some() {
            return Err(d.err(
                key_line(doc, "action"),
                "rule collections (`action:`) are not supported",
            ));
        }
        let title = get(doc, "title")
            .and_then(ystr)
            .ok_or_else(|| d.err(0, "missing `title`"))?;
        let level = match get(doc, "level").and_then(ystr) {
            None => Level::Medium,
            Some(l) => Level::parse(&l)
                .ok_or_else(|| d.err(key_line(doc, "level"), format!("unknown level {l:?}")))?,
        };
        let tags = match get(doc, "tags").map(|t| &t.kind) {
            Some(Kind::Seq(a)) => a.iter().filter_map(ystr).collect(),
            _ => Vec::new(),
        };
        Ok(RuleMeta {
            id: d.id.clone().unwrap_or_else(|| title.clone()),
            name: get(doc, "name").and_then(ystr),
            title,
            level,
            tags,
            file: d.file.to_owned(),
            line: d.line,
        })
    }

    fn detection(&mut self, doc: &Node, d: &DocCtx<'_>) -> Result<(), RuleLoadError> {
        let meta = self.meta(doc, d)?;
        let det_line = key_line(doc, "detection");
        let det = match get(doc, "detection").map(|n| &n.kind) {
            Some(Kind::Map(h)) => h,
            _ => return Err(d.err(det_line, "`detection` must be a mapping")),
        };
        let mut names = Vec::new();
        let mut searches = Vec::new();
        // Each condition with its line.
        let mut conds: Vec<(String, usize)> = Vec::new();
        for (k, kline, v) in det {
            let Some(k) = k.text() else {
                return Err(d.err(*kline, "non-string key in `detection`"));
            };
            match k.as_str() {
                "condition" => conds.extend(
                    items(v)
                        .into_iter()
                        .filter_map(|c| Some((ystr(c)?, c.line))),
                ),
                "timeframe" => {}
                _ => {
                    let s = self.search(v).map_err(|(line, m)| {
                        d.err(
                            if line == 0 { *kline } else { line },
                            format!("search `{k}`: {m}"),
                        )
                    })?;
                    names.push(k);
                    searches.push(s);
                }
            }
        }
        if conds.is_empty() {
            return Err(d.err(det_line, "missing `condition`"));
        }
        let mut exprs = Vec::new();
        for (c, line) in &conds {
            exprs.push(cond::parse(c, &names).map_err(|m| d.err(*line, m))?);
        }
        let cond = if exprs.len() == 1 {
            exprs.remove(0)
        } else {
            Expr::Or(exprs)
        };
        let gate = self.gate(get(doc, "logsource"));
        if self.set.gates[gate] == Gate::Never {
            self.set.inactive += 1;
        }
        self.set.detections.push(DetectionRule {
            meta,
            searches,
            cond,
            gate,
            emit: true,
            corr_refs: Vec::new(),
            need_slots: None,
        });
        Ok(())
    }

    /// A search identifier's value. An error carries the line of the offending key or value
    /// (0: the identifier's own).
    fn search(&mut self, v: &Node) -> Result<Search, (usize, String)> {
        match &v.kind {
            Kind::Map(_) => Ok(Search {
                alts: vec![self.map(v)?],
            }),
            Kind::Seq(a) if !a.is_empty() && a.iter().all(|x| matches!(x.kind, Kind::Map(_))) => {
                let mut alts = Vec::new();
                for m in a {
                    alts.push(self.map(m)?);
                }
                Ok(Search { alts })
            }
            Kind::Seq(_) | Kind::Scalar(Scalar::Str(_) | Scalar::Int(_) | Scalar::Real(_)) => {
                // Keywords: searched in the message only.
                let t = self.field_test(None, &[], v)?;
                Ok(Search {
                    alts: vec![vec![t]],
                })
            }
            _ => Err((
                0,
                "must be a mapping, a list of mappings or a list of keywords".into(),
            )),
        }
    }

    fn map(&mut self, m: &Node) -> Result<Vec<FieldTest>, (usize, String)> {
        let Kind::Map(h) = &m.kind else {
            return Err((m.line, "expected a mapping".into()));
        };
        let mut out = Vec::new();
        for (k, kline, v) in h {
            let key = k
                .text()
                .ok_or((*kline, "non-string field name".to_owned()))?;
            let mut parts = key.split('|');
            let field = parts.next().unwrap_or("");
            let mods: Vec<&str> = parts.collect();
            let field = (!field.is_empty()).then_some(field);
            let t = self.field_test(field, &mods, v).map_err(|(line, m)| {
                // A value's own line when it is not on the key's.
                let line = if line == 0 { *kline } else { line };
                (line, format!("`{key}`: {m}"))
            })?;
            out.push(t);
        }
        Ok(out)
    }

    /// `field` None = keyword search over the message.
    fn field_test(
        &mut self,
        field: Option<&str>,
        mods: &[&str],
        v: &Node,
    ) -> Result<FieldTest, (usize, String)> {
        let fref = match field {
            None => FieldRef::Message,
            Some(f) => self.cfg.fields.resolve(f),
        };
        let slot = self.slot(fref.clone());
        let mut anchor = if field.is_none() {
            Anchor::Contains
        } else {
            Anchor::Exact
        };
        let (mut all, mut cased, mut re, mut cidr, mut exists) =
            (false, false, false, false, false);
        let (mut re_i, mut re_m, mut re_s) = (false, false, false);
        let (mut b64, mut b64off, mut wide, mut wdash) = (false, false, false, false);
        let mut num: Option<NumOp> = None;
        for m in mods {
            match *m {
                "contains" => anchor = Anchor::Contains,
                "startswith" => anchor = Anchor::Start,
                "endswith" => anchor = Anchor::End,
                "all" => all = true,
                "cased" => cased = true,
                "re" => re = true,
                "i" if re => re_i = true,
                "m" if re => re_m = true,
                "s" if re => re_s = true,
                "cidr" => cidr = true,
                "exists" => exists = true,
                "base64" => b64 = true,
                "base64offset" => b64off = true,
                "wide" | "utf16le" | "utf16" => wide = true,
                "windash" => wdash = true,
                "lt" => num = Some(NumOp::Lt),
                "lte" => num = Some(NumOp::Lte),
                "gt" => num = Some(NumOp::Gt),
                "gte" => num = Some(NumOp::Gte),
                other => return Err((0, format!("unsupported modifier `{other}`"))),
            }
        }
        let raw = items(v);
        if raw.is_empty() {
            return Err((v.line, "empty value list".into()));
        }
        let mut values = Vec::new();
        for y in raw {
            // A value's error names its line.
            let at = |m: String| (y.line, m);
            if exists {
                match y.scalar() {
                    Some(Scalar::Bool(b)) => values.push(ValueTest::Exists(*b)),
                    _ => return Err(at("`exists` needs true or false".into())),
                }
                continue;
            }
            if y.scalar() == Some(&Scalar::Null) {
                values.push(ValueTest::Null);
                continue;
            }
            let s = ystr(y).ok_or_else(|| at("values must be scalars".into()))?;
            if let Some(op) = num {
                let n: f64 = s
                    .parse()
                    .map_err(|_| at(format!("`{s}` is not a number")))?;
                values.push(ValueTest::Num(op, n));
                continue;
            }
            if cidr {
                let net: ipnet::IpNet = s
                    .parse()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| at(format!("`{s}` is not a CIDR")))?;
                values.push(ValueTest::Cidr(net));
                continue;
            }
            if re {
                let mut flags = String::new();
                if re_m {
                    flags.push('m');
                }
                if re_s {
                    flags.push('s');
                }
                let pat = if flags.is_empty() {
                    s.clone()
                } else {
                    format!("(?{flags}){s}")
                };
                values.push(ValueTest::Re(matcher::build_regex(&pat, re_i).map_err(at)?));
                continue;
            }
            let variants = if wdash { matcher::windash(&s) } else { vec![s] };
            for var in variants {
                let bytes = if wide {
                    matcher::utf16le(&var)
                } else {
                    var.clone().into_bytes()
                };
                let pats = if b64off {
                    anchor = Anchor::Contains;
                    matcher::base64_offsets(&bytes)
                } else if b64 {
                    vec![matcher::base64_plain(&bytes)]
                } else {
                    vec![var]
                };
                // base64 output is case-sensitive.
                let c = cased || b64 || b64off;
                for p in pats {
                    let p = if b64 || b64off { escape_wild(&p) } else { p };
                    values.push(matcher::compile_str(&p, anchor, c).map_err(at)?);
                }
            }
            if values.len() > MAX_VALUES {
                return Err(at("too many values".into()));
            }
        }
        let values = if all {
            values
        } else {
            matcher::merge_any(values).map_err(|m| (0, m))?
        };
        Ok(FieldTest {
            slot,
            field: fref,
            values,
            all,
        })
    }

    fn correlation(&mut self, doc: &Node, d: &DocCtx<'_>) -> Result<(), RuleLoadError> {
        let meta = self.meta(doc, d)?;
        let null = Node {
            line: 0,
            kind: Kind::Scalar(Scalar::Null),
        };
        let c = get(doc, "correlation").unwrap_or(&null);
        let c_line = key_line(doc, "correlation");
        // The line of a key of the correlation (else of `correlation:`).
        let at = |k: &str| match key_line(c, k) {
            0 => c_line,
            l => l,
        };
        let kind = match get(c, "type").and_then(ystr).as_deref() {
            Some("event_count") => CorrelationType::EventCount,
            Some("value_count") => CorrelationType::ValueCount,
            Some("temporal") => CorrelationType::Temporal,
            Some("temporal_ordered") => CorrelationType::TemporalOrdered,
            other => return Err(d.err(at("type"), format!("unknown correlation type {other:?}"))),
        };
        let list = |k: &str| -> Vec<String> {
            get(c, k).map_or_else(Vec::new, |y| {
                items(y).into_iter().filter_map(ystr).collect()
            })
        };
        let rule_refs = list("rules");
        if rule_refs.is_empty() {
            return Err(d.err(at("rules"), "correlation needs `rules`"));
        }
        let group_by = list("group-by");
        if get(c, "aliases").is_some() {
            return Err(d.err(at("aliases"), "correlation `aliases` are not supported"));
        }
        let ts_key = if get(c, "timespan").is_some() {
            "timespan"
        } else {
            "timeframe"
        };
        let ts = get(c, ts_key)
            .and_then(ystr)
            .ok_or_else(|| d.err(at(ts_key), "correlation needs `timespan`"))?;
        let timespan_secs =
            parse_timespan(&ts).ok_or_else(|| d.err(at(ts_key), format!("bad timespan {ts:?}")))?;
        let mut threshold = Threshold::default();
        let mut value_field = None;
        if let Some(Kind::Map(h)) = get(c, "condition").map(|n| &n.kind) {
            for (k, kline, v) in h {
                let k = k.text().unwrap_or_default();
                if k == "field" {
                    value_field = ystr(v);
                    continue;
                }
                let n: u64 = ystr(v)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| d.err(*kline, format!("`{k}` needs a non-negative integer")))?;
                match k.as_str() {
                    "gt" => threshold.gt = Some(n),
                    "gte" => threshold.gte = Some(n),
                    "lt" => threshold.lt = Some(n),
                    "lte" => threshold.lte = Some(n),
                    "eq" => threshold.eq = Some(n),
                    other => {
                        return Err(d.err(*kline, format!("unknown condition operator `{other}`")))
                    }
                }
            }
        } else if matches!(
            kind,
            CorrelationType::EventCount | CorrelationType::ValueCount
        ) {
            return Err(d.err(
                at("condition"),
                "event_count/value_count need a `condition` mapping",
            ));
        }
        if kind == CorrelationType::ValueCount && value_field.is_none() {
            return Err(d.err(at("condition"), "value_count needs `condition.field`"));
        }
        let group_slots = group_by
            .iter()
            .map(|g| {
                let f = self.cfg.fields.resolve(g);
                (self.slot(f.clone()), f)
            })
            .collect();
        let value_slot = value_field.as_ref().map(|v| {
            let f = self.cfg.fields.resolve(v);
            (self.slot(f.clone()), f)
        });
        let generate = get(c, "generate").and_then(Node::scalar) == Some(&Scalar::Bool(true));
        let rule = CorrelationRule {
            meta,
            kind,
            rule_refs: rule_refs.clone(),
            rules: Vec::new(),
            group_by,
            group_slots,
            timespan_secs,
            threshold,
            value_field,
            value_slot,
            generate,
        };
        self.pending_corr.push((rule, rule_refs));
        Ok(())
    }

    /// Resolves correlation references once every file is loaded.
    fn finish(mut self, errors: &mut Vec<RuleLoadError>) -> RuleSet {
        let mut by_ref: HashMap<&str, usize> = HashMap::new();
        for (i, r) in self.set.detections.iter().enumerate() {
            by_ref.entry(r.meta.id.as_str()).or_insert(i);
            if let Some(n) = &r.meta.name {
                by_ref.entry(n.as_str()).or_insert(i);
            }
        }
        let mut resolved = Vec::new();
        for (mut c, refs) in std::mem::take(&mut self.pending_corr) {
            let mut idx = Vec::new();
            let mut missing = None;
            for r in &refs {
                match by_ref.get(r.as_str()) {
                    Some(&i) => idx.push(i),
                    None => missing = Some(r.clone()),
                }
            }
            if let Some(m) = missing {
                let e = RuleLoadError {
                    file: c.meta.file.clone(),
                    line: c.meta.line,
                    rule_id: Some(c.meta.id.clone()),
                    message: format!("correlation refers to unknown rule `{m}` (only detection rules can be referenced)"),
                };
                tracing::warn!("{e}");
                errors.push(e);
                continue;
            }
            c.rules = idx;
            resolved.push(c);
        }
        // Referenced rules emit their own alerts only if some correlation says `generate: true`.
        let mut referenced = vec![false; self.set.detections.len()];
        let mut generate = vec![false; self.set.detections.len()];
        for (ci, c) in resolved.iter().enumerate() {
            for (pos, &ri) in c.rules.iter().enumerate() {
                referenced[ri] = true;
                generate[ri] |= c.generate;
                self.set.detections[ri].corr_refs.push((ci, pos));
            }
        }
        for (i, r) in self.set.detections.iter_mut().enumerate() {
            r.emit = !referenced[i] || generate[i];
        }
        self.set.correlations = resolved;
        for r in &mut self.set.detections {
            r.need_slots =
                necessary_slots(&r.cond, &r.searches).filter(|v| !v.is_empty() && !v.contains(&0));
        }
        self.set.active = (0..self.set.detections.len())
            .filter(|&i| self.set.gates[self.set.detections[i].gate] != Gate::Never)
            .collect();
        self.set.field_gates = field_gates(&self.set);
        self.build_prefilter();
        self.set
    }

    /// Rules whose condition needs one of a set of literals in the message are evaluated only
    /// when the automaton sees one of them (the prefilter never drops a true match: every
    /// literal is necessary for the rule, and the rule is fully evaluated afterwards).
    fn build_prefilter(&mut self) {
        let mut lits: Vec<String> = Vec::new();
        let mut ix: HashMap<String, usize> = HashMap::new();
        let mut map: Vec<Vec<usize>> = Vec::new();
        let n = self.set.detections.len();
        let mut pre = vec![false; n];
        // Inactive rules are never evaluated: their literals would only make the automaton
        // larger.
        for &ri in &self.set.active {
            let r = &self.set.detections[ri];
            let Some(need) = necessary(&r.cond, &r.searches) else {
                continue;
            };
            if need.is_empty() || need.len() > 4096 {
                continue;
            }
            pre[ri] = true;
            for l in need {
                let id = *ix.entry(l.clone()).or_insert_with(|| {
                    lits.push(l);
                    map.push(Vec::new());
                    lits.len() - 1
                });
                if map[id].last() != Some(&ri) {
                    map[id].push(ri);
                }
            }
        }
        if lits.is_empty() {
            return;
        }
        // A DFA (one transition per byte; the automaton is small) matching ASCII letters
        // in either case, so that an ASCII message need not be lowercased first. Literals are
        // lowercase, so on a lowercased (non-ASCII) message this is plain matching.
        let build = |kind| {
            aho_corasick::AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::Standard)
                .ascii_case_insensitive(true)
                .kind(kind)
                .build(&lits)
        };
        match build(Some(aho_corasick::AhoCorasickKind::DFA)).or_else(|_| build(None)) {
            Ok(ac) => {
                self.set.prefilter = Some(ac);
                self.set.prefilter_rules = map;
                // The other active rules, grouped by log-source gate (in rule order within a
                // gate): a closed gate skips its whole group.
                let mut by_gate: Vec<(usize, Vec<usize>)> = Vec::new();
                for &ri in self.set.active.iter().filter(|&&ri| !pre[ri]) {
                    let g = self.set.detections[ri].gate;
                    match by_gate.iter_mut().find(|(gg, _)| *gg == g) {
                        Some((_, v)) => v.push(ri),
                        None => by_gate.push((g, vec![ri])),
                    }
                }
                self.set.unfiltered = by_gate;
                self.set.prefiltered = pre;
            }
            Err(e) => tracing::warn!("rule prefilter disabled: {e}"),
        }
    }
}

/// Gates under which some active rule reads an extracted field; `None` when a gate of an
/// active rule reads one itself (it cannot be decided without extraction).
fn field_gates(set: &RuleSet) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for &ri in &set.active {
        let r = &set.detections[ri];
        if let Gate::All(groups) = &set.gates[r.gate] {
            if groups
                .iter()
                .flatten()
                .any(|c| matches!(c, crate::config::SourceCond::HasField(_)))
            {
                return None;
            }
        }
        let reads = r.searches.iter().any(|s| {
            s.alts
                .iter()
                .flatten()
                .any(|t| matches!(t.field, FieldRef::Extracted(_)))
        });
        if reads && !out.contains(&r.gate) {
            out.push(r.gate);
        }
    }
    out.sort_unstable();
    Some(out)
}

/// Field slots one of which must be present for `e` to hold.
fn necessary_slots(e: &Expr, searches: &[Search]) -> Option<Vec<usize>> {
    match e {
        Expr::Search(i) => {
            let s = searches.get(*i)?;
            let mut out = Vec::new();
            for alt in &s.alts {
                let t = alt.iter().find(|t| {
                    t.values
                        .iter()
                        .all(|v| !matches!(v, ValueTest::Null | ValueTest::Exists(false)))
                })?;
                if !out.contains(&t.slot) {
                    out.push(t.slot);
                }
            }
            Some(out)
        }
        Expr::And(v) => v
            .iter()
            .filter_map(|x| necessary_slots(x, searches))
            .min_by_key(Vec::len),
        Expr::Or(v) => {
            let mut out: Vec<usize> = Vec::new();
            for x in v {
                for s in necessary_slots(x, searches)? {
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
            Some(out)
        }
        Expr::Not(_) => None,
    }
}

/// Literals one of which must occur in the (lowercased) message for `e` to hold.
fn necessary(e: &Expr, searches: &[Search]) -> Option<Vec<String>> {
    match e {
        Expr::Search(i) => {
            let s = searches.get(*i)?;
            let mut out = Vec::new();
            for alt in &s.alts {
                // One test of the alternative on the message with a necessary literal suffices.
                let best = alt
                    .iter()
                    .filter(|t| t.field == FieldRef::Message)
                    .filter_map(|t| {
                        if t.all {
                            t.values.iter().find_map(|v| v.necessary_literals())
                        } else {
                            let mut v = Vec::new();
                            for x in &t.values {
                                v.extend(x.necessary_literals()?);
                            }
                            Some(v)
                        }
                    })
                    .min_by_key(Vec::len)?;
                out.extend(best);
            }
            Some(out)
        }
        Expr::And(v) => v
            .iter()
            .filter_map(|x| necessary(x, searches))
            .min_by_key(Vec::len),
        Expr::Or(v) => {
            let mut out = Vec::new();
            for x in v {
                out.extend(necessary(x, searches)?);
            }
            Some(out)
        }
        Expr::Not(_) => None,
    }
}

fn escape_wild(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('*', "\\*")
        .replace('?', "\\?")
}

/// `30s`, `5m`, `1h`, `2d`, `1w` (also a bare number of seconds) → seconds.
pub fn parse_timespan(s: &str) -> Option<u64> {
    let s = s.trim();
    let (n, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = n.parse().ok()?;
    let mul = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        "M" => 2_592_000,
        "y" => 31_536_000,
        _ => return None,
    };
    let v = n.checked_mul(mul)?;
    (v > 0).then_some(v)
}

impl RuleSet {
    /// Detections whose log source never occurs on syslog (counted in
    /// `inactive`): they load but cannot match, e.g. `category:
    /// process_creation` without an EDR feed. For `rules check`.
    pub fn inactive_detections(&self) -> impl Iterator<Item = &DetectionRule> {
        self.detections
            .iter()
            .filter(|d| self.gates[d.gate] == Gate::Never)
    }

    /// The same rules without the literal and field-presence prefilters (every gated rule is
    /// fully evaluated on every record): for measuring them and for checking that they never
    /// drop a match.
    pub fn without_prefilter(mut self) -> Self {
        self.prefilter = None;
        self.prefilter_rules.clear();
        self.prefiltered.clear();
        self.unfiltered.clear();
        for r in &mut self.detections {
            r.need_slots = None;
        }
        self
    }

    /// Loads every `.yml`/`.yaml` file under `paths` (files or directories, recursively, in
    /// name order, by the walk all rule loaders share, `zonewatch_rulefiles`: symbolic link
    /// loops end, what lies too deep is named in a warning). Bad rules are reported in
    /// [`LoadReport::errors`] and skipped, and so are paths that cannot be read.
    pub fn load_paths(paths: &[PathBuf], cfg: &SigmaConfig) -> LoadReport {
        let mut errors = Vec::new();
        // One walk of every path: each file once, however many paths lead to it.
        let (walk, bad) = zonewatch_rulefiles::collect_each(paths);
        for s in &walk.skipped {
            tracing::warn!("sigma: {s}");
        }
        for e in bad {
            let e = RuleLoadError {
                file: e.path,
                line: 0,
                rule_id: None,
                message: format!("cannot read: {}", e.source),
            };
            tracing::warn!("{e}");
            errors.push(e);
        }
        let files = walk.of(zonewatch_rulefiles::Kind::Yaml);
        let mut srcs = Vec::new();
        for f in &files {
            let too_big = std::fs::metadata(f)
                .map(|m| m.len() > MAX_RULE_FILE_BYTES)
                .unwrap_or(false);
            let problem = if too_big {
                format!("file larger than {MAX_RULE_FILE_BYTES} bytes")
            } else {
                match std::fs::read(f) {
                    Ok(b) => {
                        srcs.push((f.clone(), String::from_utf8_lossy(&b).into_owned()));
                        continue;
                    }
                    Err(e) => format!("cannot read: {e}"),
                }
            };
            let e = RuleLoadError {
                file: f.clone(),
                line: 1,
                rule_id: None,
                message: problem,
            };
            tracing::warn!("{e}");
            errors.push(e);
        }
        let refs: Vec<(&Path, &str)> = srcs
            .iter()
            .map(|(p, s)| (p.as_path(), s.as_str()))
            .collect();
        let mut r = Self::load_texts(&refs, cfg);
        r.files = files.len();
        errors.append(&mut r.errors);
        r.errors = errors;
        r
    }

    /// Loads rules from in-memory texts (`(file name for messages, YAML)`).
    pub fn load_texts(texts: &[(&Path, &str)], cfg: &SigmaConfig) -> LoadReport {
        let mut b = Builder {
            cfg,
            set: RuleSet::default(),
            slot_ix: HashMap::new(),
            pending_corr: Vec::new(),
        };
        b.slot(FieldRef::Message); // slot 0: keywords
        let mut errors = Vec::new();
        let mut non_rules = 0;
        for (f, t) in texts {
            non_rules += b.load_text(t, f, &mut errors);
        }
        let rules = b.finish(&mut errors);
        LoadReport {
            rules,
            errors,
            files: texts.len(),
            non_rules,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("5m"), Some(300));
        assert_eq!(parse_timespan("1h"), Some(3600));
        assert_eq!(parse_timespan("30"), Some(30));
        assert_eq!(parse_timespan("0s"), None);
        assert_eq!(parse_timespan("5x"), None);
        assert_eq!(parse_timespan("99999999999999999999d"), None);
    }

    #[test]
    fn thresholds() {
        let t = Threshold {
            gte: Some(5),
            ..Default::default()
        };
        assert!(t.monotone() && t.holds(5) && !t.holds(4));
        assert_eq!(t.min_count(), 5);
        let t = Threshold {
            gt: Some(2),
            lte: Some(4),
            ..Default::default()
        };
        assert!(!t.monotone() && t.holds(3) && !t.holds(5) && !t.holds(2));
    }

    #[test]
    fn load_paths_survives_loops_and_alias_bombs() {
        let dir = std::env::temp_dir().join(format!("zw-sigma-load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("linux")).unwrap();
        let rule =
            "title: t\nid: r1\ndetection:\n  sel:\n    message|contains: x\n  condition: sel\n";
        std::fs::write(dir.join("linux/r.yml"), rule).unwrap();
        std::os::unix::fs::symlink(&dir, dir.join("linux/loop")).unwrap();
        let mut bomb = String::from("title: b\nid: b1\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n");
        for i in 1..12 {
            let p = i - 1;
            bomb.push_str(&format!(
                "x{i}: &x{i} [*x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}]\n"
            ));
        }
        bomb.push_str("detection:\n  sel: {a: 1}\n  condition: sel\n");
        std::fs::write(dir.join("bomb.yml"), bomb).unwrap();
        let t0 = std::time::Instant::now();
        let r = RuleSet::load_paths(&[dir.clone(), dir.join("linux")], &SigmaConfig::default());
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(r.files, 2);
        assert_eq!(r.rules.detections.len(), 1);
        assert_eq!(r.errors.len(), 1);
        let e = r.errors[0].to_string();
        assert!(
            e.starts_with(&format!(
                "{}:6: rule ?: YAML alias *x2",
                dir.join("bomb.yml").display()
            )),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_carry_file_line_and_id_and_do_not_stop_the_load() {
        let text = "title: good\nid: g1\nlogsource: {product: linux}\ndetection:\n  sel:\n    message|contains: x\n  condition: sel\n---\ntitle: bad\nid: b1\ndetection:\n  sel:\n    message|frobnicate: x\n  condition: sel\n---\ntitle: bad2\nid: b2\ndetection:\n  sel: {a: 1}\n  condition: sel and nope\n";
        let r = RuleSet::load_texts(&[(Path::new("r.yml"), text)], &SigmaConfig::default());
        assert_eq!(r.rules.detections.len(), 1);
        assert_eq!(r.errors.len(), 2);
        assert_eq!(r.errors[0].line, 13);
        assert_eq!(r.errors[0].rule_id.as_deref(), Some("b1"));
        assert!(
            r.errors[0].to_string().starts_with("r.yml:13: rule b1: "),
            "{}",
            r.errors[0]
        );
        assert_eq!(r.errors[1].line, 20);
    }

    fn load(text: &str) -> LoadReport {
        RuleSet::load_texts(&[(Path::new("r.yml"), text)], &SigmaConfig::default())
    }

    #[test]
    fn error_lines_are_those_of_the_offending_key_or_value() {
        // The words `condition:` and `level:` in the description, a `---` inside a block
        // scalar, leading comments: a text search would name the wrong lines.
        let text = "# header\n# more\ntitle: a\nid: a\ndescription: |\n  level: none\n  ---\n  condition: x\nlevel: severe\ndetection:\n  s: {f: x}\n  condition: s\n---\ntitle: b\nid: b\ndescription: 'condition: here'\ndetection:\n  s:\n    f|re:\n      - ok\n      - '(unclosed'\n  condition: s\n---\ntitle: c\nid: c\ndetection:\n  s: {f: x}\n  condition:\n    - s\n    - s and nope\n";
        let r = load(text);
        assert_eq!(r.rules.detections.len(), 0);
        let got: Vec<(usize, Option<&str>)> = r
            .errors
            .iter()
            .map(|e| (e.line, e.rule_id.as_deref()))
            .collect();
        assert_eq!(
            got,
            [(9, Some("a")), (21, Some("b")), (30, Some("c"))],
            "{:?}",
            r.errors
        );
        // A document-level error names the document's start.
        let r = load("id: x\ndetection:\n  s: {f: x}\n  condition: s\n---\n# c\nid: y\ndetection:\n  s: {f: x}\n  condition: s\n");
        let lines: Vec<usize> = r.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 5]);
        // Correlation keys.
        let r = load("title: d\nid: d\ndetection:\n  s: {f: x}\n  condition: s\n---\ntitle: c\ncorrelation:\n  type: event_count\n  rules: d\n  timespan: 5m\n  condition:\n    gte: 1\n    most: 3\n");
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].line, 14, "{}", r.errors[0]);
    }

    #[test]
    fn values_are_typed_by_their_yaml_style() {
        let rule =
            |sel: &str| format!("title: t\nid: t\ndetection:\n  s:\n{sel}\n  condition: s\n");
        // `exists` needs a boolean: `true` is one, `'true'` a string.
        assert!(load(&rule("    f|exists: true")).errors.is_empty());
        let r = load(&rule("    f|exists: 'true'"));
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].line, 5);
        // `null` (and `~`, empty) is the null test, `'null'` the text.
        let null = |sel: &str| {
            let r = load(&rule(sel));
            assert!(r.errors.is_empty(), "{:?}", r.errors);
            matches!(
                r.rules.detections[0].searches[0].alts[0][0].values[..],
                [ValueTest::Null]
            )
        };
        assert!(null("    f: null"));
        assert!(null("    f: ~"));
        assert!(null("    f:"));
        assert!(!null("    f: 'null'"));
        // Numbers keep their YAML reading: `0x10` is 16, `'0x10'` the text.
        let text = |sel: &str| {
            let r = load(&rule(sel));
            format!("{:?}", r.rules.detections[0].searches[0].alts[0][0].values)
        };
        assert!(text("    f: 0x10").contains("\"16\""));
        assert!(text("    f: '0x10'").contains("\"0x10\""));
        // A keyword search must be text or numbers, not a boolean.
        assert_eq!(load(&rule("    true")).errors.len(), 1);
        // `generate` needs the boolean.
        let corr = |g: &str| {
            let t = format!("title: d\nid: d\ndetection:\n  s: {{f: x}}\n  condition: s\n---\ntitle: c\ncorrelation:\n  type: event_count\n  rules: d\n  timespan: 5m\n  condition: {{gte: 1}}\n  generate: {g}\n");
            load(&t).rules.correlations[0].generate
        };
        assert!(corr("true"));
        assert!(!corr("'true'"));
    }
}
