//! The one walk of the `--rules` paths. The signature engine, the Sigma loader and the
//! anomaly-detector loader all take their files from [`collect`], so they see the same
//! files in the same order, and each takes only its own kind ([`Kind`]): a `.rules` file
//! is never read as YAML, a YAML file never as signatures.
//!
//! The walk:
//! - files given directly are taken as given (when of a known kind); directories are read
//!   recursively, entries in name order (byte order of the names);
//! - symbolic links are followed, but each directory is read once: a link back to a
//!   directory being read (a loop) or to one read already is not followed again, and
//!   each file (by device and inode) is listed once however many paths lead to it;
//! - at most [`MAX_DEPTH`] directory levels below a given directory are read; what lies
//!   deeper is named in [`RuleFiles::skipped`];
//! - only regular files are listed (a FIFO named `x.rules` would block the loader);
//! - a given path that cannot be read is an error; anything found below it that cannot be
//!   read is skipped and named.
#![deny(missing_docs)]

use std::collections::HashSet;
use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};

/// Directory levels read below each given directory.
pub const MAX_DEPTH: usize = 32;

/// What a rule file holds, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Suricata signatures: `*.rules`.
    Signatures,
    /// YAML: `*.yml`, `*.yaml` (Sigma rules and detector files; their loaders tell them
    /// apart by content).
    Yaml,
}

impl Kind {
    /// The kind of a file by its extension (case-insensitive); `None` for other files.
    pub fn of(path: &Path) -> Option<Kind> {
        let ext = path.extension()?.to_str()?;
        if ext.eq_ignore_ascii_case("rules") {
            Some(Kind::Signatures)
        } else if ext.eq_ignore_ascii_case("yml") || ext.eq_ignore_ascii_case("yaml") {
            Some(Kind::Yaml)
        } else {
            None
        }
    }
}

/// A file or directory the walk did not read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The path as reached by the walk.
    pub path: PathBuf,
    /// Why it was not read.
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}; skipped", self.path.display(), self.reason)
    }
}

/// The result of a walk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleFiles {
    /// Rule files in load order, each once.
    pub files: Vec<(PathBuf, Kind)>,
    /// What was not read and why (loops, depth, unreadable entries, files of no known
    /// kind given directly): worth a warning each.
    pub skipped: Vec<Skipped>,
    /// Paths leading to a file or directory already listed (a second link or an
    /// overlapping `--rules` path): not read twice, not worth a warning.
    pub repeated: Vec<PathBuf>,
}

impl RuleFiles {
    /// The files of one kind, in load order.
    pub fn of(&self, kind: Kind) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(p, _)| p.clone())
            .collect()
    }
}

/// A given path that could not be read.
#[derive(Debug)]
pub struct WalkError {
    /// The path.
    pub path: PathBuf,
    /// Why.
    pub source: io::Error,
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for WalkError {}

impl From<WalkError> for io::Error {
    fn from(e: WalkError) -> io::Error {
        io::Error::new(e.source.kind(), e.to_string())
    }
}

/// Walks `paths` (files or directories). Fails only when a given path cannot be read
/// at all; the error names it.
pub fn collect(paths: &[PathBuf]) -> Result<RuleFiles, WalkError> {
    let mut w = Walker::default();
    for p in paths {
        w.given(p)?;
    }
    Ok(w.out)
}

/// Walks `paths` as [`collect`] does, in one walk (each file once however many paths lead
/// to it), but a given path that cannot be read does not end it: that path's error is
/// returned with the files of the others. For a loader that reports a bad path and goes on.
pub fn collect_each(paths: &[PathBuf]) -> (RuleFiles, Vec<WalkError>) {
    let mut w = Walker::default();
    let errors = paths.iter().filter_map(|p| w.given(p).err()).collect();
    (w.out, errors)
}

fn named(p: &Path, source: io::Error) -> WalkError {
    WalkError {
        path: p.to_owned(),
        source,
    }
}

/// A file's identity: device and inode.
#[cfg(unix)]
fn id(md: &Metadata, _: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (md.dev(), md.ino())
}

#[cfg(not(unix))]
fn id(_: &Metadata, p: &Path) -> (u64, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_owned())
        .hash(&mut h);
    (0, h.finish())
}

#[derive(Default)]
struct Walker {
    out: RuleFiles,
    files_seen: HashSet<(u64, u64)>,
    dirs_seen: HashSet<(u64, u64)>,
    /// Directories being read, outermost first (to tell a loop from a second path).
    open: Vec<((u64, u64), PathBuf)>,
}

impl Walker {
    /// A path given to the walk.
    fn given(&mut self, p: &Path) -> Result<(), WalkError> {
        let md = std::fs::metadata(p).map_err(|e| named(p, e))?;
        if md.is_dir() {
            self.dir(p, &md, 0)
        } else {
            self.entry(p, &md);
            Ok(())
        }
    }

    fn skip(&mut self, path: &Path, reason: impl Into<String>) {
        self.out.skipped.push(Skipped {
            path: path.to_owned(),
            reason: reason.into(),
        });
    }

    /// A file given directly or found in a directory.
    fn entry(&mut self, p: &Path, md: &Metadata) {
        let Some(kind) = Kind::of(p) else {
            if self.open.is_empty() {
                self.skip(p, "neither a .rules nor a .yml/.yaml file");
            }
            return;
        };
        if !md.is_file() {
            self.skip(p, "not a regular file");
        } else if self.files_seen.insert(id(md, p)) {
            self.out.files.push((p.to_owned(), kind));
        } else {
            self.out.repeated.push(p.to_owned());
        }
    }

    fn dir(&mut self, dir: &Path, md: &Metadata, depth: usize) -> Result<(), WalkError> {
        let did = id(md, dir);
        if let Some((_, first)) = self.open.iter().find(|(d, _)| *d == did) {
            let first = first.display().to_string();
            self.skip(
                dir,
                format!("symbolic link loop (leads back to {first}, which is being read)"),
            );
            return Ok(());
        }
        if !self.dirs_seen.insert(did) {
            self.out.repeated.push(dir.to_owned());
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) if depth == 0 => return Err(named(dir, e)),
            Err(e) => {
                self.skip(dir, format!("cannot read the directory: {e}"));
                return Ok(());
            }
        };
        entries.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        self.open.push((did, dir.to_owned()));
        for p in entries {
            let md = match std::fs::metadata(&p) {
                Ok(m) => m,
                Err(e) => {
                    if Kind::of(&p).is_some() || p.is_symlink() {
                        self.skip(&p, format!("cannot read: {e}"));
                    }
                    continue;
                }
            };
            if !md.is_dir() {
                self.entry(&p, &md);
            } else if depth < MAX_DEPTH {
                self.dir(&p, &md, depth + 1)?;
            } else {
                self.too_deep(&p);
            }
        }
        self.open.pop();
        Ok(())
    }

    /// A directory below the depth limit: named, and so are the rule files directly in it.
    fn too_deep(&mut self, dir: &Path) {
        let why = format!("more than {MAX_DEPTH} directory levels below a --rules directory");
        self.skip(dir, format!("directory {why}; its files are not loaded"));
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| Kind::of(p).is_some() && p.is_file())
            .collect();
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        for f in files {
            self.skip(&f, format!("rule file {why}"));
        }
    }
}

#[cfg(test)]
mod tests;
