//! Line handling shared by the `.config` file parsers: comments, blank
//! lines, CRLF, `\` continuations, and errors that name file and line.

use std::path::Path;

/// A problem in a configuration file, with where it is. Bad lines are
/// skipped; the parsers return every such error, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    /// The file name as given (or `<builtin ...>` for built-in defaults).
    pub file: String,
    /// 1-based line number (the first line of a continued line).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Reading a configuration file failed before any line was parsed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct LoadError {
    /// The path as given.
    pub path: String,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// Longest logical line accepted (longer ones are reported and skipped).
pub(crate) const MAX_LINE: usize = 64 * 1024;

pub(crate) fn read(path: &Path) -> Result<String, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError {
        path: path.display().to_string(),
        source,
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A logical line: 1-based number of its first physical line, and its text
/// (lines ending in `\` joined), or `None` if it is longer than
/// [`MAX_LINE`].
pub(crate) type LogicalLine = (usize, Option<String>);

/// Logical lines of a file, skipping blank and comment-only lines.
pub(crate) fn logical_lines(text: &str) -> Vec<LogicalLine> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, Option<String>)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let (start, mut acc) = match pending.take() {
            Some(p) => p,
            None => {
                let t = line.trim_start();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                (i + 1, Some(String::new()))
            }
        };
        let trimmed = line.trim_end();
        let (body, continued) = match trimmed.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (trimmed, false),
        };
        if let Some(a) = acc.as_mut() {
            if a.len() + body.len() <= MAX_LINE {
                a.push_str(body);
            } else {
                acc = None;
            }
        }
        if continued {
            pending = Some((start, acc));
        } else {
            out.push((start, acc));
        }
    }
    if let Some(p) = pending {
        out.push(p);
    }
    out
}

/// The error for a line longer than [`MAX_LINE`].
pub(crate) fn too_long(file: &str, line: usize) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        line,
        message: format!("line longer than {MAX_LINE} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blanks_crlf_continuations() {
        let t = "# c\r\n\r\n  a b\r\nx \\\n  y\\\n z\n   # indented comment\nlast \\";
        let l = logical_lines(t);
        assert_eq!(
            l,
            vec![
                (3, Some("  a b".to_string())),
                (4, Some("x   y z".to_string())),
                (8, Some("last ".to_string()))
            ]
        );
    }

    #[test]
    fn overlong_lines_are_flagged_not_truncated() {
        let long = format!("a {}\\\n{}\nnext", "x".repeat(MAX_LINE), "y");
        let l = logical_lines(&long);
        assert_eq!(l, vec![(1, None), (3, Some("next".to_string()))]);
    }
}
