//! Least privilege (`run-as.user`, `run-as.group`; see docs/operations.md,
//! "Least privilege").
//!
//! Started as root with `run-as.user` set, zonewatch resolves the user and
//! group, checks that every path it still needs after the drop (output,
//! Kafka spool, rules, configuration, capture and log files) is usable by
//! that user, opens what needs root (output file, spool, syslog listeners on
//! any port, libpcap handles), and then — from the pipeline's `ready` hook,
//! after the last privileged open and before the first packet is read —
//! gives the files it created to the user and calls `setgroups([gid])`,
//! `setgid`, `setuid`. Capture continues on the open handles, which needs no
//! capability: every capability set is cleared and the result is verified
//! for every thread of the process (`/proc/self/task/*/status`).
//!
//! Started without root but with file or ambient capabilities
//! (`CAP_NET_RAW,CAP_NET_ADMIN` for live capture, `CAP_NET_BIND_SERVICE`
//! for listeners below port 1024), zonewatch narrows them to what the run
//! needs before any thread starts, and clears them on the capture thread
//! once the inputs are open.

use anyhow::{bail, Context};
use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Group, Uid, User};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use zonewatch_config::Config;
use zonewatch_pipeline::ReadyHook;

/// The account the process becomes.
#[derive(Clone, Debug)]
struct Target {
    user: String,
    uid: Uid,
    group: String,
    gid: Gid,
}

impl Target {
    fn who(&self) -> String {
        format!(
            "user {} (uid {}, group {} gid {})",
            self.user, self.uid, self.group, self.gid
        )
    }
}

/// What the run does about privileges, decided before anything is opened.
pub struct Plan {
    mode: Mode,
}

enum Mode {
    /// Root without `run-as`, or an unprivileged user without capabilities:
    /// nothing to drop.
    Keep,
    /// Root, dropping to `target` once the inputs are open; `give` are the
    /// paths zonewatch creates as root that the user must own afterwards.
    Drop { target: Target, give: Vec<PathBuf> },
    /// Not root, with capabilities: cleared on the capture thread once the
    /// inputs are open.
    Caps,
}

impl Plan {
    /// Resolves `run-as`, checks the paths the run needs after the drop and
    /// prepares the spool directory; without `run-as`, narrows the
    /// capabilities of an unprivileged process to what the run needs. Call
    /// before any thread starts and before anything is opened.
    pub fn new(
        a: &crate::RunArgs,
        cfg: &Config,
        rules: &zonewatch_rulefiles::RuleFiles,
    ) -> anyhow::Result<Plan> {
        let Some(target) = resolve(cfg)? else {
            return Ok(Plan { mode: narrow(a)? });
        };
        let mut give = Vec::new();
        let out = cfg.output.path.clone().unwrap_or_else(|| "-".into());
        if out != "-" {
            check_output(&target, Path::new(&out))?;
            give.push(PathBuf::from(&out));
        }
        if a.kafka.is_some() || cfg.kafka.is_some() {
            let k = crate::kafka_sink::config(cfg, a.kafka.as_deref(), a.spool_dir.clone())?;
            prepare_spool(&target, &k.spool.dir)?;
            give.push(k.spool.dir);
        }
        let mut reads: Vec<(&str, PathBuf)> = Vec::new();
        reads.extend(a.rules.iter().map(|p| ("rules", p.clone())));
        reads.extend(rules.files.iter().map(|(p, _)| ("rule file", p.clone())));
        reads.extend(a.config.iter().map(|p| ("configuration", p.clone())));
        for (what, p) in [
            ("classification-file", &cfg.detect.classification_file),
            ("threshold-file", &cfg.detect.threshold_file),
        ] {
            reads.extend(p.iter().map(|p| (what, p.clone())));
        }
        reads.extend(a.pcap.iter().map(|p| ("capture", p.clone())));
        reads.extend(
            a.syslog_file
                .iter()
                .filter(|p| p.as_os_str() != "-")
                .map(|p| ("log file", p.clone())),
        );
        for (what, p) in reads {
            check(&target, what, &p, Access::Read)?;
        }
        crate::say(
            crate::Say::Info,
            format_args!(
                "privileges: will run as {} once the inputs are open",
                target.who()
            ),
        );
        Ok(Plan {
            mode: Mode::Drop { target, give },
        })
    }

    /// The pipeline's `ready` hook: drops privileges (or capabilities) after
    /// the last privileged open.
    pub fn hook(&self) -> Option<ReadyHook> {
        match &self.mode {
            Mode::Keep => None,
            Mode::Drop { target, give } => {
                let (target, give) = (target.clone(), give.clone());
                Some(Box::new(move || {
                    drop_to(&target, &give)
                        .map_err(|e| format!("dropping privileges to {}: {e}", target.who()))
                }))
            }
            Mode::Caps => Some(Box::new(clear_caps)),
        }
    }
}

/// Looks up `run-as.user` and `run-as.group` (names or numeric ids).
fn resolve(cfg: &Config) -> anyhow::Result<Option<Target>> {
    let Some(uname) = cfg.run_as.user.as_deref() else {
        if let Some(g) = &cfg.run_as.group {
            bail!("`run-as.group` is {g:?} but `run-as.user` is not set: set both, or neither");
        }
        return Ok(None);
    };
    let euid = Uid::effective();
    if !euid.is_root() {
        bail!(
            "`run-as.user` is {uname:?} but zonewatch is not running as root (uid {euid}): start it as root to drop to {uname}, or leave `run-as` unset and give the binary CAP_NET_RAW,CAP_NET_ADMIN (see docs/operations.md, \"Least privilege\")"
        );
    }
    let by_id = uname.parse::<u32>().ok().map(Uid::from_raw);
    let user = match by_id {
        Some(uid) => User::from_uid(uid),
        None => User::from_name(uname),
    }
    .with_context(|| format!("`run-as.user`: looking up {uname:?}"))?
    .with_context(|| format!("`run-as.user`: no such user {uname:?}"))?;
    if user.uid.is_root() {
        bail!("`run-as.user` {uname:?} is root (uid 0): name an unprivileged user");
    }
    let (group, gid) = match cfg.run_as.group.as_deref() {
        Some(g) => {
            let found = match g.parse::<u32>() {
                Ok(id) => Group::from_gid(Gid::from_raw(id)),
                Err(_) => Group::from_name(g),
            }
            .with_context(|| format!("`run-as.group`: looking up {g:?}"))?
            .with_context(|| format!("`run-as.group`: no such group {g:?}"))?;
            (found.name, found.gid)
        }
        None => {
            let name = Group::from_gid(user.gid)
                .ok()
                .flatten()
                .map_or_else(|| user.gid.to_string(), |g| g.name);
            (name, user.gid)
        }
    };
    if gid.as_raw() == 0 {
        bail!("`run-as.group` {group:?} is root's group (gid 0): name an unprivileged group");
    }
    Ok(Some(Target {
        user: user.name,
        uid: user.uid,
        group,
        gid,
    }))
}

/// What the user must be able to do with a path.
#[derive(Clone, Copy, PartialEq)]
enum Access {
    /// Read a file, or list and search a directory.
    Read,
    /// Write a file.
    Write,
    /// Create, rename and remove files in a directory.
    WriteDir,
}

/// Whether the permission bits of `m` grant `bits` (4 r, 2 w, 1 x) to `t`
/// (owner class, else group class, else other, as the kernel decides; ACLs
/// are not read).
fn grants(m: &std::fs::Metadata, t: &Target, bits: u32) -> bool {
    let mode = m.mode();
    let class = if m.uid() == t.uid.as_raw() {
        mode >> 6
    } else if m.gid() == t.gid.as_raw() {
        mode >> 3
    } else {
        mode
    };
    class & bits == bits
}

/// Checks that `t` can reach `path` (search permission on every directory
/// above it) and use it as `access` says. The error names the path, what it
/// is for and the user.
fn check(t: &Target, what: &str, path: &Path, access: Access) -> anyhow::Result<()> {
    check_as(t, &format!("{what} {}", path.display()), path, access)
}

/// [`check`], the error starting with `label`.
fn check_as(t: &Target, label: &str, path: &Path, access: Access) -> anyhow::Result<()> {
    let fail = |why: String| {
        anyhow::anyhow!(
            "{label}: {why} for {} (`run-as.user`), who needs it after the privilege drop: give it to that user (chown/chmod) or change `run-as`",
            t.who()
        )
    };
    let abs = std::fs::canonicalize(path).map_err(|e| fail(format!("cannot be resolved ({e})")))?;
    for dir in abs.ancestors().skip(1) {
        let m = std::fs::metadata(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        if !grants(&m, t, 1) {
            return Err(fail(format!(
                "directory {} cannot be searched (mode {:o}, owner uid {})",
                dir.display(),
                m.mode() & 0o7777,
                m.uid()
            )));
        }
    }
    let m = std::fs::metadata(&abs).map_err(|e| fail(e.to_string()))?;
    let (bits, verb) = match access {
        Access::Read if m.is_dir() => (5, "readable"),
        Access::Read => (4, "readable"),
        Access::Write => (2, "writable"),
        Access::WriteDir => (3, "writable"),
    };
    if !grants(&m, t, bits) {
        let kind = if m.is_dir() { "directory" } else { "file" };
        return Err(fail(format!(
            "{kind} {} is not {verb} (mode {:o}, owner uid {}, gid {})",
            abs.display(),
            m.mode() & 0o7777,
            m.uid(),
            m.gid()
        )));
    }
    Ok(())
}

/// The output file is opened (created or truncated) as root and given to
/// the user at the drop; its directory must let the user create it again
/// (a restart without root, a rotation).
fn check_output(t: &Target, out: &Path) -> anyhow::Result<()> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        bail!(
            "output {}: no such directory {}",
            out.display(),
            dir.display()
        );
    }
    check_as(
        t,
        &format!("output {}", out.display()),
        &dir,
        Access::WriteDir,
    )
}

/// The spool directory must be the user's to write: an existing one is
/// checked (files in it owned by root are given to the user at the drop,
/// others must be writable by the user); a missing one is created here, as
/// root, mode 0750, and given to the user.
fn prepare_spool(t: &Target, dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("Kafka spool {}: creating it", dir.display()))?;
        std::os::unix::fs::chown(dir, Some(t.uid.as_raw()), Some(t.gid.as_raw()))
            .with_context(|| format!("Kafka spool {}: giving it to {}", dir.display(), t.who()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
            .with_context(|| format!("Kafka spool {}", dir.display()))?;
    }
    check(t, "Kafka spool", dir, Access::WriteDir)?;
    check(t, "Kafka spool", dir, Access::Read)?;
    for f in walk(dir) {
        let Ok(m) = std::fs::symlink_metadata(&f) else {
            continue;
        };
        if m.uid() != 0 && !m.file_type().is_symlink() {
            let access = if m.is_dir() {
                Access::WriteDir
            } else {
                Access::Write
            };
            check(t, "Kafka spool", &f, access)?;
        }
    }
    Ok(())
}

/// Every entry below `dir` (symbolic links not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// Gives `p` (and, for a directory, everything below it) to `t` where root
/// owns it: the files zonewatch created as root before the drop.
fn give(t: &Target, p: &Path) -> Result<(), String> {
    let mut all = vec![p.to_path_buf()];
    if p.is_dir() {
        all.extend(walk(p));
    }
    for f in all {
        let Ok(m) = std::fs::symlink_metadata(&f) else {
            continue;
        };
        // Only what root owns, and never a hard link to another name.
        if m.uid() == 0 && (m.is_dir() || (m.is_file() && m.nlink() == 1)) {
            std::os::unix::fs::lchown(&f, Some(t.uid.as_raw()), Some(t.gid.as_raw()))
                .map_err(|e| format!("giving {} to the user: {e}", f.display()))?;
        }
    }
    Ok(())
}

/// The drop itself; see the module comment for the order.
fn drop_to(t: &Target, give_paths: &[PathBuf]) -> Result<(), String> {
    for p in give_paths {
        give(t, p)?;
    }
    fn e(what: &'static str) -> impl Fn(caps::errors::CapsError) -> String {
        move |err| format!("{what}: {err}")
    }
    // Needs CAP_SETPCAP: before setuid. These sets are per thread; the
    // kernel clears permitted, effective and ambient on every thread at
    // the setuid below.
    caps::clear(None, CapSet::Bounding).map_err(e("clearing the bounding set"))?;
    caps::clear(None, CapSet::Inheritable).map_err(e("clearing the inheritable set"))?;
    caps::clear(None, CapSet::Ambient).map_err(e("clearing the ambient set"))?;
    // glibc applies these to every thread of the process.
    nix::unistd::setgroups(&[t.gid]).map_err(|err| format!("setgroups: {err}"))?;
    nix::unistd::setgid(t.gid).map_err(|err| format!("setgid: {err}"))?;
    nix::unistd::setuid(t.uid).map_err(|err| format!("setuid: {err}"))?;
    caps::clear(None, CapSet::Effective).map_err(e("clearing the effective set"))?;
    caps::clear(None, CapSet::Permitted).map_err(e("clearing the permitted set"))?;
    verify(t)?;
    crate::say(
        crate::Say::Info,
        format_args!("privileges: running as {}, no capabilities", t.who()),
    );
    Ok(())
}

/// Checks the result of the drop on every thread; any remainder is an error.
fn verify(t: &Target) -> Result<(), String> {
    let u = nix::unistd::getresuid().map_err(|e| format!("getresuid: {e}"))?;
    let g = nix::unistd::getresgid().map_err(|e| format!("getresgid: {e}"))?;
    if [u.real, u.effective, u.saved] != [t.uid; 3] || [g.real, g.effective, g.saved] != [t.gid; 3]
    {
        return Err(format!(
            "ids after the drop are uid {}/{}/{}, gid {}/{}/{}",
            u.real, u.effective, u.saved, g.real, g.effective, g.saved
        ));
    }
    let groups = nix::unistd::getgroups().map_err(|e| format!("getgroups: {e}"))?;
    if groups.iter().any(|&x| x != t.gid) {
        return Err(format!("supplementary groups after the drop: {groups:?}"));
    }
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err("root could be regained after the drop".into());
    }
    for task in std::fs::read_dir("/proc/self/task").map_err(|e| format!("/proc/self/task: {e}"))? {
        let Ok(task) = task else { continue };
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue; // the thread has ended
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let (uid, gid) = (t.uid.to_string(), t.gid.to_string());
        let ok = field("Uid:").iter().all(|v| *v == uid)
            && field("Gid:").iter().all(|v| *v == gid)
            && ["CapEff:", "CapPrm:", "CapAmb:"].iter().all(|f| {
                field(f)
                    .iter()
                    .all(|v| v.trim_start_matches('0').is_empty())
            });
        if !ok {
            return Err(format!(
                "thread {} kept privileges after the drop",
                task.file_name().to_string_lossy()
            ));
        }
    }
    Ok(())
}

/// Without `run-as`: an unprivileged process started with capabilities
/// keeps, before any thread starts (threads inherit the sets), only those
/// the run needs, which the capture thread clears once the inputs are open.
fn narrow(a: &crate::RunArgs) -> anyhow::Result<Mode> {
    if Uid::effective().is_root() {
        return Ok(Mode::Keep);
    }
    let have = caps::read(None, CapSet::Permitted).context("reading capabilities")?;
    if have.is_empty() {
        return Ok(Mode::Keep);
    }
    let mut keep = CapsHashSet::new();
    if !a.interface.is_empty() {
        keep.extend([Capability::CAP_NET_RAW, Capability::CAP_NET_ADMIN]);
    }
    let low_port = a.syslog_listen.iter().any(|u| {
        u.rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
            .is_some_and(|p| p < 1024)
    });
    if low_port {
        keep.insert(Capability::CAP_NET_BIND_SERVICE);
    }
    let keep: CapsHashSet = keep.intersection(&have).copied().collect();
    // Effective first: it must stay within permitted.
    caps::set(None, CapSet::Effective, &keep).context("narrowing capabilities")?;
    caps::set(None, CapSet::Permitted, &keep).context("narrowing capabilities")?;
    caps::clear(None, CapSet::Inheritable).context("clearing inheritable capabilities")?;
    caps::clear(None, CapSet::Ambient).context("clearing ambient capabilities")?;
    let mut names: Vec<String> = keep.iter().map(|c| c.to_string()).collect();
    names.sort();
    crate::say(
        crate::Say::Info,
        format_args!(
            "privileges: not root; capabilities kept to open the inputs: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(",")
            }
        ),
    );
    Ok(if keep.is_empty() {
        Mode::Keep
    } else {
        Mode::Caps
    })
}

/// The capture thread's capabilities, cleared once the inputs are open.
/// Linux keeps capability sets per thread: threads started earlier (syslog
/// listeners, workers) keep the narrowed set; they are counted and named.
fn clear_caps() -> Result<(), String> {
    for set in [
        CapSet::Effective,
        CapSet::Permitted,
        CapSet::Inheritable,
        CapSet::Ambient,
    ] {
        caps::clear(None, set).map_err(|e| format!("clearing capabilities: {e}"))?;
    }
    let mut holding = 0;
    if let Ok(rd) = std::fs::read_dir("/proc/self/task") {
        for t in rd.flatten() {
            let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            let prm = s
                .lines()
                .find_map(|l| l.strip_prefix("CapPrm:"))
                .unwrap_or("0");
            if !prm.trim().trim_start_matches('0').is_empty() {
                holding += 1;
            }
        }
    }
    if holding > 0 {
        tracing::warn!(
            "privileges: capabilities cleared on the capture thread; {holding} thread(s) started before the inputs were open keep the narrowed set (run as root with `run-as.user` to drop everything)"
        );
    }
    Ok(())
}
