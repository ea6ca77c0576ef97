//! Inspection programs: a rule's content/pcre/byte_* steps on one buffer,
//! compiled once and run with Suricata's semantics (offsets/depth absolute,
//! distance/within relative to the previous match, backtracking over later
//! occurrences while a following step is relative).

use zonewatch_rules::{Item, Num, NumberFormat};

/// Most steps one program evaluation may take (Suricata:
/// `inspection-recursion-limit`, 3000); past it the rule does not match.
const STEP_BUDGET: u32 = 3000;
/// Most `byte_extract` variables a rule may hold.
pub(crate) const MAX_VARS: usize = 8;

#[derive(Debug, Clone, Copy)]
pub(crate) enum NumC {
    Lit(i64),
    Var(u8),
}

impl NumC {
    fn get(self, vars: &[i64; MAX_VARS]) -> i64 {
        match self {
            NumC::Lit(n) => n,
            NumC::Var(i) => vars[i as usize],
        }
    }
}

#[derive(Debug)]
enum Finder {
    Exact(Box<memchr::memmem::Finder<'static>>),
    /// Lowercased pattern, compared ASCII case-insensitively.
    NoCase(Vec<u8>),
}

impl Finder {
    /// First occurrence starting in `[from, last_start]`.
    fn find(&self, hay: &[u8], from: usize, last_start: usize) -> Option<usize> {
        if from > last_start {
            return None;
        }
        match self {
            Finder::Exact(f) => {
                let len = f.needle().len();
                let end = (last_start + len).min(hay.len());
                f.find(&hay[from..end]).map(|p| p + from)
            }
            Finder::NoCase(p) => {
                let first = p[0];
                let (a, b) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
                let mut i = from;
                while i <= last_start {
                    let rel = memchr::memchr2(a, b, &hay[i..=last_start])?;
                    let at = i + rel;
                    if hay[at..at + p.len()].eq_ignore_ascii_case(p) {
                        return Some(at);
                    }
                    i = at + 1;
                }
                None
            }
        }
    }
}

#[derive(Debug)]
struct ContentStep {
    finder: Finder,
    len: usize,
    negated: bool,
    relative: bool,
    offset: Option<NumC>,
    depth: Option<NumC>,
    distance: Option<NumC>,
    within: Option<NumC>,
    startswith: bool,
    endswith: bool,
}

#[derive(Debug)]
struct ByteRead {
    nbytes: u8,
    format: NumberFormat,
    bitmask: Option<u64>,
}

impl ByteRead {
    fn read(&self, buf: &[u8], pos: i64) -> Option<u64> {
        if pos < 0 {
            return None;
        }
        let pos = pos as usize;
        let bytes = buf.get(pos..pos.checked_add(self.nbytes as usize)?)?;
        let mut v: u64 = match self.format.string_base {
            Some(base) => {
                let s = std::str::from_utf8(bytes).ok()?;
                let s = s.trim_start();
                let digits: &str = {
                    let end = s
                        .char_indices()
                        .find(|(_, c)| !c.is_digit(base))
                        .map(|(i, _)| i)
                        .unwrap_or(s.len());
                    &s[..end]
                };
                if digits.is_empty() {
                    return None;
                }
                u64::from_str_radix(digits, base).ok()?
            }
            None => {
                let mut v = 0u64;
                if self.format.little {
                    for &b in bytes.iter().rev() {
                        v = v << 8 | b as u64;
                    }
                } else {
                    for &b in bytes {
                        v = v << 8 | b as u64;
                    }
                }
                v
            }
        };
        if let Some(m) = self.bitmask {
            v &= m;
            if m != 0 {
                v >>= m.trailing_zeros();
            }
        }
        Some(v)
    }
}

/// `byte_test`'s comparison.
#[derive(Debug, Clone, Copy)]
enum ByteOp {
    Lt,
    Gt,
    Eq,
    Le,
    Ge,
    /// Any of the value's bits set.
    And,
    /// Differs from the value.
    Xor,
}

impl ByteOp {
    fn parse(op: &str) -> ByteOp {
        match op {
            "<" => ByteOp::Lt,
            ">" => ByteOp::Gt,
            "=" => ByteOp::Eq,
            "<=" => ByteOp::Le,
            ">=" => ByteOp::Ge,
            "&" => ByteOp::And,
            _ => ByteOp::Xor,
        }
    }

    fn test(self, v: u64, want: u64) -> bool {
        match self {
            ByteOp::Lt => v < want,
            ByteOp::Gt => v > want,
            ByteOp::Eq => v == want,
            ByteOp::Le => v <= want,
            ByteOp::Ge => v >= want,
            ByteOp::And => v & want != 0,
            ByteOp::Xor => v ^ want != 0,
        }
    }
}

/// A compiled pcre. The `regex` crate (linear time, on bytes) runs every
/// expression it can; the rest (backreferences, look-around: a few hundred
/// ET Open rules) run on a backtracking engine with a bound on its work, as
/// Suricata bounds PCRE with `pcre.match-limit`.
#[derive(Debug)]
pub(crate) enum PcreMatcher {
    Linear(regex::bytes::Regex),
    Backtracking(fancy_regex::Regex),
}

/// Backtracking steps one pcre may take on one buffer before it is taken as
/// not matching (and counted): hostile input must not stall a worker.
const PCRE_BACKTRACK_LIMIT: usize = 100_000;

impl PcreMatcher {
    /// The first match at or after `start`: (start, end) in `hay`.
    pub(crate) fn find_at(&self, hay: &[u8], start: usize) -> Option<(usize, usize)> {
        match self {
            PcreMatcher::Linear(r) => r.find_at(hay, start).map(|m| (m.start(), m.end())),
            PcreMatcher::Backtracking(r) => {
                // The backtracking engine reads text: each byte becomes the
                // character of the same number (Latin-1), so `\xNN` in the
                // expression still means byte NN. Offsets are mapped back.
                let text: String = hay.iter().map(|&b| char::from(b)).collect();
                let pos = start
                    + hay[..start.min(hay.len())]
                        .iter()
                        .filter(|&&b| b >= 0x80)
                        .count();
                let m = r.find_from_pos(&text, pos).ok()??;
                Some((byte_index(hay, m.start()), byte_index(hay, m.end())))
            }
        }
    }
}

/// `\w`, `\d`, `\s` and their negations spelled as ASCII classes (an
/// escaped backslash is left alone).
fn ascii_classes(pat: &str) -> String {
    let mut out = String::with_capacity(pat.len() + 32);
    let mut chars = pat.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('w') => out.push_str("[0-9A-Za-z_]"),
            Some('W') => out.push_str("[^0-9A-Za-z_]"),
            Some('d') => out.push_str("[0-9]"),
            Some('D') => out.push_str("[^0-9]"),
            Some('s') => out.push_str("[\\t\\n\\x0b\\x0c\\r ]"),
            Some('S') => out.push_str("[^\\t\\n\\x0b\\x0c\\r ]"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// The index in `hay` of the byte at `utf8` in its Latin-1 text.
fn byte_index(hay: &[u8], utf8: usize) -> usize {
    let mut at = 0;
    for (i, &b) in hay.iter().enumerate() {
        if at >= utf8 {
            return i;
        }
        at += if b >= 0x80 { 2 } else { 1 };
    }
    hay.len()
}

#[derive(Debug)]
struct PcreStep {
    re: PcreMatcher,
    relative: bool,
    negated: bool,
}

#[derive(Debug)]
struct IsDataAtStep {
    pos: NumC,
    relative: bool,
    negated: bool,
}

impl IsDataAtStep {
    fn holds(&self, len: i64, prev: usize, vars: &[i64; MAX_VARS]) -> bool {
        let n = self.pos.get(vars);
        let present = if self.relative {
            prev as i64 + n <= len
        } else {
            n < len
        };
        present != self.negated
    }
}

#[derive(Debug)]
struct ByteTestStep {
    read: ByteRead,
    op: ByteOp,
    negated: bool,
    value: NumC,
    offset: NumC,
    relative: bool,
}

impl ByteTestStep {
    /// Whether the test holds; `None` when the bytes cannot be read.
    fn holds(&self, buf: &[u8], prev: usize, vars: &[i64; MAX_VARS]) -> Option<bool> {
        let at = self.offset.get(vars) + if self.relative { prev as i64 } else { 0 };
        let v = self.read.read(buf, at)?;
        Some(self.op.test(v, self.value.get(vars) as u64) != self.negated)
    }
}

#[derive(Debug)]
struct ByteJumpStep {
    read: ByteRead,
    nbytes: NumC,
    offset: NumC,
    relative: bool,
    multiplier: u64,
    align: bool,
    from_beginning: bool,
    from_end: bool,
    post_offset: i64,
}

impl ByteJumpStep {
    /// Most bytes a jump reads: as a string number, or binary.
    const MAX_STRING_BYTES: i64 = 23;
    const MAX_BINARY_BYTES: i64 = 8;

    /// The position the jump lands on, if within the buffer.
    fn target(&self, buf: &[u8], prev: usize, vars: &[i64; MAX_VARS]) -> Option<usize> {
        let len = buf.len() as i64;
        let at = self.offset.get(vars) + if self.relative { prev as i64 } else { 0 };
        let n = self.nbytes.get(vars);
        let max = if self.read.format.string_base.is_some() {
            Self::MAX_STRING_BYTES
        } else {
            Self::MAX_BINARY_BYTES
        };
        if !(0..=max).contains(&n) {
            return None;
        }
        let read = ByteRead {
            nbytes: n as u8,
            format: self.read.format,
            bitmask: self.read.bitmask,
        };
        let v = if n == 0 {
            if at < 0 || at > len {
                return None;
            }
            0
        } else {
            read.read(buf, at)?
        };
        let mut jump = (v.saturating_mul(self.multiplier)).min(i64::MAX as u64 / 4) as i64;
        if self.align && jump % 4 != 0 {
            jump += 4 - jump % 4;
        }
        let base = if self.from_beginning {
            0
        } else if self.from_end {
            len
        } else {
            at + read.nbytes as i64
        };
        let new = base + jump + self.post_offset;
        if new < 0 || new > len {
            return None;
        }
        Some(new as usize)
    }
}

#[derive(Debug)]
struct ByteExtractStep {
    read: ByteRead,
    offset: i64,
    relative: bool,
    multiplier: u64,
    align: u8,
    var: u8,
}

impl ByteExtractStep {
    /// Reads the value into its variable; the position after the bytes read.
    fn extract(&self, buf: &[u8], prev: usize, vars: &mut [i64; MAX_VARS]) -> Option<usize> {
        let at = self.offset + if self.relative { prev as i64 } else { 0 };
        let v = self.read.read(buf, at)?;
        let mut v = (v.saturating_mul(self.multiplier)).min(i64::MAX as u64 / 4) as i64;
        let align = self.align as i64;
        if align > 1 && v % align != 0 {
            v += align - v % align;
        }
        vars[self.var as usize] = v;
        Some((at + self.read.nbytes as i64) as usize)
    }
}

#[derive(Debug)]
enum Step {
    Content(Box<ContentStep>),
    Pcre(Box<PcreStep>),
    IsDataAt(IsDataAtStep),
    ByteTest(ByteTestStep),
    ByteJump(Box<ByteJumpStep>),
    Bsize(zonewatch_rules::UintCmp),
    ByteExtract(ByteExtractStep),
}

impl Step {
    fn is_relative(&self) -> bool {
        match self {
            Step::Content(c) => c.relative,
            Step::Bsize(_) => false,
            Step::Pcre(p) => p.relative,
            Step::IsDataAt(d) => d.relative,
            Step::ByteTest(t) => t.relative,
            Step::ByteJump(j) => j.relative,
            Step::ByteExtract(e) => e.relative,
        }
    }

    /// Whether the step reads at a fixed place from the buffer's start.
    fn is_anchored(it: &Item) -> bool {
        match it {
            Item::Content(c) => {
                !c.is_relative() && (c.offset.is_some() || c.depth.is_some() || c.startswith)
            }
            Item::Pcre(p) => !p.relative && p.anchored,
            Item::IsDataAt(_) | Item::Bsize(_) => false,
            Item::ByteTest(t) => !t.relative,
            Item::ByteJump(j) => !j.relative,
            Item::ByteExtract(e) => !e.relative,
        }
    }

    /// Compiles one item; `vars` holds the rule's `byte_extract` names.
    fn compile(it: &Item, vars: &mut Vec<String>) -> Result<Step, CompileError> {
        Ok(match it {
            Item::Content(c) => Step::Content(Box::new(ContentStep::compile(c, vars)?)),
            Item::Pcre(p) => Step::Pcre(Box::new(PcreStep {
                re: compile_pcre(p)?,
                relative: p.relative,
                negated: p.negated,
            })),
            Item::IsDataAt(d) => Step::IsDataAt(IsDataAtStep {
                pos: numc(&d.pos, vars)?,
                relative: d.relative,
                negated: d.negated,
            }),
            Item::ByteTest(t) => Step::ByteTest(ByteTestStep {
                read: ByteRead {
                    nbytes: t.nbytes,
                    format: t.format,
                    bitmask: t.bitmask,
                },
                op: ByteOp::parse(&t.op),
                negated: t.negated,
                value: numc(&t.value, vars)?,
                offset: numc(&t.offset, vars)?,
                relative: t.relative,
            }),
            Item::ByteJump(j) => Step::ByteJump(Box::new(ByteJumpStep {
                nbytes: numc(&j.nbytes, vars)?,
                read: ByteRead {
                    // Set per evaluation from `nbytes`.
                    nbytes: 0,
                    format: j.format,
                    bitmask: j.bitmask,
                },
                offset: numc(&j.offset, vars)?,
                relative: j.relative,
                multiplier: j.multiplier.max(1),
                align: j.align,
                from_beginning: j.from_beginning,
                from_end: j.from_end,
                post_offset: j.post_offset,
            })),
            Item::Bsize(c) => Step::Bsize(*c),
            Item::ByteExtract(e) => {
                if vars.len() >= MAX_VARS {
                    return Err(CompileError {
                        keyword: "byte_extract",
                        detail: format!("more than {MAX_VARS} variables"),
                        unsupported: true,
                    });
                }
                vars.push(e.name.clone());
                Step::ByteExtract(ByteExtractStep {
                    read: ByteRead {
                        nbytes: e.nbytes,
                        format: e.format,
                        bitmask: e.bitmask,
                    },
                    offset: e.offset,
                    relative: e.relative,
                    multiplier: e.multiplier.max(1),
                    align: e.align,
                    var: (vars.len() - 1) as u8,
                })
            }
        })
    }
}

impl ContentStep {
    fn compile(c: &zonewatch_rules::Content, vars: &[String]) -> Result<ContentStep, CompileError> {
        let finder = if c.nocase {
            Finder::NoCase(c.pattern.to_ascii_lowercase())
        } else {
            Finder::Exact(Box::new(
                memchr::memmem::Finder::new(&c.pattern).into_owned(),
            ))
        };
        let num = |n: &Option<Num>| n.as_ref().map(|n| numc(n, vars)).transpose();
        Ok(ContentStep {
            finder,
            len: c.pattern.len(),
            negated: c.negated,
            relative: c.is_relative(),
            offset: num(&c.offset)?,
            depth: num(&c.depth)?,
            distance: num(&c.distance)?,
            within: num(&c.within)?,
            startswith: c.startswith,
            endswith: c.endswith,
        })
    }

    /// Where the content may lie: `[start, end)` of the buffer.
    fn range(&self, len: i64, prev: usize, vars: &[i64; MAX_VARS]) -> (i64, i64) {
        let (start, end) = if self.startswith {
            (0i64, self.len as i64)
        } else if self.relative {
            let dist = self.distance.map_or(0, |d| d.get(vars));
            let s = (prev as i64 + dist).max(0);
            let e = match self.within {
                Some(w) => (prev as i64 + dist + w.get(vars)).min(len),
                None => len,
            };
            (s, e)
        } else {
            let s = self.offset.map_or(0, |o| o.get(vars)).max(0);
            let e = match self.depth {
                Some(d) => (s + d.get(vars)).min(len),
                None => len,
            };
            (s, e)
        };
        (start, end.min(len))
    }

    /// The first occurrence starting at `start` or later and ending by `end`.
    fn find(&self, buf: &[u8], start: i64, end: i64) -> Option<usize> {
        let len = buf.len() as i64;
        let last_start = end - self.len as i64;
        if last_start < start {
            None
        } else if self.endswith {
            // Only an occurrence ending at the buffer's end counts.
            let at = len - self.len as i64;
            (at >= start && at <= last_start)
                .then(|| self.finder.find(buf, at as usize, at as usize))
                .flatten()
        } else {
            self.finder.find(buf, start as usize, last_start as usize)
        }
    }
}

/// One evaluation of a program: the buffer, the `byte_extract` variables
/// and the steps left of the budget.
struct Run<'b, 'v> {
    buf: &'b [u8],
    vars: &'v mut [i64; MAX_VARS],
    budget: u32,
}

impl<'b, 'v> Run<'b, 'v> {
    fn new(buf: &'b [u8], vars: &'v mut [i64; MAX_VARS]) -> Run<'b, 'v> {
        Run {
            buf,
            vars,
            budget: STEP_BUDGET,
        }
    }
}

/// A compiled inspection list.
#[derive(Debug)]
pub(crate) struct Program {
    steps: Vec<Step>,
    /// A step is anchored to the buffer's start (offset/depth/startswith or
    /// an absolute byte_*): on a stream window that does not start at the
    /// stream's first byte the program is not run.
    pub(crate) anchored: bool,
    /// The program's fast pattern candidate: (bytes, caseless, marked
    /// `fast_pattern`).
    fast: Option<(Vec<u8>, bool, bool)>,
    /// Transforms applied to the buffer first.
    transforms: Vec<Transform>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    DotPrefix,
    Lower,
    Upper,
    StripWhitespace,
    CompressWhitespace,
    UrlDecode,
}

impl Transform {
    /// Writes the transform of `b` to `v` (cleared first).
    fn apply_into(self, b: &[u8], v: &mut Vec<u8>) {
        v.clear();
        match self {
            Transform::DotPrefix => {
                v.push(b'.');
                v.extend_from_slice(b);
            }
            Transform::Lower => v.extend(b.iter().map(u8::to_ascii_lowercase)),
            Transform::Upper => v.extend(b.iter().map(u8::to_ascii_uppercase)),
            Transform::StripWhitespace => {
                v.extend(b.iter().copied().filter(|c| !c.is_ascii_whitespace()))
            }
            Transform::CompressWhitespace => {
                for &c in b {
                    if c.is_ascii_whitespace() {
                        if v.last().is_some_and(|l: &u8| l.is_ascii_whitespace()) {
                            continue;
                        }
                        v.push(b' ');
                    } else {
                        v.push(c);
                    }
                }
            }
            Transform::UrlDecode => {
                let mut i = 0;
                while i < b.len() {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match b[i] {
                        b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                            (Some(h), Some(l)) => {
                                v.push((h * 16 + l) as u8);
                                i += 3;
                                continue;
                            }
                            _ => v.push(b'%'),
                        },
                        b'+' => v.push(b' '),
                        c => v.push(c),
                    }
                    i += 1;
                }
            }
        }
    }
}

/// Capacity of a transform buffer kept for the next run at most.
const TRANSFORM_KEEP_BYTES: usize = 64 << 10;

thread_local! {
    /// The transformed buffer and the one the next transform writes, kept
    /// per worker thread so that running a program with transforms (ET's
    /// `dns.query; dotprefix;` rules, per candidate transaction) allocates
    /// nothing in the steady state. A thread-local rather than a parameter
    /// because `run` is reached from the detector's shared-borrow paths;
    /// runs do not nest, so the cell is never borrowed twice.
    static TRANSFORMED: std::cell::RefCell<[Vec<u8>; 2]> = const {
        std::cell::RefCell::new([Vec::new(), Vec::new()])
    };
}

/// Why a program did not compile.
pub(crate) struct CompileError {
    pub keyword: &'static str,
    pub detail: String,
    pub unsupported: bool,
}

fn numc(n: &Num, vars: &[String]) -> Result<NumC, CompileError> {
    match n {
        Num::Lit(v) => Ok(NumC::Lit(*v)),
        Num::Var(name) => match vars.iter().position(|v| v == name) {
            Some(i) => Ok(NumC::Var(i as u8)),
            None => Err(CompileError {
                keyword: "byte_extract",
                detail: format!("unknown variable {name:?}"),
                unsupported: false,
            }),
        },
    }
}

/// Translates a PCRE expression and flags into the `regex` crate's syntax,
/// or, for backreferences and look-around, the backtracking engine's.
pub(crate) fn compile_pcre(p: &zonewatch_rules::Pcre) -> Result<PcreMatcher, CompileError> {
    let mut flags = String::new();
    if p.caseless {
        flags.push('i');
    }
    if p.dotall {
        flags.push('s');
    }
    if p.multiline {
        flags.push('m');
    }
    if p.extended {
        flags.push('x');
    }
    if p.ungreedy {
        flags.push('U');
    }
    // PCRE idioms the regex crate spells differently.
    let pat = p
        .pattern
        .replace("\\Z", "(?:\\n?\\z)")
        .replace("\\h", "[\\t ]");
    let mut full = String::new();
    if !flags.is_empty() {
        full.push_str(&format!("(?{flags})"));
    }
    if p.anchored {
        full.push_str("\\A(?:");
        full.push_str(&pat);
        full.push(')');
    } else {
        full.push_str(&pat);
    }
    let linear = regex::bytes::RegexBuilder::new(&full)
        .unicode(false)
        .size_limit(4 << 20)
        .dfa_size_limit(2 << 20)
        .build()
        .or_else(|_| {
            // Some expressions need Unicode classes to parse at all.
            regex::bytes::RegexBuilder::new(&full)
                .size_limit(4 << 20)
                .dfa_size_limit(2 << 20)
                .build()
        });
    let e = match linear {
        Ok(r) => return Ok(PcreMatcher::Linear(r)),
        Err(e) => e,
    };
    // PCRE's classes are ASCII (no UTF mode in rules): the Latin-1 text
    // must not let `\w`, `\d` or `\s` match the bytes above 0x7f.
    let ascii = ascii_classes(&full);
    let backtracking = fancy_regex::RegexBuilder::new(&ascii)
        .backtrack_limit(PCRE_BACKTRACK_LIMIT)
        .delegate_size_limit(4 << 20)
        .delegate_dfa_size_limit(2 << 20)
        .build();
    if let Ok(r) = backtracking {
        return Ok(PcreMatcher::Backtracking(r));
    }
    Err(e).map_err(|e| {
        let msg = e.to_string();
        let detail = if msg.contains("look-around") {
            "look-around".to_string()
        } else if msg.contains("backreference") {
            "backreference".to_string()
        } else if msg.contains("size limit") {
            "expression too large".to_string()
        } else {
            let last = msg.lines().last().unwrap_or("").trim().to_string();
            format!("regex: {last}")
        };
        CompileError {
            keyword: "pcre",
            detail,
            unsupported: true,
        }
    })
}

impl Program {
    /// Compiles one buffer's items. `vars` collects `byte_extract` names
    /// (shared by all buffers of a rule).
    pub(crate) fn compile(items: &[Item], vars: &mut Vec<String>) -> Result<Program, CompileError> {
        let steps = items
            .iter()
            .map(|it| Step::compile(it, vars))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Program {
            steps,
            anchored: items.iter().any(Step::is_anchored),
            fast: fast_candidate(items),
            transforms: Vec::new(),
        })
    }

    /// The fast pattern this program offers: (bytes, caseless, explicit).
    pub(crate) fn fast_pattern(&self) -> Option<(Vec<u8>, bool, bool)> {
        self.fast.clone()
    }

    /// Sets the buffer transforms (`dotprefix`, ...); unknown names are
    /// reported.
    pub(crate) fn with_transforms(mut self, names: &[String]) -> Result<Program, CompileError> {
        for n in names {
            self.transforms.push(match n.as_str() {
                "dotprefix" => Transform::DotPrefix,
                "to_lowercase" => Transform::Lower,
                "to_uppercase" => Transform::Upper,
                "strip_whitespace" => Transform::StripWhitespace,
                "compress_whitespace" => Transform::CompressWhitespace,
                "url_decode" => Transform::UrlDecode,
                other => {
                    return Err(CompileError {
                        keyword: "transform",
                        detail: other.to_string(),
                        unsupported: true,
                    })
                }
            });
        }
        // The prefilter scans the buffer before its transforms: keep only
        // what must also occur there.
        for t in &self.transforms {
            self.fast = match (t, self.fast.take()) {
                (_, None) => None,
                (Transform::DotPrefix, Some((p, n, e))) => match p.strip_prefix(b".") {
                    Some(rest) if !rest.is_empty() => Some((rest.to_vec(), n, e)),
                    Some(_) => None,
                    None => Some((p, n, e)),
                },
                (Transform::Lower | Transform::Upper, Some((p, _, e))) => Some((p, true, e)),
                _ => None,
            };
        }
        Ok(self)
    }

    /// Runs the program on `buf` (after its transforms). Returns the end of
    /// the furthest positive match of the successful path (0 when the
    /// program has none).
    pub(crate) fn run(&self, buf: &[u8], vars: &mut [i64; MAX_VARS]) -> Option<usize> {
        if self.transforms.is_empty() {
            return self.step(0, 0, &mut Run::new(buf, vars));
        }
        TRANSFORMED.with(|cell| {
            let mut bufs = cell.borrow_mut();
            let [cur, next] = &mut *bufs;
            self.transforms[0].apply_into(buf, cur);
            for t in &self.transforms[1..] {
                t.apply_into(cur, next);
                std::mem::swap(cur, next);
            }
            let end = self.step(0, 0, &mut Run::new(cur, vars));
            // A rare huge buffer (a decompressed body) is not kept.
            for b in [cur, next] {
                if b.capacity() > TRANSFORM_KEEP_BYTES {
                    *b = Vec::new();
                }
            }
            end
        })
    }

    fn next_relative(&self, i: usize) -> bool {
        self.steps.get(i + 1).is_some_and(Step::is_relative)
    }

    /// Runs steps `i..` with the previous match ending at `prev`.
    fn step(&self, i: usize, prev: usize, run: &mut Run<'_, '_>) -> Option<usize> {
        let Some(step) = self.steps.get(i) else {
            return Some(0);
        };
        if run.budget == 0 {
            return None;
        }
        run.budget -= 1;
        let next = match step {
            Step::Content(c) => return self.content(i, c, prev, run),
            Step::Pcre(p) => return self.pcre(i, p, prev, run),
            Step::Bsize(c) => c.test(run.buf.len() as u64).then_some(prev),
            Step::IsDataAt(d) => d
                .holds(run.buf.len() as i64, prev, run.vars)
                .then_some(prev),
            Step::ByteTest(t) => t.holds(run.buf, prev, run.vars)?.then_some(prev),
            Step::ByteJump(j) => j.target(run.buf, prev, run.vars),
            Step::ByteExtract(e) => e.extract(run.buf, prev, run.vars),
        };
        self.step(i + 1, next?, run)
    }

    /// Step `i`, a content: tries its occurrences in order while a later
    /// relative step fails.
    fn content(
        &self,
        i: usize,
        c: &ContentStep,
        prev: usize,
        run: &mut Run<'_, '_>,
    ) -> Option<usize> {
        let (mut start, end) = c.range(run.buf.len() as i64, prev, run.vars);
        loop {
            let found = c.find(run.buf, start, end);
            if c.negated {
                return match found {
                    Some(_) => None,
                    None => self.step(i + 1, prev, run),
                };
            }
            let at = found?;
            let new_end = at + c.len;
            if let Some(rest) = self.step(i + 1, new_end, run) {
                return Some(rest.max(new_end));
            }
            if !self.next_relative(i) || run.budget == 0 {
                return None;
            }
            start = at as i64 + 1;
        }
    }

    /// Step `i`, a pcre: tries its matches in order while a later relative
    /// step fails.
    fn pcre(&self, i: usize, p: &PcreStep, prev: usize, run: &mut Run<'_, '_>) -> Option<usize> {
        let buf = run.buf;
        let base = if p.relative { prev } else { 0 };
        let mut from = base;
        loop {
            if from > buf.len() {
                return if p.negated {
                    self.step(i + 1, prev, run)
                } else {
                    None
                };
            }
            // Relative: `^` anchors at the previous match's end.
            let m = p.re.find_at(&buf[base..], from - base);
            if p.negated {
                return match m {
                    Some(_) => None,
                    None => self.step(i + 1, prev, run),
                };
            }
            let m = m?;
            let (ms, me) = (base + m.0, base + m.1);
            if let Some(rest) = self.step(i + 1, me, run) {
                return Some(rest.max(me));
            }
            if !self.next_relative(i) || run.budget == 0 {
                return None;
            }
            from = ms + 1;
            run.budget = run.budget.saturating_sub(1);
        }
    }
}

/// The fast pattern a buffer's items offer: (bytes, caseless, marked
/// `fast_pattern`): the marked content, else the longest positive one.
fn fast_candidate(items: &[Item]) -> Option<(Vec<u8>, bool, bool)> {
    let mut fast: Option<(Vec<u8>, bool, bool)> = None;
    for it in items {
        if let Item::Content(c) = it {
            if c.negated {
                continue;
            }
            let pat = match c.fast_pattern.and_then(|f| f.chop) {
                Some((off, len)) => c.pattern[off as usize..(off + len) as usize].to_vec(),
                None => c.pattern.clone(),
            };
            let explicit = c.fast_pattern.is_some();
            if explicit {
                return Some((pat, c.nocase, true));
            }
            if fast.as_ref().is_none_or(|f| pat.len() > f.0.len()) {
                fast = Some((pat, c.nocase, false));
            }
        }
    }
    fast
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prog(rule_opts: &str) -> Program {
        let text = format!("alert tcp any any -> any any ({rule_opts} sid:1;)");
        let s = zonewatch_rules::parse_rule(
            &text,
            zonewatch_rules::Origin {
                file: "t".into(),
                line: 1,
            },
        )
        .unwrap();
        let mut vars = Vec::new();
        Program::compile(&s.buffers[0].items, &mut vars).unwrap_or_else(|e| panic!("{}", e.detail))
    }

    fn hit(p: &Program, buf: &[u8]) -> bool {
        p.run(buf, &mut [0; MAX_VARS]).is_some()
    }

    #[test]
    fn offset_depth_and_relative_windows() {
        let p = prog(r#"content:"ab"; offset:2; depth:3;"#);
        assert!(hit(&p, b"xxabx"));
        assert!(hit(&p, b"xxxab"));
        assert!(!hit(&p, b"xxxxab"));
        assert!(!hit(&p, b"abxxx"));
        let p = prog(r#"content:"a"; content:"b"; distance:1; within:2;"#);
        assert!(hit(&p, b"a_b"));
        assert!(!hit(&p, b"ab"));
        assert!(hit(&p, b"a__b"));
        assert!(!hit(&p, b"a___b"));
    }

    #[test]
    fn backtracks_over_earlier_occurrences() {
        // The first "a" is followed by no "b" within 1; the second is.
        let p = prog(r#"content:"a"; content:"b"; within:1; distance:0;"#);
        assert!(hit(&p, b"a a b ab"));
        assert!(!hit(&p, b"a a b a b"));
    }

    #[test]
    fn negation_nocase_endswith() {
        let p = prog(r#"content:"GET"; nocase; content:!"evil"; distance:0;"#);
        assert!(hit(&p, b"get /good"));
        assert!(!hit(&p, b"get /evil"));
        let p = prog(r#"content:".exe"; endswith;"#);
        assert!(hit(&p, b"a.exe.exe"));
        assert!(!hit(&p, b"a.exe "));
    }

    #[test]
    fn byte_extract_feeds_later_steps() {
        // Length byte 3, then skip that many bytes and find "Z".
        let p = prog(r#"byte_extract:1,0,len; content:"Z"; distance:len; within:1;"#);
        assert!(hit(&p, b"\x03abcZ"));
        assert!(!hit(&p, b"\x02abcZ"));
        let p = prog(r#"byte_test:2,>,0x100,0; byte_jump:1,2,relative; content:"!"; within:1;"#);
        assert!(hit(&p, b"\x02\x00\x01?!"));
        assert!(!hit(&p, b"\x02\x00\x02?!"));
    }

    /// Transforms run in order, each on the previous one's output, and the
    /// reused buffers carry nothing from one run to the next.
    #[test]
    fn transforms_chain_in_order() {
        let transforms = |names: &[&str], opts: &str| {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            prog(opts)
                .with_transforms(&names)
                .unwrap_or_else(|e| panic!("{}", e.detail))
        };
        let p = transforms(
            &["url_decode", "to_lowercase", "compress_whitespace"],
            r#"content:"/a b c"; startswith; endswith;"#,
        );
        assert!(hit(&p, b"/A%20%20B+C"));
        assert!(!hit(&p, b"/A%20B"));
        let p = transforms(&["dotprefix"], r#"content:".evil.com"; endswith;"#);
        assert!(hit(&p, b"evil.com"));
        assert!(hit(&p, b"www.evil.com"));
        assert!(!hit(&p, b"notevil.com"));
        assert!(hit(
            &p,
            &vec![b'a'; 100_000]
                .into_iter()
                .chain(*b".evil.com")
                .collect::<Vec<u8>>()
        ));
        assert!(!hit(&p, b"x"));
    }

    #[test]
    fn pcre_relative_anchors_at_previous_match() {
        let p = prog(r#"content:"user="; pcre:"/^[a-z]+\d/R";"#);
        assert!(hit(&p, b"x user=bob1"));
        assert!(!hit(&p, b"x user= bob1"));
    }

    /// Backreferences and look-around run on the backtracking engine, over
    /// raw bytes (high bytes included), with PCRE's ASCII classes.
    #[test]
    fn pcre_backreferences_and_look_around() {
        let p = prog(r#"pcre:"/(?P<q>[\x22\x27])[a-z]+(?P=q)/";"#);
        assert!(hit(&p, b"x='abc' y"));
        assert!(!hit(&p, b"x='abc\" y"));
        let p = prog(r#"pcre:"/(?<=user=)\xff[a-z]+/";"#);
        assert!(hit(&p, b"\x80\x90user=\xffbob"));
        assert!(!hit(&p, b"name=\xffbob"));
        // \w is ASCII: the Latin-1 letter 0xe9 is not a word byte.
        let p = prog(r#"pcre:"/^\w+(?=:)/";"#);
        assert!(hit(&p, b"abc:"));
        assert!(!hit(&p, b"ab\xe9:"));
        // Relative matching after a content lands on byte offsets even
        // after high bytes.
        let p = prog(r#"content:"|fe fe|"; pcre:"/^(a)\1/R"; content:"z"; distance:0;"#);
        assert!(hit(&p, b"\xfe\xfeaaz"));
        assert!(!hit(&p, b"\xfe\xfeabz"));
    }

    /// Catastrophic backtracking stops at the limit: no match, quickly.
    #[test]
    fn pcre_backtracking_is_bounded() {
        let p = prog(r#"pcre:"/^(a|aa)+(?=b)\1c/";"#);
        let hostile = vec![b'a'; 5000];
        let t = std::time::Instant::now();
        assert!(!hit(&p, &hostile));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }
}
