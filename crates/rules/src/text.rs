//! Rule file text: comments, `\` continuations, option splitting.

/// One rule's text joined onto one line, with the line it started on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRule {
    /// 1-based line of the rule's first line.
    pub line: usize,
    /// The joined text.
    pub text: String,
}

/// Splits a rule file into rules: `#` comment lines and blank lines are
/// skipped; a line ending in `\` continues on the next.
pub fn split_rules(text: &str) -> Vec<RawRule> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if cur.is_empty() {
            let t = line.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            start = n + 1;
        }
        let trimmed = line.trim_end();
        if let Some(body) = trimmed.strip_suffix('\\') {
            cur.push_str(body);
            continue;
        }
        cur.push_str(line);
        out.push(RawRule {
            line: start,
            text: std::mem::take(&mut cur),
        });
    }
    if !cur.trim().is_empty() {
        out.push(RawRule {
            line: start,
            text: cur,
        });
    }
    out
}

/// One `name[:value]` option, with the column of its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOption {
    /// Keyword, lowercased, trimmed.
    pub name: String,
    /// Value text, trimmed (quotes kept).
    pub value: Option<String>,
    /// 0-based byte column of the keyword in the rule text.
    pub col: usize,
}

/// Splits the text between the rule's parentheses on unescaped `;`. `base` is the column of `body` in the rule.
pub(crate) fn split_options(body: &str, base: usize) -> Result<Vec<RawOption>, (usize, String)> {
    let b = body.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        // Like Suricata, an option ends at the first `;` not escaped with
        // `\`; quotes do not protect it (pcre values may hold a bare `"`).
        let mut colon = None;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 1,
                b':' if colon.is_none() => colon = Some(i),
                b';' => break,
                _ => {}
            }
            i += 1;
        }
        if i > b.len() {
            i = b.len();
        }
        if i >= b.len() {
            return Err((base + i, "';' after the last option".into()));
        }
        let (name, value) = match colon {
            Some(c) => (&body[start..c], Some(body[c + 1..i].trim().to_string())),
            None => (&body[start..i], None),
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        {
            return Err((base + start, format!("a keyword, found {:?}", name)));
        }
        out.push(RawOption {
            name: name.to_ascii_lowercase(),
            value,
            col: base + start,
        });
        i += 1;
    }
    Ok(out)
}
