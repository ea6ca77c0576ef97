//! `classification.config`: `config classification: shortname,description,priority`.
//!
//! The rule keyword `classtype:NAME` looks a class up here (case-insensitive);
//! its priority is the alert's default severity. The project ships
//! Suricata's standard file ([`BUILTIN_CLASSIFICATION`]); configuration may
//! point at another one ([`Classifications::load`]). As in Suricata, the
//! first definition of a name wins.

use std::collections::HashMap;
use std::path::Path;

use crate::conffile::{logical_lines, read, too_long, ConfigError, LoadError};

/// Suricata's standard `classification.config`, compiled in.
pub const BUILTIN_CLASSIFICATION: &str = include_str!("../data/classification.config");

/// One class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Short name as written (`trojan-activity`).
    pub name: String,
    /// Description (`A Network Trojan was detected`), the alert's `category`.
    pub description: String,
    /// Default priority (1 highest), the alert's `severity` unless the rule
    /// sets `priority`.
    pub priority: u32,
}

/// Classes by name.
#[derive(Debug, Clone, Default)]
pub struct Classifications {
    by_name: HashMap<String, Classification>,
}

impl Classifications {
    /// The built-in defaults.
    pub fn builtin() -> Classifications {
        let (c, errors) =
            Classifications::parse(BUILTIN_CLASSIFICATION, "<builtin classification.config>");
        debug_assert!(errors.is_empty(), "{errors:?}");
        c
    }

    /// Parses a file's text; bad lines are skipped and returned as errors.
    pub fn parse(text: &str, file: &str) -> (Classifications, Vec<ConfigError>) {
        let mut out = Classifications::default();
        let mut errors = Vec::new();
        for (line, l) in logical_lines(text) {
            let Some(l) = l else {
                errors.push(too_long(file, line));
                continue;
            };
            match parse_line(&l) {
                Ok(c) => {
                    out.by_name.entry(c.name.to_ascii_lowercase()).or_insert(c);
                }
                Err(message) => errors.push(ConfigError {
                    file: file.to_string(),
                    line,
                    message,
                }),
            }
        }
        (out, errors)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<(Classifications, Vec<ConfigError>), LoadError> {
        let text = read(path)?;
        Ok(Classifications::parse(&text, &path.display().to_string()))
    }

    /// The class named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Classification> {
        self.by_name.get(&name.to_ascii_lowercase())
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// All classes, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Classification> {
        let mut v: Vec<_> = self.by_name.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.into_iter()
    }
}

/// `config classification: NAME,DESCRIPTION,PRIORITY` (the description
/// is everything between the first and the last comma).
fn parse_line(l: &str) -> Result<Classification, String> {
    let rest = strip_config_prefix(l, "classification")
        .ok_or_else(|| "expected `config classification: name,description,priority`".to_string())?;
    let (name, rest) = rest
        .split_once(',')
        .ok_or_else(|| "missing `,` after the class name".to_string())?;
    let (desc, prio) = rest
        .rsplit_once(',')
        .ok_or_else(|| "missing `,priority`".to_string())?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!("invalid class name `{name}`"));
    }
    let desc = desc.trim();
    if desc.is_empty() {
        return Err(format!("empty description for `{name}`"));
    }
    let prio = prio.trim();
    let priority = if !prio.is_empty() && prio.bytes().all(|b| b.is_ascii_digit()) {
        prio.parse::<u32>().ok()
    } else {
        None
    }
    .ok_or_else(|| format!("invalid priority `{prio}` for `{name}`"))?;
    Ok(Classification {
        name: name.to_string(),
        description: desc.to_string(),
        priority,
    })
}

/// `config WORD:` prefix (spaces allowed around the words and the colon);
/// returns what follows the colon.
pub(crate) fn strip_config_prefix<'a>(l: &'a str, word: &str) -> Option<&'a str> {
    let rest = l.trim_start().strip_prefix("config")?;
    let rest = rest.trim_start();
    let rest = rest.strip_prefix(word)?;
    let rest = rest.trim_start().strip_prefix(':')?;
    Some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_suricatas_classes() {
        let c = Classifications::builtin();
        assert_eq!(c.len(), 43);
        let t = c.get("trojan-activity").unwrap();
        assert_eq!(
            (t.description.as_str(), t.priority),
            ("A Network Trojan was detected", 1)
        );
        assert_eq!(c.get("BAD-UNKNOWN").unwrap().priority, 2);
        assert_eq!(c.get("not-suspicious").unwrap().priority, 3);
        assert_eq!(c.get("tcp-connection").unwrap().priority, 4);
        assert!(c.get("nope").is_none());
        let (_, errors) = Classifications::parse(BUILTIN_CLASSIFICATION, "x");
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn parse_forms_and_errors_with_file_line() {
        let text = "# comment\n\
            config classification: a-b,Desc, with comma,2\n\
            config classification:c_d , spaced ,  3 \n\
            config classification: a-b,Duplicate,4\n\
            config classtype: x,y,1\n\
            config classification: bad name,x,1\n\
            config classification: e,desc,high\n\
            config classification: f,desc\n\
            config classification: g,,1\n";
        let (c, errors) = Classifications::parse(text, "my.config");
        let a = c.get("A-B").unwrap();
        assert_eq!(
            (a.description.as_str(), a.priority),
            ("Desc, with comma", 2)
        );
        assert_eq!(c.get("c_d").unwrap().description, "spaced");
        assert_eq!(c.len(), 2);
        let lines: Vec<_> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![5, 6, 7, 8, 9]);
        assert!(
            errors[2]
                .to_string()
                .starts_with("my.config:7: invalid priority"),
            "{}",
            errors[2]
        );
    }

    #[test]
    fn load_from_path() {
        let dir = std::env::temp_dir().join(format!("zw-ruleconf-class-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("classification.config");
        std::fs::write(&p, "config classification: x,X class,1\n").unwrap();
        let (c, errors) = Classifications::load(&p).unwrap();
        assert!(errors.is_empty() && c.get("x").is_some());
        assert!(Classifications::load(&dir.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
