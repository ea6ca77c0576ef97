//! Parsing of Suricata/Snort signature files into syntax trees that keep
//! their positions (file, line, column), so every problem can be reported
//! where the analyst wrote it.
//!
//! Contract:
//! - [`parse_file`] never fails as a whole: every rule that parses is
//!   returned, every rule that does not becomes a [`RuleError`] naming file,
//!   line, column (syntax errors) or the keyword (unsupported features), and
//!   the sid when it could be read.
//! - Parsing is purely syntactic plus the typed decoding of keyword values
//!   (content strings, byte_test arguments, flags, ...). Variables, address
//!   groups and the meaning of buffers are resolved by the detection engine.
//! - Arbitrary bytes never panic; sizes are bounded by the input.
#![deny(missing_docs)]

mod keywords;
pub mod lint;
mod text;

pub use keywords::*;
pub use lint::{Lint, LintCode, Linter};
pub use text::{split_rules, RawRule};

use std::fmt;
use std::sync::Arc;

/// What to do when a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Stop inspecting the packet (and its flow); suppresses other alerts.
    Pass,
    /// Drop (IPS); in IDS mode an alert.
    Drop,
    /// Reject (IPS); in IDS mode an alert.
    Reject,
    /// Raise an alert.
    Alert,
}

impl Action {
    /// The action's name as written in rules.
    pub fn name(self) -> &'static str {
        match self {
            Action::Pass => "pass",
            Action::Drop => "drop",
            Action::Reject => "reject",
            Action::Alert => "alert",
        }
    }
}

/// Where a rule came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// File name (or a label for rules given inline).
    pub file: Arc<str>,
    /// 1-based line of the rule's first line.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The rule header: `action proto src sport -> dst dport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Action.
    pub action: Action,
    /// The action word as written (`reject`, `rejectsrc`, ...).
    pub action_word: String,
    /// Protocol word as written (lowercased): `tcp`, `ip`, `http`, ...
    pub proto: String,
    /// Source address expression, unresolved (`$HOME_NET`, `[1.2.3.4,!5.6.7.8]`).
    pub src: String,
    /// Source port expression.
    pub sport: String,
    /// `<>`: the rule matches both directions.
    pub bidirectional: bool,
    /// Destination address expression.
    pub dst: String,
    /// Destination port expression.
    pub dport: String,
}

/// Why a rule was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text does not parse: what was expected.
    Syntax(String),
    /// A keyword, protocol or option value zonewatch does not support (yet);
    /// the rule is skipped.
    Unsupported {
        /// The keyword (or `protocol`, `action`).
        keyword: String,
        /// Detail.
        detail: String,
    },
    /// A value that parses but is invalid (e.g. a negative depth).
    Invalid(String),
}

/// A rule that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleError {
    /// Where.
    pub origin: Origin,
    /// 1-based column on the rule's (joined) text.
    pub column: usize,
    /// The rule's sid, when it could be read.
    pub sid: Option<u64>,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl RuleError {
    /// A short reason for statistics ("unsupported keyword lua").
    pub fn reason(&self) -> String {
        match &self.kind {
            ErrorKind::Syntax(_) => "syntax error".into(),
            ErrorKind::Unsupported { keyword, .. } => format!("unsupported: {keyword}"),
            ErrorKind::Invalid(_) => "invalid value".into(),
        }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.origin, self.column)?;
        if let Some(sid) = self.sid {
            write!(f, " sid {sid}")?;
        }
        match &self.kind {
            ErrorKind::Syntax(m) => write!(f, ": syntax error: {m}"),
            ErrorKind::Unsupported { keyword, detail } => {
                write!(f, ": unsupported {keyword}")?;
                if !detail.is_empty() {
                    write!(f, " ({detail})")?;
                }
                Ok(())
            }
            ErrorKind::Invalid(m) => write!(f, ": invalid: {m}"),
        }
    }
}

/// Parses every rule of a file's text. `file` labels the origin.
pub fn parse_file(text: &str, file: &str) -> (Vec<Signature>, Vec<RuleError>) {
    let file: Arc<str> = Arc::from(file);
    let mut sigs = Vec::new();
    let mut errs = Vec::new();
    for raw in split_rules(text) {
        match parse_rule(
            &raw.text,
            Origin {
                file: file.clone(),
                line: raw.line,
            },
        ) {
            Ok(s) => sigs.push(s),
            Err(e) => errs.push(*e),
        }
    }
    (sigs, errs)
}

/// Parses one rule (already joined onto one line).
pub fn parse_rule(text: &str, origin: Origin) -> Result<Signature, Box<RuleError>> {
    let err = |column: usize, sid: Option<u64>, kind: ErrorKind| {
        Box::new(RuleError {
            origin: origin.clone(),
            column,
            sid,
            kind,
        })
    };
    let open = match text.find('(') {
        Some(i) => i,
        None => {
            return Err(err(
                text.len() + 1,
                None,
                ErrorKind::Syntax("'(' opening the rule options".into()),
            ))
        }
    };
    let head = &text[..open];
    let (header, header_err) = parse_header(head);
    let body_end = match text.rfind(')') {
        Some(i) if i > open => i,
        _ => {
            return Err(err(
                text.len() + 1,
                None,
                ErrorKind::Syntax("')' closing the rule options".into()),
            ))
        }
    };
    if !text[body_end + 1..].trim().is_empty() {
        return Err(err(
            body_end + 2,
            None,
            ErrorKind::Syntax("end of rule after ')'".into()),
        ));
    }
    let opts = match text::split_options(&text[open + 1..body_end], open + 1) {
        Ok(o) => o,
        Err((col, m)) => return Err(err(col + 1, None, ErrorKind::Syntax(m))),
    };
    // The sid first, so every later error can name it.
    let sid = opts
        .iter()
        .find(|o| o.name == "sid")
        .and_then(|o| o.value.as_deref())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let header = match (header, header_err) {
        (Some(h), _) => h,
        (None, Some((col, kind))) => return Err(err(col + 1, sid, kind)),
        (None, None) => unreachable!("parse_header returns a header or an error"),
    };
    keywords::build(header, &opts, origin.clone(), sid)
        .map_err(|(col, kind)| err(col + 1, sid, kind))
}

type HeaderResult = (Option<Header>, Option<(usize, ErrorKind)>);

fn parse_header(head: &str) -> HeaderResult {
    // Tokens with their byte columns; bracketed lists may hold spaces.
    let mut toks: Vec<(usize, String)> = Vec::new();
    let b = head.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut depth = 0i32;
        while i < b.len() && (depth > 0 || !b[i].is_ascii_whitespace()) {
            match b[i] {
                b'[' => depth += 1,
                b']' => depth -= 1,
                _ => {}
            }
            i += 1;
        }
        let tok: String = head[start..i]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        toks.push((start, tok));
    }
    let expect = |n: usize, what: &str| -> HeaderResult {
        let col = toks.get(n).map(|t| t.0).unwrap_or(head.len());
        (None, Some((col, ErrorKind::Syntax(what.to_string()))))
    };
    if toks.is_empty() {
        return expect(0, "an action (alert, pass, drop, reject)");
    }
    let action_word = toks[0].1.to_ascii_lowercase();
    let action = match action_word.as_str() {
        "alert" => Action::Alert,
        "pass" => Action::Pass,
        "drop" => Action::Drop,
        "reject" | "rejectsrc" | "rejectdst" | "rejectboth" => Action::Reject,
        "sdrop" | "log" | "config" => {
            return (
                None,
                Some((
                    toks[0].0,
                    ErrorKind::Unsupported {
                        keyword: "action".into(),
                        detail: action_word,
                    },
                )),
            )
        }
        _ => return expect(0, "an action (alert, pass, drop, reject)"),
    };
    if toks.len() >= 5 && !matches!(toks[4].1.as_str(), "->" | "<>" | "<-") {
        return expect(4, "a direction (-> or <>)");
    }
    if toks.len() < 7 {
        let what = [
            "",
            "a protocol",
            "a source address",
            "a source port",
            "a direction (-> or <>)",
            "a destination address",
            "a destination port",
        ];
        return expect(toks.len(), what[toks.len().min(6)]);
    }
    if toks.len() > 7 {
        return expect(7, "'(' after the destination port");
    }
    let bidirectional = match toks[4].1.as_str() {
        "->" => false,
        "<>" => true,
        "<-" => {
            return (
                None,
                Some((
                    toks[4].0,
                    ErrorKind::Syntax("'->' or '<>' ('<-' is not valid)".into()),
                )),
            )
        }
        _ => return expect(4, "a direction (-> or <>)"),
    };
    (
        Some(Header {
            action,
            action_word,
            proto: toks[1].1.to_ascii_lowercase(),
            src: toks[2].1.clone(),
            sport: toks[3].1.clone(),
            bidirectional,
            dst: toks[5].1.clone(),
            dport: toks[6].1.clone(),
        }),
        None,
    )
}

#[cfg(test)]
mod tests;
