//! Typed reading of YAML trees with line numbers (the tree is `zonewatch_yamlread`'s, the
//! one YAML reader: aliases expanded within a budget, every error with its line): readers
//! that collect every error as `file:line: message` and report unknown keys.

use std::cell::RefCell;
use std::net::IpAddr;

use ipnet::IpNet;
pub use zonewatch_yamlread::tree::{Kind, Node};

/// Parses the first document of YAML text into a tree; the error is `(line, message)`.
pub fn parse(text: &str) -> Result<Option<Node>, (usize, String)> {
    zonewatch_yamlread::tree::parse(text).map_err(|e| (e.line, e.message))
}

/// Errors collected while reading a file: `(line, message)`.
pub type Errors = RefCell<Vec<(usize, String)>>;

/// Typed reading of one mapping; remembers the keys read so that the rest can be reported
/// as unknown.
pub struct Section<'a> {
    node: &'a Node,
    errors: &'a Errors,
    used: RefCell<Vec<&'static str>>,
    path: String,
}

impl<'a> Section<'a> {
    /// Reads `node`, which must be a mapping (an error otherwise).
    pub fn new(node: &'a Node, path: &str, errors: &'a Errors) -> Self {
        if !matches!(node.kind, Kind::Map(_)) {
            errors
                .borrow_mut()
                .push((node.line, format!("`{path}` must be a mapping")));
        }
        Section {
            node,
            errors,
            used: RefCell::new(Vec::new()),
            path: path.to_string(),
        }
    }

    fn err(&self, line: usize, msg: String) {
        self.errors.borrow_mut().push((line, msg));
    }

    /// The raw node under `key`, marking it used.
    pub fn node(&self, key: &'static str) -> Option<&'a Node> {
        self.used.borrow_mut().push(key);
        self.node.get(key)
    }

    fn scalar(&self, key: &'static str) -> Option<(&'a str, usize)> {
        let n = self.node(key)?;
        match &n.kind {
            Kind::Scalar(s) => Some((s.as_str(), n.line)),
            _ => {
                self.err(n.line, format!("`{}.{key}` must be a scalar", self.path));
                None
            }
        }
    }

    /// A number within `min..=max`, or `default`.
    pub fn f64(&self, key: &'static str, default: f64, min: f64, max: f64) -> f64 {
        match self.scalar(key) {
            None => default,
            Some((s, line)) => match s.parse::<f64>() {
                Ok(v) if v >= min && v <= max && v.is_finite() => v,
                _ => {
                    self.err(
                        line,
                        format!(
                            "`{}.{key}`: {s:?} is not a number in {min}..={max}",
                            self.path
                        ),
                    );
                    default
                }
            },
        }
    }

    /// An integer within `min..=max`, or `default`.
    pub fn u64(&self, key: &'static str, default: u64, min: u64, max: u64) -> u64 {
        match self.scalar(key) {
            None => default,
            Some((s, line)) => match s.replace('_', "").parse::<u64>() {
                Ok(v) if v >= min && v <= max => v,
                _ => {
                    self.err(
                        line,
                        format!(
                            "`{}.{key}`: {s:?} is not an integer in {min}..={max}",
                            self.path
                        ),
                    );
                    default
                }
            },
        }
    }

    /// A boolean (`true/false/yes/no/on/off`), or `default`.
    pub fn bool(&self, key: &'static str, default: bool) -> bool {
        match self.scalar(key) {
            None => default,
            Some((s, line)) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => true,
                "false" | "no" | "off" => false,
                _ => {
                    self.err(
                        line,
                        format!("`{}.{key}`: {s:?} is not a boolean", self.path),
                    );
                    default
                }
            },
        }
    }

    /// A string, or `default`.
    pub fn string(&self, key: &'static str, default: &str) -> String {
        self.scalar(key)
            .map(|(s, _)| s.to_string())
            .unwrap_or_else(|| default.to_string())
    }

    /// A list of scalars (a single scalar is a one-item list); `None` when absent.
    pub fn list(&self, key: &'static str) -> Option<Vec<(String, usize)>> {
        let n = self.node(key)?;
        Some(scalars(n, &format!("{}.{key}", self.path), self.errors))
    }

    /// A list of CIDRs or addresses (`10.0.0.0/8`, `192.0.2.1`), empty when absent.
    pub fn nets(&self, key: &'static str) -> Vec<IpNet> {
        let mut out = Vec::new();
        for (s, line) in self.list(key).unwrap_or_default() {
            match parse_net(&s) {
                Some(n) => out.push(n),
                None => self.err(
                    line,
                    format!("`{}.{key}`: {s:?} is not an address or CIDR", self.path),
                ),
            }
        }
        out
    }

    /// A list of port numbers, empty when absent.
    pub fn ports(&self, key: &'static str) -> Vec<u16> {
        let mut out = Vec::new();
        for (s, line) in self.list(key).unwrap_or_default() {
            match s.parse::<u16>() {
                Ok(p) => out.push(p),
                Err(_) => self.err(line, format!("`{}.{key}`: {s:?} is not a port", self.path)),
            }
        }
        out
    }

    /// Reports keys present in the mapping that no reader asked for.
    pub fn finish(self) {
        if let Kind::Map(entries) = &self.node.kind {
            let used = self.used.borrow();
            for (k, line, _) in entries {
                if !used.iter().any(|u| u == k) {
                    self.err(*line, format!("unknown key `{}.{k}`", self.path));
                }
            }
        }
    }
}

/// The scalars of a sequence (or a lone scalar), each with its line.
pub fn scalars(n: &Node, path: &str, errors: &Errors) -> Vec<(String, usize)> {
    match &n.kind {
        Kind::Scalar(s) if s.is_empty() => Vec::new(),
        Kind::Scalar(s) => vec![(s.clone(), n.line)],
        Kind::Seq(items) => items
            .iter()
            .filter_map(|i| match &i.kind {
                Kind::Scalar(s) => Some((s.clone(), i.line)),
                _ => {
                    errors
                        .borrow_mut()
                        .push((i.line, format!("`{path}`: items must be scalars")));
                    None
                }
            })
            .collect(),
        Kind::Map(_) => {
            errors
                .borrow_mut()
                .push((n.line, format!("`{path}` must be a list")));
            Vec::new()
        }
    }
}

/// `10.0.0.0/8`, `fd00::/8` or a bare address (a host prefix).
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_keeps_lines_and_reports_unknown_and_bad_values() {
        let t =
            parse("detector:\n  type: x\n  window: 5s\n  allow: [10.0.0.0/8, nope]\n  bogus: 1\n")
                .unwrap()
                .unwrap();
        let d = t.get("detector").unwrap();
        assert_eq!(d.line, 2);
        let errs = Errors::default();
        let s = Section::new(d, "detector", &errs);
        assert_eq!(s.string("type", ""), "x");
        assert_eq!(s.u64("window", 60, 1, 100), 60);
        assert_eq!(s.nets("allow").len(), 1);
        s.finish();
        let e = errs.into_inner();
        let lines: Vec<usize> = e.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [3, 4, 5], "{e:?}");
        assert!(e[2].1.contains("unknown key `detector.bogus`"));
    }

    #[test]
    fn aliases_are_expanded_and_bombs_refused() {
        let t = parse("detector:\n  allow: &nets [10.0.0.0/8]\n  ignore: *nets\n")
            .unwrap()
            .unwrap();
        let d = t.get("detector").unwrap();
        let errs = Errors::default();
        let ignore = scalars(d.get("ignore").unwrap(), "detector.ignore", &errs);
        // The copy carries the line of the alias, where an error in it would be.
        assert_eq!(ignore, [("10.0.0.0/8".to_string(), 3)]);
        let mut bomb = String::from("detector:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            bomb.push_str(&format!(
                "  a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&bomb).unwrap_err();
        assert_eq!(e.0, 5, "{e:?}");
        assert!(e.1.contains("alias *a2"), "{e:?}");
    }

    #[test]
    fn syntax_error_has_line() {
        let e = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.0 >= 2, "{e:?}");
    }
}
