//! Files checked against tshark, an independent decoder: the SHA-256 of
//! every `fileinfo` record zonewatch writes for HTTP equals that of an
//! object `tshark --export-objects http` writes from the same capture, and
//! every object tshark exports is one of zonewatch's files (request bodies,
//! POST forms included, as in Suricata 7), empty bodies aside.
//!
//! The captures are real HTTP downloads from `../shared/data` (an exploit
//! kit delivering Flash and CryptoWall, a DVWA session, an ARP poisoning,
//! ...) plus the city fixtures; mail attachments of the fixture are
//! checked against the message tshark exports (`--export-objects imf`),
//! decoded by Python's `email` package. Skips cleanly without tshark or
//! `../shared`; with `CI=true` either missing is a failure.

mod common;
use common::{root, run_zonewatch, shared_data};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Captures with HTTP downloads (paths under `../shared/data`).
const SHARED: &[&str] = &[
    "pcaps/chrissanders/ek_to_cryptowall4.pcapng",
    "pcaps/chrissanders/arppoison.pcapng",
    "pcaps/chrissanders/aurora.pcapng",
    "pcaps/chrissanders/dns_isp_hijack.pcapng",
    "pcaps/chrissanders/http_dvwa_clearlogin.pcapng",
    "pcaps/chrissanders/http_ip4and6.pcapng",
    "pcaps/log4shell/log4shell-rmi-pcaps/rmi-user-agent-ev0.pcap",
];

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn note(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "note: {msg}");
}

fn tshark_available() -> bool {
    let ok = Command::new("tshark")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && ci() {
        panic!("tshark is missing on CI: install it (apt-get install -y tshark)");
    }
    ok
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zw-files-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// zonewatch's `fileinfo` records of one protocol: sha256 values.
fn zonewatch_files(cap: &Path, proto: &str, tag: &str) -> BTreeSet<String> {
    let out = scratch(tag).join("eve.json");
    let text = run_zonewatch(cap, &["--checksum-checks", "none"], &out)
        .unwrap_or_else(|e| panic!("{}: {e}", cap.display()));
    let mut set = BTreeSet::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["event_type"] == "fileinfo" && v["app_proto"] == proto {
            let f = &v["fileinfo"];
            assert!(f["size"].as_u64().is_some_and(|n| n > 0), "{l}");
            set.insert(f["sha256"].as_str().unwrap().to_string());
        }
    }
    set
}

/// The objects tshark exports from a capture, as (sha256, bytes), the
/// empty ones left out.
fn tshark_objects(cap: &Path, kind: &str, tag: &str) -> Vec<Vec<u8>> {
    let dir = scratch(&format!("{tag}-{kind}"));
    let o = Command::new("tshark")
        .arg("-r")
        .arg(cap)
        .arg("-q")
        .arg("--export-objects")
        .arg(format!("{kind},{}", dir.display()))
        .output()
        .expect("tshark runs");
    assert!(o.status.success(), "tshark failed on {}", cap.display());
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let b = std::fs::read(e.path()).unwrap();
        if !b.is_empty() {
            out.push(b);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn http_file_hashes_equal_tshark_exports() {
    if !tshark_available() {
        note("tshark not found; skipped");
        return;
    }
    let mut caps: Vec<PathBuf> = vec![root().join("fixtures/attacks/city-attacks.pcap")];
    match shared_data() {
        Some(d) => caps.extend(SHARED.iter().map(|p| d.join(p))),
        None if ci() => panic!("CI=true but ../shared/data is absent"),
        None => note("../shared/data absent: fixtures only"),
    }
    let mut total = 0;
    for (i, cap) in caps.iter().enumerate() {
        let zw = zonewatch_files(cap, "http", &i.to_string());
        let ts: BTreeSet<String> = tshark_objects(cap, "http", &i.to_string())
            .iter()
            .map(|b| sha256_hex(b))
            .collect();
        let wrong: Vec<_> = zw.difference(&ts).collect();
        let missed: Vec<_> = ts.difference(&zw).collect();
        assert!(
            wrong.is_empty() && missed.is_empty(),
            "{}: zonewatch hashes tshark does not have {wrong:?}; tshark objects zonewatch missed {missed:?}",
            cap.display()
        );
        assert!(!zw.is_empty(), "{}: no HTTP files", cap.display());
        total += zw.len();
    }
    note(&format!(
        "{total} distinct HTTP files agree with tshark over {} captures",
        caps.len()
    ));
}

/// Attachments of a message, decoded by Python's standard `email`
/// package: sha256 per attachment.
fn python_attachments(eml: &[u8]) -> Option<BTreeSet<String>> {
    let prog = "import sys,email,hashlib\n\
m=email.message_from_bytes(sys.stdin.buffer.read())\n\
[print(hashlib.sha256(p.get_payload(decode=True) or b'').hexdigest()) for p in m.walk() if p.get_filename()]\n";
    let mut child = Command::new("python3")
        .args(["-c", prog])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write;
    child.stdin.take()?.write_all(eml).ok()?;
    let o = child.wait_with_output().ok()?;
    Some(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

#[test]
fn mail_attachment_hashes_equal_the_exported_messages() {
    if !tshark_available() {
        note("tshark not found; skipped");
        return;
    }
    let cap = root().join("fixtures/attacks/city-attacks.pcap");
    let zw = zonewatch_files(&cap, "smtp", "imf");
    let mut want = BTreeSet::new();
    for eml in tshark_objects(&cap, "imf", "imf") {
        match python_attachments(&eml) {
            Some(s) => want.extend(s),
            None if ci() => panic!("python3 is needed"),
            None => {
                note("python3 not found; skipped");
                return;
            }
        }
    }
    assert!(!want.is_empty(), "the fixture's mails carry attachments");
    assert_eq!(zw, want);
}
