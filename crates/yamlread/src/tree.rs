//! A YAML document as a tree that keeps line numbers: what the configuration and the
//! detector files are read into, so every later error (an unknown key, a bad value) can
//! name its line. Scalars are kept as written (`~`, `null` and empty give an empty string);
//! what they mean is up to the reader of each key.

use crate::{Error, Event, Receiver};

/// A YAML node and the line it starts on (1-based; 0 for a node that came from the
/// command line).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// 1-based line.
    pub line: usize,
    /// The value.
    pub kind: Kind,
}

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar as written (`~`/empty give an empty string).
    Scalar(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order, each key with its line.
    Map(Vec<(String, usize, Node)>),
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

enum Open {
    Seq(usize, Vec<Node>),
    Map(usize, Vec<(String, usize, Node)>, Option<(String, usize)>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    root: Option<Node>,
}

impl Builder {
    fn put(&mut self, node: Node) {
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
                        _ => String::new(),
                    };
                    *key = Some((k, node.line));
                }
                Some((k, l)) => entries.push((k, l, node)),
            },
        }
    }
}

impl Receiver for Builder {
    fn event(&mut self, ev: Event, line: usize) -> Result<(), Error> {
        match ev {
            Event::Scalar(s, ..) => self.put(Node {
                line,
                kind: Kind::Scalar(if s == "~" || s == "null" {
                    String::new()
                } else {
                    s
                }),
            }),
            Event::SequenceStart(..) => self.stack.push(Open::Seq(line, Vec::new())),
            Event::MappingStart(..) => self.stack.push(Open::Map(line, Vec::new(), None)),
            Event::SequenceEnd => {
                if let Some(Open::Seq(l, items)) = self.stack.pop() {
                    self.put(Node {
                        line: l,
                        kind: Kind::Seq(items),
                    });
                }
            }
            Event::MappingEnd => {
                if let Some(Open::Map(l, entries, _)) = self.stack.pop() {
                    self.put(Node {
                        line: l,
                        kind: Kind::Map(entries),
                    });
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
    let mut b = Builder::default();
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
