//! The grammar shared by address and port groups, as Suricata reads rule
//! headers and `vars`:
//!
//! ```text
//! group   := item
//! item    := '!'* primary
//! primary := 'any' | '$' NAME | VALUE | '[' item (',' item)* ']'
//! ```
//!
//! A list is the union of its plain items minus the union of its negated
//! items; a list of negated items only is "everything except" them (so
//! `[!80,!443]` is every port but 80 and 443). A negated group at top level
//! is its complement. The result must not be empty (`!any` is an error, as in
//! Suricata). Whitespace is allowed between tokens.

use std::fmt;

/// Nesting depth of `[` lists accepted before the input is rejected.
pub const MAX_DEPTH: usize = 64;

/// Longest token copied into an error.
const MAX_TOKEN_IN_ERROR: usize = 64;

/// Set algebra needed by the group parser.
pub(crate) trait GroupSet: Clone {
    fn full() -> Self;
    fn is_empty(&self) -> bool;
    fn complement(&self) -> Self;
    fn difference(&self, other: &Self) -> Self;
    /// Union of many sets at once (one sort instead of n merges).
    fn union_all(sets: Vec<Self>) -> Self;
}

/// Why a variable reference could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VarRefError {
    Unknown,
    Cycle,
    Invalid,
    TooDeep,
}

/// What went wrong in a group expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupErrorKind {
    /// The input is empty or blank.
    Empty,
    /// The input ended where something else was expected.
    UnexpectedEnd {
        /// What was expected.
        expected: &'static str,
    },
    /// A character or token that cannot appear here.
    Unexpected {
        /// What was expected.
        expected: &'static str,
    },
    /// A token that is not a valid value (message says why).
    BadValue(String),
    /// `$NAME` names no variable of this kind.
    UnknownVar(String),
    /// `$NAME` refers (directly or through other variables) back to itself.
    VarCycle(String),
    /// `$NAME` exists but its own value is invalid.
    InvalidVar(String),
    /// Lists (or variables referring to variables) nested deeper than
    /// [`MAX_DEPTH`].
    TooDeep,
    /// The group matches nothing (e.g. `!any`, `[1.2.3.4,!1.2.3.4]`).
    MatchesNothing,
}

impl fmt::Display for GroupErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupErrorKind::Empty => write!(f, "empty group"),
            GroupErrorKind::UnexpectedEnd { expected } => {
                write!(f, "unexpected end of input, expected {expected}")
            }
            GroupErrorKind::Unexpected { expected } => write!(f, "expected {expected}"),
            GroupErrorKind::BadValue(m) => write!(f, "{m}"),
            GroupErrorKind::UnknownVar(n) => write!(f, "unknown variable ${n}"),
            GroupErrorKind::VarCycle(n) => write!(f, "variable ${n} refers to itself"),
            GroupErrorKind::InvalidVar(n) => write!(f, "variable ${n} has an invalid value"),
            GroupErrorKind::TooDeep => {
                write!(f, "lists or variables nested deeper than {MAX_DEPTH}")
            }
            GroupErrorKind::MatchesNothing => write!(f, "group matches nothing"),
        }
    }
}

/// A group expression error: what, where (1-based byte column in the
/// parsed string) and the offending token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at column {column} (`{token}`)")]
pub struct GroupError {
    /// What went wrong.
    pub kind: GroupErrorKind,
    /// 1-based byte column of the offending token in the parsed string.
    pub column: usize,
    /// The offending token (truncated to 64 bytes).
    pub token: String,
}

fn clip(s: &str) -> String {
    if s.len() <= MAX_TOKEN_IN_ERROR {
        return s.to_string();
    }
    let mut end = MAX_TOKEN_IN_ERROR;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn is_delim(b: u8) -> bool {
    matches!(b, b'[' | b']' | b',' | b'!') || b.is_ascii_whitespace()
}

fn valid_var_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 256
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

struct Parser<'a, S, A, V> {
    s: &'a str,
    pos: usize,
    depth: usize,
    atom: A,
    var: V,
    _set: std::marker::PhantomData<S>,
}

/// Parses a group expression. `atom` turns a value token into a set (or an
/// error message); `var` resolves a variable name (without `$`).
pub(crate) fn parse_group<S, A, V>(s: &str, atom: A, var: V) -> Result<S, GroupError>
where
    S: GroupSet,
    A: FnMut(&str) -> Result<S, String>,
    V: FnMut(&str) -> Result<S, VarRefError>,
{
    let mut p = Parser {
        s,
        pos: 0,
        depth: 0,
        atom,
        var,
        _set: std::marker::PhantomData,
    };
    p.skip_ws();
    if p.pos >= s.len() {
        return Err(GroupError {
            kind: GroupErrorKind::Empty,
            column: 1,
            token: String::new(),
        });
    }
    let start = p.pos;
    let (neg, set) = p.item()?;
    p.skip_ws();
    if p.pos < s.len() {
        return Err(p.err_here(GroupErrorKind::Unexpected {
            expected: "end of group",
        }));
    }
    let set = if neg { set.complement() } else { set };
    if set.is_empty() {
        return Err(GroupError {
            kind: GroupErrorKind::MatchesNothing,
            column: start + 1,
            token: clip(s[start..].trim_end()),
        });
    }
    Ok(set)
}

impl<S, A, V> Parser<'_, S, A, V>
where
    S: GroupSet,
    A: FnMut(&str) -> Result<S, String>,
    V: FnMut(&str) -> Result<S, VarRefError>,
{
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Error at the current position; the token is the current character.
    fn err_here(&self, kind: GroupErrorKind) -> GroupError {
        let rest = &self.s[self.pos..];
        let token = rest.chars().next().map(String::from).unwrap_or_default();
        GroupError {
            kind,
            column: self.pos + 1,
            token,
        }
    }

    /// `'!'* primary`: returns (negated, set without the negation).
    fn item(&mut self) -> Result<(bool, S), GroupError> {
        self.skip_ws();
        let mut neg = false;
        while self.peek() == Some(b'!') {
            neg = !neg;
            self.pos += 1;
            self.skip_ws();
        }
        let set = self.primary()?;
        Ok((neg, set))
    }

    fn primary(&mut self) -> Result<S, GroupError> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.err_here(GroupErrorKind::UnexpectedEnd {
                expected: "a value, `$VAR` or `[`",
            })),
            Some(b'[') => {
                self.pos += 1;
                self.list()
            }
            Some(b']') | Some(b',') => Err(self.err_here(GroupErrorKind::Unexpected {
                expected: "a value, `$VAR` or `[`",
            })),
            Some(_) => {
                let start = self.pos;
                while self.peek().is_some_and(|b| !is_delim(b)) {
                    self.pos += 1;
                }
                // Delimiters are ASCII, so both ends are char boundaries.
                let tok = &self.s[start..self.pos];
                let err = |kind| GroupError {
                    kind,
                    column: start + 1,
                    token: clip(tok),
                };
                if tok.eq_ignore_ascii_case("any") {
                    return Ok(S::full());
                }
                if let Some(name) = tok.strip_prefix('$') {
                    if !valid_var_name(name) {
                        return Err(err(GroupErrorKind::BadValue(
                            "invalid variable name".to_string(),
                        )));
                    }
                    return (self.var)(name).map_err(|e| {
                        err(match e {
                            VarRefError::Unknown => GroupErrorKind::UnknownVar(name.to_string()),
                            VarRefError::Cycle => GroupErrorKind::VarCycle(name.to_string()),
                            VarRefError::Invalid => GroupErrorKind::InvalidVar(name.to_string()),
                            VarRefError::TooDeep => GroupErrorKind::TooDeep,
                        })
                    });
                }
                (self.atom)(tok).map_err(|m| err(GroupErrorKind::BadValue(m)))
            }
        }
    }

    /// After `[`.
    fn list(&mut self) -> Result<S, GroupError> {
        if self.depth >= MAX_DEPTH {
            return Err(GroupError {
                kind: GroupErrorKind::TooDeep,
                column: self.pos,
                token: "[".to_string(),
            });
        }
        self.depth += 1;
        let mut plus = Vec::new();
        let mut minus = Vec::new();
        loop {
            let (neg, set) = self.item()?;
            if neg {
                minus.push(set);
            } else {
                plus.push(set);
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                None => {
                    return Err(self.err_here(GroupErrorKind::UnexpectedEnd {
                        expected: "`,` or `]`",
                    }))
                }
                Some(_) => {
                    return Err(self.err_here(GroupErrorKind::Unexpected {
                        expected: "`,` or `]`",
                    }))
                }
            }
        }
        self.depth -= 1;
        let base = if plus.is_empty() {
            S::full()
        } else {
            S::union_all(plus)
        };
        if minus.is_empty() {
            Ok(base)
        } else {
            Ok(base.difference(&S::union_all(minus)))
        }
    }
}
