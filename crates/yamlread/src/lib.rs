//! Bounded YAML reading for every YAML file zonewatch loads: the configuration, anomaly
//! detector files and Sigma rules go through this one reader, so they behave the same on
//! hostile or careless input.
//!
//! - **Aliases are expanded, within a budget.** `*name` stands for a copy of the node
//!   anchored with `&name`, as YAML means it (a config's `tenant: *code` gets the value). A
//!   ~1 KB "billion laughs" file nests aliases so that the copies grow to GBs; here the nodes
//!   and scalar bytes that aliases produce are counted per document and the file is rejected
//!   once they pass [`Limits::alias_nodes`] or [`Limits::alias_bytes`], with the line of the
//!   alias that crossed the limit. Nothing is copied before it is counted.
//! - **Nesting is bounded** ([`Limits::depth`]): a few KB of `[[[[...` would otherwise make
//!   a tree too deep to drop without overflowing the stack.
//! - **Every error names its line** (1-based), syntax errors included.
//!
//! The parser (yaml-rust2) is driven one event at a time, so a rejected file stops being
//! read at the point where it went over. Two ways to consume a file: [`read`] hands the
//! events (aliases already replaced by the events of their anchor, anchors stripped) to a
//! [`Receiver`], each with its line; [`tree::parse`] builds a document as a tree that
//! keeps every node's line, scalars as written (the configuration and detector files);
//! [`tree::documents`] builds every document of a file as such a tree with its start line,
//! scalars typed exactly as `yaml_rust2::YamlLoader` types them (Sigma rules).
#![deny(missing_docs)]

use std::collections::HashMap;

pub mod tree;

pub use yaml_rust2::parser::Event;
pub use yaml_rust2::scanner::TScalarStyle;

use yaml_rust2::parser::{Parser, Tag};
use yaml_rust2::Yaml;

/// Bounds on what one document may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Nodes (scalars, sequences, mappings) that aliases may produce per document.
    pub alias_nodes: usize,
    /// Bytes of scalar text that aliases may produce per document.
    pub alias_bytes: usize,
    /// Deepest nesting of sequences and mappings.
    pub depth: usize,
}

/// The limits every zonewatch loader uses: aliases may add 10,000 nodes and 1 MiB of text
/// to a document (configuration and rule files use a handful, if any), nesting 128 levels
/// (Sigma rules and Suricata configurations use fewer than 10).
pub const LIMITS: Limits = Limits {
    alias_nodes: 10_000,
    alias_bytes: 1 << 20,
    depth: 128,
};

impl Default for Limits {
    fn default() -> Self {
        LIMITS
    }
}

/// A file that could not be read: the 1-based line and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// 1-based line.
    pub line: usize,
    /// What is wrong, e.g. `YAML syntax error: ...` or `YAML alias *a ...`.
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for Error {}

/// Takes the events of a file. Aliases never reach a receiver: it gets the events of the
/// anchored node again, each with the alias's line. Anchor ids are 0. `StreamStart`,
/// `StreamEnd` and `Nothing` are not passed on.
pub trait Receiver {
    /// One event and the 1-based line it comes from. An error stops the reading.
    fn event(&mut self, ev: Event, line: usize) -> Result<(), Error>;
}

impl<F: FnMut(Event, usize) -> Result<(), Error>> Receiver for F {
    fn event(&mut self, ev: Event, line: usize) -> Result<(), Error> {
        self(ev, line)
    }
}

/// Per-document alias bookkeeping.
struct Expander<'t> {
    text: &'t str,
    limits: Limits,
    depth: usize,
    /// Events from the document's first anchor on (aliases expanded), so that an anchor is
    /// a range of it; nothing is kept for documents without anchors.
    log: Vec<(Event, usize)>,
    logging: bool,
    /// Anchored containers still open: (anchor id, depth, start in `log`).
    open: Vec<(usize, usize, usize)>,
    /// Complete anchors: id -> range of `log`.
    anchors: HashMap<usize, (usize, usize)>,
    alias_nodes: usize,
    alias_bytes: usize,
}

impl<'t> Expander<'t> {
    fn new(text: &'t str, limits: Limits) -> Self {
        Expander {
            text,
            limits,
            depth: 0,
            log: Vec::new(),
            logging: false,
            open: Vec::new(),
            anchors: HashMap::new(),
            alias_nodes: 0,
            alias_bytes: 0,
        }
    }

    fn new_document(&mut self) {
        self.depth = 0;
        self.log.clear();
        self.logging = false;
        self.open.clear();
        self.anchors.clear();
        self.alias_nodes = 0;
        self.alias_bytes = 0;
    }

    fn emit<R: Receiver>(&mut self, ev: Event, line: usize, recv: &mut R) -> Result<(), Error> {
        if self.logging {
            self.log.push((ev.clone(), line));
        }
        recv.event(ev, line)
    }

    fn deeper(&mut self, line: usize) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > self.limits.depth {
            return Err(Error {
                line,
                message: format!(
                    "YAML nested deeper than {} levels; refused",
                    self.limits.depth
                ),
            });
        }
        Ok(())
    }

    /// A node event from the parser (not an alias).
    fn node<R: Receiver>(&mut self, ev: Event, line: usize, recv: &mut R) -> Result<(), Error> {
        let container: fn(usize, Option<Tag>) -> Event = match ev {
            Event::SequenceStart(..) => Event::SequenceStart,
            _ => Event::MappingStart,
        };
        match ev {
            Event::Scalar(v, style, aid, tag) => {
                let start = self.start_anchor(aid);
                self.emit(Event::Scalar(v, style, 0, tag), line, recv)?;
                if aid > 0 {
                    self.anchors.insert(aid, (start, self.log.len()));
                }
            }
            Event::SequenceStart(aid, tag) | Event::MappingStart(aid, tag) => {
                self.deeper(line)?;
                let start = self.start_anchor(aid);
                if aid > 0 {
                    self.open.push((aid, self.depth, start));
                }
                self.emit(container(0, tag), line, recv)?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.emit(ev, line, recv)?;
                if let Some(&(aid, d, start)) = self.open.last() {
                    if d == self.depth {
                        self.open.pop();
                        self.anchors.insert(aid, (start, self.log.len()));
                    }
                }
                self.depth = self.depth.saturating_sub(1);
            }
            other => self.emit(other, line, recv)?,
        }
        Ok(())
    }

    fn start_anchor(&mut self, aid: usize) -> usize {
        if aid > 0 {
            self.logging = true;
        }
        self.log.len()
    }

    /// The alias's text (`*name`) at `line`/`col`, for messages.
    fn alias_name(&self, line: usize, col: usize) -> String {
        let name: String = self
            .text
            .lines()
            .nth(line.saturating_sub(1))
            .map(|l| {
                l.chars()
                    .skip(col)
                    .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
                    .take(64)
                    .collect()
            })
            .unwrap_or_default();
        if name.starts_with('*') {
            name
        } else {
            "an alias".to_string()
        }
    }

    fn alias<R: Receiver>(
        &mut self,
        id: usize,
        line: usize,
        col: usize,
        recv: &mut R,
    ) -> Result<(), Error> {
        let Some(&(start, end)) = self.anchors.get(&id) else {
            let what = if self.open.iter().any(|o| o.0 == id) {
                "refers to a node that contains it (a recursive alias)"
            } else {
                "refers to an anchor of another document"
            };
            return Err(Error {
                line,
                message: format!("YAML alias {} {what}", self.alias_name(line, col)),
            });
        };
        for i in start..end {
            let ev = self.log[i].0.clone();
            match &ev {
                Event::Scalar(v, ..) => {
                    self.alias_nodes += 1;
                    self.alias_bytes += v.len();
                }
                Event::SequenceStart(..) | Event::MappingStart(..) => {
                    self.alias_nodes += 1;
                    self.deeper(line)?;
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    self.depth = self.depth.saturating_sub(1);
                }
                _ => {}
            }
            if self.alias_nodes > self.limits.alias_nodes
                || self.alias_bytes > self.limits.alias_bytes
            {
                return Err(Error {
                    line,
                    message: format!(
                        "YAML alias {} expands the document beyond {} nodes or {} bytes made by aliases; refused (an alias bomb?)",
                        self.alias_name(line, col),
                        self.limits.alias_nodes,
                        self.limits.alias_bytes
                    ),
                });
            }
            self.emit(ev, line, recv)?;
        }
        Ok(())
    }
}

/// Reads `text`, handing every event to `recv` with aliases expanded within `limits`.
pub fn read<R: Receiver>(text: &str, limits: &Limits, recv: &mut R) -> Result<(), Error> {
    let mut parser = Parser::new_from_str(text);
    let mut x = Expander::new(text, *limits);
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| Error {
            line: e.marker().line().max(1),
            message: format!("YAML syntax error: {}", e.info()),
        })?;
        let line = mark.line().max(1);
        match ev {
            Event::StreamEnd => return Ok(()),
            Event::StreamStart | Event::Nothing => {}
            Event::DocumentStart => {
                x.new_document();
                recv.event(ev, line)?;
            }
            Event::DocumentEnd => recv.event(ev, line)?,
            Event::Alias(id) => x.alias(id, line, mark.col(), recv)?,
            ev => x.node(ev, line, recv)?,
        }
    }
}

fn parse_f64(v: &str) -> Option<f64> {
    match v {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
        _ if v.as_bytes().iter().any(u8::is_ascii_digit) => v.parse::<f64>().ok(),
        _ => None,
    }
}

/// The value of a scalar as `YamlLoader` resolves it (style, core-schema tags, plain
/// scalars by their text): what [`tree::Scalar`] is made from.
pub(crate) fn scalar_value(v: String, style: TScalarStyle, tag: Option<&Tag>) -> Yaml {
    if style != TScalarStyle::Plain {
        return Yaml::String(v);
    }
    match tag {
        Some(Tag { handle, suffix }) if handle == "tag:yaml.org,2002:" => match suffix.as_str() {
            "bool" => match v.as_str() {
                "true" | "True" | "TRUE" => Yaml::Boolean(true),
                "false" | "False" | "FALSE" => Yaml::Boolean(false),
                _ => Yaml::BadValue,
            },
            "int" => v.parse::<i64>().map_or(Yaml::BadValue, Yaml::Integer),
            "float" => match parse_f64(&v) {
                Some(_) => Yaml::Real(v),
                None => Yaml::BadValue,
            },
            "null" => match v.as_str() {
                "~" | "null" => Yaml::Null,
                _ => Yaml::BadValue,
            },
            _ => Yaml::String(v),
        },
        Some(_) => Yaml::String(v),
        None => Yaml::from_str(&v),
    }
}

/// The largest YAML file a loader reads (configuration and detector files; Sigma rule files
/// have their own, smaller limit).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads a YAML file of at most [`MAX_FILE_BYTES`], never more than the limit plus one
/// byte: a device such as `/dev/zero` given as a file is refused instead of read forever.
/// Pipes work (`--config <(envsubst < tpl.yaml)`).
pub fn read_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {} MiB", MAX_FILE_BYTES >> 20),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests;
