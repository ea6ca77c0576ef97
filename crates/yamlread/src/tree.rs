//! A YAML document as a tree that keeps line numbers, so every later error (an unknown
//! key, a bad value) can name its line. Two kinds of scalar, one tree:
//!
//! - `Node<String>` (the default; [`parse`]): scalars kept as written (`~`, `null` and
//!   empty give an empty string), what they mean is up to the reader of each key. The
//!   configuration and the detector files.
//! - `Node<Scalar>` ([`documents`]): scalars typed as YAML's core schema reads them, by
//!   their style and tag (`1` is an integer, `'1'` a string, `null`/`~`/empty null, `true`
//!   a boolean), exactly as yaml-rust2's `YamlLoader` types them; every document of the
//!   file with its start line; a key repeated in a mapping is an error. Sigma rules.

use crate::{Error, Event, Receiver, TScalarStyle};
use yaml_rust2::parser::Tag;

/// A YAML node and the line it starts on (1-based; 0 for a node that came from the
/// command line).
#[derive(Debug, Clone, PartialEq)]
pub struct Node<S = String> {
    /// 1-based line.
    pub line: usize,
    /// The value.
    pub kind: Kind<S>,
}

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind<S = String> {
    /// A scalar (as written for `String`; `~`/empty give an empty string).
    Scalar(S),
    /// A sequence.
    Seq(Vec<Node<S>>),
    /// A mapping, in file order, each key with its line.
    Map(Vec<(S, usize, Node<S>)>),
}

/// A scalar typed by YAML's core schema, as yaml-rust2's `YamlLoader` types it: a quoted or
/// block scalar is a string; a plain one is null (`~`, `null`, empty), a boolean
/// (`true`/`True`/`TRUE`, `false`...), an integer (decimal, `0x`, `0o`, `+`), a real (kept
/// as written) or else a string; `!!int`, `!!float`, `!!bool`, `!!null` and `!!str` tags
/// apply (a value that does not fit its tag is [`Scalar::Bad`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// `null`, `~`, empty.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A real number as written.
    Real(String),
    /// A string.
    Str(String),
    /// A value that does not fit its tag (`!!int x`), or a mapping key that is not a scalar.
    Bad,
}

impl Scalar {
    /// The value as text: strings and reals as written, integers and booleans in their
    /// canonical form (`0x10` gives `16`); `None` for null and bad values.
    pub fn text(&self) -> Option<String> {
        match self {
            Scalar::Str(s) | Scalar::Real(s) => Some(s.clone()),
            Scalar::Int(i) => Some(i.to_string()),
            Scalar::Bool(b) => Some(b.to_string()),
            Scalar::Null | Scalar::Bad => None,
        }
    }
}

/// How a tree keeps its scalars: `String` (as written) or [`Scalar`] (typed).
pub trait ScalarRepr: Sized + std::fmt::Debug {
    /// A scalar event's value.
    fn from_event(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Self;
    /// A mapping key that is a sequence or a mapping.
    fn container_key() -> Self;
    /// Whether `a`, a key of a mapping, repeats `b` (an error for typed trees).
    fn repeats(a: &Self, b: &Self) -> bool;
}

impl ScalarRepr for String {
    fn from_event(text: String, _: TScalarStyle, _: Option<&Tag>) -> Self {
        if text == "~" || text == "null" {
            String::new()
        } else {
            text
        }
    }
    fn container_key() -> Self {
        String::new()
    }
    fn repeats(_: &Self, _: &Self) -> bool {
        false
    }
}

impl ScalarRepr for Scalar {
    fn from_event(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Self {
        use yaml_rust2::Yaml;
        match crate::scalar_value(text, style, tag) {
            Yaml::Null => Scalar::Null,
            Yaml::Boolean(b) => Scalar::Bool(b),
            Yaml::Integer(i) => Scalar::Int(i),
            Yaml::Real(s) => Scalar::Real(s),
            Yaml::String(s) => Scalar::Str(s),
            _ => Scalar::Bad,
        }
    }
    fn container_key() -> Self {
        Scalar::Bad
    }
    /// Keys compare by type and value (`1` and `'1'` differ); keys that are not scalars are
    /// not compared.
    fn repeats(a: &Self, b: &Self) -> bool {
        a == b && *a != Scalar::Bad
    }
}

impl Node<Scalar> {
    /// The value under the string key `key`, with the key's line, when this is a mapping.
    pub fn entry(&self, key: &str) -> Option<(usize, &Node<Scalar>)> {
        match &self.kind {
            Kind::Map(e) => e
                .iter()
                .find(|(k, _, _)| matches!(k, Scalar::Str(s) if s == key))
                .map(|(_, l, n)| (*l, n)),
            _ => None,
        }
    }

    /// The value under the string key `key`, when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node<Scalar>> {
        self.entry(key).map(|(_, n)| n)
    }

    /// The scalar, when this is one.
    pub fn scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The scalar as text ([`Scalar::text`]); `None` for null, bad values and containers.
    pub fn text(&self) -> Option<String> {
        self.scalar().and_then(Scalar::text)
    }
}

impl Node {
    /// The value under `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(e) => e.iter().find(|(k, _, _)| k == key).map(|(_, _, n)| n),
            _ => None,
        }
    }

    /// The scalar text, when this is a scalar.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// Sets `value` at `path` below this node (a mapping), making the mappings on the way
    /// (a scalar or sequence on the way is replaced by a mapping), replacing what was at
    /// `path`: how a command-line override (`--set a.b=c`) lands in a file's tree. `line`
    /// is the line given to the keys made.
    pub fn set_path(&mut self, path: &[&str], value: Node, line: usize) {
        let Some((first, rest)) = path.split_first() else {
            *self = value;
            return;
        };
        if !matches!(self.kind, Kind::Map(_)) {
            self.kind = Kind::Map(Vec::new());
        }
        let Kind::Map(entries) = &mut self.kind else {
            unreachable!("made a mapping above")
        };
        let at = match entries.iter().position(|(k, _, _)| k == first) {
            Some(i) => i,
            None => {
                entries.push((
                    first.to_string(),
                    line,
                    Node {
                        line,
                        kind: Kind::Map(Vec::new()),
                    },
                ));
                entries.len() - 1
            }
        };
        entries[at].2.set_path(rest, value, line);
    }
}

impl Node {
    /// Lays `other` over this node: mappings merge key by key (recursively), anything else
    /// is replaced by `other`'s value. How a second file or an override lands on a section.
    pub fn merge(&mut self, other: &Node) {
        let (Kind::Map(mine), Kind::Map(theirs)) = (&mut self.kind, &other.kind) else {
            *self = other.clone();
            return;
        };
        for (k, line, n) in theirs {
            match mine.iter_mut().find(|(mk, _, _)| mk == k) {
                Some((_, _, m)) => m.merge(n),
                None => mine.push((k.clone(), *line, n.clone())),
            }
        }
    }

    /// Whether any scalar or sequence lies below this node (an empty mapping has none).
    pub fn has_values(&self) -> bool {
        match &self.kind {
            Kind::Map(e) => e.iter().any(|(_, _, n)| n.has_values()),
            _ => true,
        }
    }
}

enum Open<S> {
    Seq(usize, Vec<Node<S>>),
    Map(usize, Vec<(S, usize, Node<S>)>, Option<(S, usize)>),
}

struct Builder<S> {
    stack: Vec<Open<S>>,
    root: Option<Node<S>>,
}

impl<S> Default for Builder<S> {
    fn default() -> Self {
        Builder {
            stack: Vec::new(),
            root: None,
        }
    }
}

impl<S: ScalarRepr> Builder<S> {
    fn put(&mut self, node: Node<S>) -> Result<(), Error> {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Open::Seq(_, items)) => items.push(node),
            Some(Open::Map(_, entries, key)) => match key.take() {
                None => {
                    let k = match node.kind {
                        Kind::Scalar(s) => s,
                        _ => S::container_key(),
                    };
                    *key = Some((k, node.line));
                }
                Some((k, l)) => {
                    if entries.iter().any(|(e, _, _)| S::repeats(&k, e)) {
                        return Err(Error {
                            line: l,
                            message: format!("YAML syntax error: {k:?}: duplicated key in mapping"),
                        });
                    }
                    entries.push((k, l, node));
                }
            },
        }
        Ok(())
    }
}

impl<S: ScalarRepr> Receiver for Builder<S> {
    fn event(&mut self, ev: Event, line: usize) -> Result<(), Error> {
        match ev {
            Event::Scalar(s, style, _, tag) => self.put(Node {
                line,
                kind: Kind::Scalar(S::from_event(s, style, tag.as_ref())),
            })?,
            Event::SequenceStart(..) => self.stack.push(Open::Seq(line, Vec::new())),
            Event::MappingStart(..) => self.stack.push(Open::Map(line, Vec::new(), None)),
            Event::SequenceEnd => {
                if let Some(Open::Seq(l, items)) = self.stack.pop() {
                    self.put(Node {
                        line: l,
                        kind: Kind::Seq(items),
                    })?;
                }
            }
            Event::MappingEnd => {
                if let Some(Open::Map(l, entries, _)) = self.stack.pop() {
                    self.put(Node {
                        line: l,
                        kind: Kind::Map(entries),
                    })?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Parses the first document of YAML text into a tree (`None` for an empty file), with
/// [`crate::LIMITS`].
pub fn parse(text: &str) -> Result<Option<Node>, Error> {
    let mut b = Builder::<String>::default();
    let mut docs = 0;
    crate::read(text, &crate::LIMITS, &mut |ev, line| {
        if ev == Event::DocumentStart {
            docs += 1;
        }
        if docs <= 1 {
            b.event(ev, line)?;
        }
        Ok(())
    })?;
    Ok(b.root)
}

/// One document of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document<S = Scalar> {
    /// 1-based line where the document starts: its `---`, or its first node when it has
    /// no `---`.
    pub line: usize,
    /// The document's node (an empty document, `---` followed by nothing, is a null
    /// scalar, as `YamlLoader` has it; `None` only if the parser gave no node).
    pub root: Option<Node<S>>,
}

/// Every document of YAML text as a typed tree ([`Scalar`]), aliases expanded within
/// `limits`. A file without content (empty, only comments) has no document. Errors (syntax,
/// limits, a key repeated in a mapping) name their line; the whole file is refused.
pub fn documents(text: &str, limits: &crate::Limits) -> Result<Vec<Document>, Error> {
    let mut docs = Vec::new();
    let mut b = Builder::<Scalar>::default();
    let mut start = 1;
    crate::read(text, limits, &mut |ev, line| {
        match ev {
            Event::DocumentStart => {
                start = line;
                b = Builder::default();
            }
            Event::DocumentEnd => docs.push(Document {
                line: start,
                root: b.root.take(),
            }),
            ev => b.event(ev, line)?,
        }
        Ok(())
    })?;
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_path_makes_and_replaces() {
        let mut t = parse("kafka:\n  brokers: a\n  spool:\n    dir: /x\n")
            .unwrap()
            .unwrap();
        let scalar = |s: &str| Node {
            line: 0,
            kind: Kind::Scalar(s.into()),
        };
        t.set_path(&["kafka", "spool", "dir"], scalar("/y"), 0);
        t.set_path(&["kafka", "topics", "alert", "topic"], scalar("t"), 0);
        let k = t.get("kafka").unwrap();
        assert_eq!(
            k.get("spool").unwrap().get("dir").unwrap().as_scalar(),
            Some("/y")
        );
        assert_eq!(k.get("brokers").unwrap().line, 2);
        let topic = k.get("topics").unwrap().get("alert").unwrap().get("topic");
        assert_eq!(topic.unwrap().as_scalar(), Some("t"));
    }
}
