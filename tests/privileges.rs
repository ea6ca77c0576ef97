//! Least privilege: `run-as.user` through the real binary, as root. Each
//! test creates a system user (`useradd --system --no-create-home
//! zw-test-PID-RAND`, removed at the end; leftovers of earlier runs whose
//! process is gone are removed first) and checks:
//!
//! - after the drop, `/proc/PID/status` of the running sensor (and of every
//!   thread) shows the user's uid and gid in all four fields, only the
//!   user's group, and no capabilities; a syslog line sent afterwards is
//!   written to the output, which the user now owns;
//! - an output directory the user cannot write is an error at start (exit
//!   1) naming the path and the user, before anything is created;
//! - a listener on a port below 1024 is bound before the drop and still
//!   receives after it;
//! - live capture on a veth pair (far end in a namespace made here, no
//!   default route): the libpcap handle is opened as root and packets are
//!   still captured after the drop.
//!
//! Needs root (and iproute2 for the interface test); skips otherwise,
//! fails under CI=true.

mod common;

use common::netns::Veth;
use common::process::{is_root, sh, Sensor};

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// useradd/userdel lock /etc/passwd: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const RULE_ID: &str = "0b5e7a2c-0000-4000-8000-00000000d0d0";
const RULE: &str = "title: Privilege Drop Test Marker
id: 0b5e7a2c-0000-4000-8000-00000000d0d0
status: test
logsource:
    product: linux
detection:
    marker:
        - 'zonewatch-privdrop-marker'
    condition: marker
level: high
";
const MARKER_LINE: &str = "<38>Nov 20 03:15:10 gw01 test[42]: zonewatch-privdrop-marker";

/// True when the test must be skipped (not root); fails under CI=true.
fn skip() -> bool {
    if is_root() && Path::new("/usr/sbin/useradd").exists() {
        return false;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(!ci, "privilege tests need root and useradd in CI");
    eprintln!("skipped: needs root and useradd");
    true
}

/// A system user made for one test, removed on drop.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl TestUser {
    fn create() -> TestUser {
        remove_leftovers();
        let rand = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 0x100_0000;
        let name = format!("zw-test-{}-{rand:06x}", std::process::id());
        assert!(
            sh(&[
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                &name
            ]),
            "useradd {name}"
        );
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").args([flag, &name]).output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        TestUser { name, uid, gid }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        sh(&["userdel", &self.name]);
        sh(&["groupdel", &self.name]);
    }
}

/// Users `zw-test-PID-*` whose test process is gone (a run killed before
/// its clean-up).
fn remove_leftovers() {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for l in passwd.lines() {
        let name = l.split(':').next().unwrap_or_default();
        let Some(rest) = name.strip_prefix("zw-test-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !Path::new("/proc").join(pid).exists() {
            sh(&["userdel", name]);
            sh(&["groupdel", name]);
        }
    }
}

/// A directory the test user owns (mode 0750), with the marker rule.
fn user_dir(u: &TestUser) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("marker.yml"), RULE).unwrap();
    std::os::unix::fs::chown(dir.path(), Some(u.uid), Some(u.gid)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
    dir
}

/// The fields of `name` in a `/proc/.../status` text.
fn field<'a>(status: &'a str, name: &str) -> Vec<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.split_whitespace().collect())
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

fn zero(v: &[&str]) -> bool {
    v.len() == 1 && u64::from_str_radix(v[0], 16) == Ok(0)
}

/// The process and every one of its threads run as `u`, with only `u`'s
/// group and no capabilities; the main thread's bounding set is empty too.
fn assert_dropped(pid: u32, u: &TestUser) {
    let (uid, gid) = (u.uid.to_string(), u.gid.to_string());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(field(&status, "Uid:"), [uid.as_str(); 4], "{status}");
    assert_eq!(field(&status, "Gid:"), [gid.as_str(); 4], "{status}");
    assert_eq!(field(&status, "Groups:"), [gid.as_str()], "{status}");
    for f in ["CapEff:", "CapPrm:", "CapInh:", "CapAmb:", "CapBnd:"] {
        assert!(zero(&field(&status, f)), "{f} not zero: {status}");
    }
    let mut threads = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let Ok(s) = std::fs::read_to_string(t.unwrap().path().join("status")) else {
            continue;
        };
        threads += 1;
        assert_eq!(field(&s, "Uid:"), [uid.as_str(); 4], "{s}");
        assert_eq!(field(&s, "Gid:"), [gid.as_str(); 4], "{s}");
        assert_eq!(field(&s, "Groups:"), [gid.as_str()], "{s}");
        for f in ["CapEff:", "CapPrm:", "CapAmb:"] {
            assert!(zero(&field(&s, f)), "thread {f} not zero: {s}");
        }
    }
    assert!(threads > 1, "expected worker and listener threads");
}

/// The alerts of the marker rule in an output file.
fn marker_alerts(out: &Path) -> usize {
    let text = std::fs::read_to_string(out).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event_type"] == "alert" && e.to_string().contains(RULE_ID))
        .count()
}

fn send_marker(addr: &str) {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.send_to(MARKER_LINE.as_bytes(), addr).unwrap();
}

/// The run with logs only: dropped to the user, and what arrives after the
/// drop is written to the output the user now owns.
#[test]
fn drops_to_run_as_user_and_keeps_writing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if skip() {
        return;
    }
    let u = TestUser::create();
    let dir = user_dir(&u);
    let out = dir.path().join("eve.json");
    let rule = dir.path().join("marker.yml");
    let mut zw = Sensor::start(&[
        "--syslog-listen",
        "udp://127.0.0.1:0",
        "--rules",
        rule.to_str().unwrap(),
        "--set",
        &format!("run-as.user={}", u.name),
        "--output",
        out.to_str().unwrap(),
    ]);
    let listening = zw.wait_for("zonewatch: syslog: ");
    let addr = listening.rsplit(' ').next().unwrap().to_string();
    zw.wait_for("zonewatch: privileges: running as");
    assert_dropped(zw.pid(), &u);
    send_marker(&addr);
    std::thread::sleep(Duration::from_millis(500));
    let (status, err) = zw.stop();
    assert!(status.success(), "{err}");
    assert_eq!(marker_alerts(&out), 1, "{err}");
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&out).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (u.uid, u.gid),
        "output given to the user"
    );
}

/// An output directory the user cannot write: exit 1 at start, naming the
/// path and the user; nothing created.
#[test]
fn output_not_writable_by_user_fails_at_start() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if skip() {
        return;
    }
    let u = TestUser::create();
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = dir.path().join("eve.json");
    let o = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .args(["run", "--syslog-listen", "udp://127.0.0.1:0", "--set"])
        .arg(format!("run-as.user={}", u.name))
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("zonewatch: error: "), "{err}");
    assert!(
        last.contains(out.to_str().unwrap()),
        "names the output: {last}"
    );
    assert!(last.contains(&u.name), "names the user: {last}");
    assert!(!out.exists(), "nothing created before the check");
    // A group that does not exist, and run-as.group alone, are errors too.
    for set in [
        format!("run-as.user={}", u.name),
        "run-as.group=zw-no-such-group".to_string(),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
            .args(["run", "--syslog-listen", "udp://127.0.0.1:0"])
            .args(["--set", &set, "--set", "run-as.group=zw-no-such-group"])
            .arg("--output")
            .arg(dir.path().join("x.json"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("run-as"), "{err}");
    }
}

/// A free UDP port below 1024 on 127.0.0.1.
fn free_low_port() -> u16 {
    let start = 600 + (std::process::id() % 300) as u16;
    (start..1024)
        .chain(600..start)
        .find(|p| std::net::UdpSocket::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free UDP port below 1024")
}

/// A syslog port below 1024 is bound as root, before the drop, and still
/// receives after it.
#[test]
fn privileged_port_bound_before_drop_still_receives() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if skip() {
        return;
    }
    let u = TestUser::create();
    let dir = user_dir(&u);
    let out = dir.path().join("eve.json");
    let rule = dir.path().join("marker.yml");
    let port = free_low_port();
    let url = format!("udp://127.0.0.1:{port}");
    let mut zw = Sensor::start(&[
        "--syslog-listen",
        &url,
        "--rules",
        rule.to_str().unwrap(),
        "--set",
        &format!("run-as.user={}", u.name),
        "--set",
        &format!("run-as.group={}", u.name),
        "--output",
        out.to_str().unwrap(),
    ]);
    let listening = zw.wait_for("zonewatch: syslog: ");
    assert!(
        listening.ends_with(&format!("127.0.0.1:{port}")),
        "{listening}"
    );
    zw.wait_for("zonewatch: privileges: running as");
    assert_dropped(zw.pid(), &u);
    for _ in 0..3 {
        send_marker(&format!("127.0.0.1:{port}"));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (status, err) = zw.stop();
    assert!(status.success(), "{err}");
    assert_eq!(marker_alerts(&out), 3, "{err}");
}

/// Live capture: the libpcap handle is opened as root, then the process
/// drops to the user and keeps capturing on it.
#[test]
fn interface_opened_before_drop_keeps_capturing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if skip() {
        return;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(net) = Veth::create("priv", 78) else {
        assert!(!ci, "interface test needs iproute2 in CI");
        eprintln!("skipped: needs iproute2 (ip netns)");
        return;
    };
    let u = TestUser::create();
    let dir = user_dir(&u);
    let out = dir.path().join("live.json");
    let mut zw = Sensor::start(&[
        "--interface",
        &net.host_if,
        "--workers",
        "2",
        "--bpf",
        "icmp",
        "--set",
        &format!("run-as.user={}", u.name),
        "--output",
        out.to_str().unwrap(),
    ]);
    zw.wait_for("zonewatch: privileges: running as");
    assert_dropped(zw.pid(), &u);
    assert!(sh(&[
        "ip",
        "netns",
        "exec",
        &net.ns,
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "1",
        "10.250.78.1"
    ]));
    std::thread::sleep(Duration::from_millis(1500));
    let (status, err) = zw.stop();
    assert!(status.success(), "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let icmp = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event_type"] == "flow" && e["proto"] == "ICMP")
        .unwrap_or_else(|| panic!("no ICMP flow in {text}\n{err}"));
    assert_eq!(icmp["flow"]["pkts_toserver"], 3, "{icmp}");
    assert_eq!(icmp["flow"]["pkts_toclient"], 3, "{icmp}");
}
