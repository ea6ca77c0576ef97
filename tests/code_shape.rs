//! The shape of the code, checked: no non-test function longer than 150
//! lines in the binary or any crate (a function that long does several
//! things that deserve names of their own). Test modules (`#[cfg(test)]`,
//! `tests.rs`, `tests/`) are not counted.
//!
//! The scan is textual: string and character literals and comments are
//! blanked before braces are counted, which is exact for this code base.

use std::path::{Path, PathBuf};

const MAX_LINES: usize = 150;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs")
            && p.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(p);
        }
    }
}

/// The line without literals and comments (braces in them do not count).
fn code_only(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => break,
            b'r' if b.get(i + 1) == Some(&b'#') || (b.get(i + 1) == Some(&b'"')) => {
                // Raw string on one line: skip to its closing quote and hashes.
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                let close: String = std::iter::once('"')
                    .chain("#".repeat(hashes).chars())
                    .collect();
                let start = i + 2 + hashes;
                match line.get(start..).and_then(|r| r.find(&close)) {
                    Some(k) => i = start + k + close.len(),
                    None => break,
                }
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') || (b.get(i + 1) == Some(&b'\\')) => {
                // A char literal ('{', '\n', '\''), not a lifetime.
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

fn is_fn_start(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let t = t
        .strip_prefix("pub(crate) ")
        .or_else(|| t.strip_prefix("pub(super) "))
        .or_else(|| t.strip_prefix("pub "))
        .unwrap_or(t);
    let t = t.strip_prefix("const ").unwrap_or(t);
    let t = t.strip_prefix("unsafe ").unwrap_or(t);
    let rest = t.strip_prefix("fn ")?;
    Some(
        rest.split(|c: char| !c.is_alphanumeric() && c != '_')
            .next()
            .unwrap_or(""),
    )
}

/// Functions over the limit in one file: (name, first line, length).
fn long_functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start().starts_with("#[cfg(test)]") {
            break; // test modules come last in every file of this code base
        }
        if let Some(name) = is_fn_start(lines[i]) {
            let (mut depth, mut opened, mut j) = (0i64, false, i);
            while j < lines.len() {
                let code = code_only(lines[j]);
                depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
                opened |= code.contains('{');
                if (opened && depth <= 0) || (!opened && code.trim_end().ends_with(';')) {
                    break;
                }
                j += 1;
            }
            if j + 1 - i > MAX_LINES {
                out.push((name.to_string(), i + 1, j + 1 - i));
            }
        }
        i += 1;
    }
    out
}

#[test]
fn no_function_is_longer_than_150_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    for c in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        let src = c.path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    assert!(files.len() > 50, "only {} files found", files.len());
    let mut long = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (name, line, n) in long_functions(&text) {
            long.push(format!("{}:{line}: fn {name} is {n} lines", f.display()));
        }
    }
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_scan_sees_a_long_function_and_ignores_braces_in_literals() {
    let body = "    let x = 1;\n".repeat(MAX_LINES);
    let long = format!(
        "fn long() {{\n{body}}}\nfn short() {{\n    let s = \"}}}}\";\n    let c = '}}';\n}}\n"
    );
    assert_eq!(
        long_functions(&long),
        vec![("long".to_string(), 1, MAX_LINES + 2)]
    );
    let short =
        "pub(crate) fn f(a: &str) -> usize {\n    let r = r#\"{{{\"#;\n    // }\n    a.len()\n}\n";
    assert!(long_functions(short).is_empty());
}
