//! `reference.config`: `config reference: system url`.
//!
//! The rule keyword `reference:SYSTEM,ID` is rendered as the system's URL
//! prefix followed by the id. The project ships Suricata's standard file
//! ([`BUILTIN_REFERENCE`]); configuration may point at another one
//! ([`References::load`]). System names are case-insensitive and, as in
//! Suricata, the first definition wins (the standard file defines `secunia`
//! twice).

use std::collections::HashMap;
use std::path::Path;

use crate::classification::strip_config_prefix;
use crate::conffile::{logical_lines, read, too_long, ConfigError, LoadError};

/// Suricata's standard `reference.config`, compiled in.
pub const BUILTIN_REFERENCE: &str = include_str!("../data/reference.config");

/// Reference systems by name.
#[derive(Debug, Clone, Default)]
pub struct References {
    by_system: HashMap<String, (String, String)>,
}

impl References {
    /// The built-in defaults.
    pub fn builtin() -> References {
        let (r, errors) = References::parse(BUILTIN_REFERENCE, "<builtin reference.config>");
        debug_assert!(errors.is_empty(), "{errors:?}");
        r
    }

    /// Parses a file's text; bad lines are skipped and returned as errors.
    pub fn parse(text: &str, file: &str) -> (References, Vec<ConfigError>) {
        let mut out = References::default();
        let mut errors = Vec::new();
        for (line, l) in logical_lines(text) {
            let Some(l) = l else {
                errors.push(too_long(file, line));
                continue;
            };
            match parse_line(&l) {
                Ok((system, url)) => {
                    out.by_system
                        .entry(system.to_ascii_lowercase())
                        .or_insert((system, url));
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
    pub fn load(path: &Path) -> Result<(References, Vec<ConfigError>), LoadError> {
        let text = read(path)?;
        Ok(References::parse(&text, &path.display().to_string()))
    }

    /// The URL prefix of `system` (case-insensitive).
    pub fn url(&self, system: &str) -> Option<&str> {
        self.by_system
            .get(&system.to_ascii_lowercase())
            .map(|(_, u)| u.as_str())
    }

    /// Number of systems.
    pub fn len(&self) -> usize {
        self.by_system.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_system.is_empty()
    }

    /// (system as written, URL prefix), sorted by system.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut v: Vec<_> = self
            .by_system
            .values()
            .map(|(s, u)| (s.as_str(), u.as_str()))
            .collect();
        v.sort();
        v.into_iter()
    }
}

fn parse_line(l: &str) -> Result<(String, String), String> {
    let rest = strip_config_prefix(l, "reference")
        .ok_or_else(|| "expected `config reference: system url`".to_string())?;
    let rest = rest.trim();
    let end = rest
        .find(|c: char| c.is_ascii_whitespace())
        .ok_or_else(|| "missing URL after the system name".to_string())?;
    let (system, url) = (&rest[..end], rest[end..].trim());
    if system.is_empty()
        || !system
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!("invalid reference system `{system}`"));
    }
    if url.is_empty() {
        return Err(format!("missing URL for `{system}`"));
    }
    Ok((system.to_string(), url.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_suricatas_systems() {
        let r = References::builtin();
        assert_eq!(
            r.url("cve"),
            Some("http://cve.mitre.org/cgi-bin/cvename.cgi?name=")
        );
        assert_eq!(r.url("URL"), Some("http://"));
        assert_eq!(r.url("bid"), Some("http://www.securityfocus.com/bid/"));
        // First definition wins, as in Suricata.
        assert_eq!(r.url("secunia"), Some("http://www.secunia.com/advisories/"));
        assert!(r.url("nope").is_none());
        assert_eq!(r.len(), 19);
        let (_, errors) = References::parse(BUILTIN_REFERENCE, "x");
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn parse_forms_and_errors_with_file_line() {
        let text = "config reference: my_sys\thttps://x.example/?id=\n\
                    config reference: lonely\n\
                    config reference:  bad/sys http://x\n\
                    config referenc: x http://y\n\
                    #config reference: commented http://z\n";
        let (r, errors) = References::parse(text, "ref.config");
        assert_eq!(r.url("MY_SYS"), Some("https://x.example/?id="));
        assert_eq!(r.len(), 1);
        let lines: Vec<_> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4]);
        assert!(errors[0].to_string().starts_with("ref.config:2:"));
    }
}
