//! Checks against the shared corpus (`../shared/data/logs`); skipped when it is absent.

use std::path::{Path, PathBuf};
use zonewatch_syslog::{parse, Flags, Format, Framer, ParseOptions, Timestamp, UtcOffset};

fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/logs");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: {} absent", p.display());
        None
    }
}

/// `Mmm dd HH:MM:SS` in UTC, as rsyslog's test harness prints it.
fn bsd_utc(t: Timestamp) -> String {
    const M: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let eve = t.to_eve(UtcOffset(0)); // 2026-11-25T20:30:45.123456+0000
    let m: usize = eve[5..7].parse().unwrap();
    let d: u32 = eve[8..10].parse().unwrap();
    format!("{} {:>2} {}", M[m - 1], d, &eve[11..19])
}

#[test]
fn rsyslog_parser_tests() {
    let Some(root) = shared() else { return };
    let dir = root.join("rsyslog-parser-tests");
    let opts = ParseOptions {
        sensor_offset: UtcOffset(0),
        extract_fields: true,
    };
    // Year reference for BSD timestamps: the cases are from 2003..2010.
    let reference = Timestamp::from_parts(1_262_304_000, 0); // 2010-01-01
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut checked = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        for pair in lines.chunks(2) {
            let [input, expected] = pair else { continue };
            // The harness writes TAB as `\011`; a trailing `\` is a line-continuation artifact.
            let input = input.trim_end_matches('\\').replace("\\011", "\t");
            let expected = expected.replace("#011", "\t");
            let r = parse(input.as_bytes(), reference, None, &opts);
            let mut e = expected.splitn(6, ',');
            let (pri, fac, sev, ts, host, rest) = (
                e.next().unwrap(),
                e.next().unwrap(),
                e.next().unwrap(),
                e.next().unwrap(),
                e.next().unwrap(),
                e.next().unwrap_or(""),
            );
            let ctx = format!("{}: {input:?} → {r:?}", f.display());
            assert_eq!(r.pri().to_string(), pri, "{ctx}");
            assert_eq!(r.facility_name(), fac, "{ctx}");
            assert_eq!(r.severity_name(), sev, "{ctx}");
            assert_eq!(bsd_utc(r.timestamp), ts, "{ctx}");
            match host {
                "~H" => assert_eq!(r.hostname, None, "{ctx}"),
                h => assert_eq!(r.hostname.as_deref(), Some(h), "{ctx}"),
            }
            // rest = programname,syslogtag,msg (the tag may itself contain commas). rsyslog
            // keeps the space after the tag in msg; zonewatch removes it.
            let app = r.app_name.clone().unwrap_or_default();
            if r.format == Format::Rfc5424 {
                assert_eq!(rest, format!(",{app},{}", r.message), "{ctx}");
            } else {
                assert!(rest.starts_with(&format!("{app},")), "{ctx}");
                let msg_ok = rest.ends_with(&format!(", {}", r.message))
                    || (r.message.is_empty() && rest.ends_with(','));
                assert!(msg_ok, "msg: {ctx}");
            }
            if input.starts_with('<') {
                assert!(!r.flags.contains(Flags::NO_PRI));
            } else {
                assert!(r.flags.contains(Flags::NO_PRI));
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} cases");
}

fn frames_of(bytes: &[u8]) -> Vec<(Vec<u8>, bool)> {
    let mut f = Framer::new(64 * 1024);
    let mut out = Vec::new();
    f.push(bytes, &mut |b, t| out.push((b.to_vec(), t)));
    f.finish(&mut |b, t| out.push((b.to_vec(), t)));
    out
}

#[test]
fn syslog_formats_framing_samples() {
    let Some(root) = shared() else { return };
    let d = root.join("syslog-formats");
    let opts = ParseOptions::default();
    let read = |n: &str| std::fs::read(d.join(n)).unwrap();

    let fr = frames_of(&read("rfc6587-octet-counting"));
    assert_eq!(fr.len(), 1);
    let r = parse(&fr[0].0, Timestamp(0), None, &opts);
    assert_eq!(r.format, Format::Rfc5424);
    assert_eq!(r.sd_param("SecureAuth@27389", "UserID"), Some("Tester2"));
    assert_eq!(r.message, "Found the user for retrieving user's profile");

    let fr = frames_of(&read("rfc6587-non-transparent-framing"));
    assert_eq!(fr.len(), 1);
    let r2 = parse(&fr[0].0, Timestamp(0), None, &opts);
    assert_eq!(r2, r, "both framings give the same record");

    let fr = frames_of(&read("rfc6587-octet-counting-preserve-space"));
    assert_eq!(fr.len(), 1);
    assert!(fr[0].0.ends_with(b"partition is p2 "), "{:?}", fr[0]);
    let r = parse(&fr[0].0, Timestamp(0), None, &opts);
    assert_eq!(r.app_name.as_deref(), Some("inactive"));
    assert_eq!(r.message, " partition is p2 ");

    let reference = Timestamp::from_parts(1_770_000_000, 0); // 2026-02-02
    let a = parse(&read("RFC3164"), reference, None, &opts);
    let b = parse(&read("rfc3164-skip-pri-absent"), reference, None, &opts);
    assert_eq!(a.hostname.as_deref(), Some("1.2.3.4"));
    assert_eq!(a.app_name.as_deref(), Some("apache_server"));
    assert_eq!(a.message, "test message");
    assert_eq!((a.facility, a.severity), (4, 2));
    assert_eq!(b.format, Format::Plain);
    assert_eq!(
        (b.hostname, b.app_name, b.message),
        (a.hostname, a.app_name, a.message)
    );
    assert_eq!(a.timestamp, b.timestamp);

    let c = d.join("rsyslog-fuzz-corpus");
    let r = parse(
        &std::fs::read(c.join("rfc3164-rfc3339")).unwrap(),
        reference,
        None,
        &opts,
    );
    assert_eq!(r.hostname.as_deref(), Some("host"));
    assert_eq!(r.message, "timestamp variant");
    assert!(!r.flags.contains(Flags::ZONE_INFERRED));
    let r = parse(
        &std::fs::read(c.join("rfc3164-no-pri")).unwrap(),
        reference,
        None,
        &opts,
    );
    assert_eq!(
        (r.app_name.as_deref(), r.procid.as_deref()),
        (Some("app"), Some("123"))
    );
    let r = parse(
        &std::fs::read(c.join("rfc3164-short")).unwrap(),
        reference,
        None,
        &opts,
    );
    assert!(r.flags.contains(Flags::NO_TIMESTAMP));
    assert_eq!(r.message, "x");
    let r = parse(
        &std::fs::read(c.join("rfc5424-nil")).unwrap(),
        reference,
        None,
        &opts,
    );
    assert_eq!(r.message, "minimal");
}

/// Every line of the real logs parses without panicking, and the sshd logs yield addresses.
#[test]
fn real_logs_parse() {
    let Some(root) = shared() else { return };
    let opts = ParseOptions::default();
    let reference = Timestamp::from_parts(1_120_000_000, 0); // 2005
    let mut lines = 0;
    for sub in [
        "loghub/Linux/Linux_2k.log",
        "fail2ban/sshd",
        "fail2ban/sshd-journal",
    ] {
        let text = std::fs::read(root.join(sub)).unwrap();
        let mut with_src = 0;
        let mut failures = 0;
        for l in text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty() && l[0] != b'#')
        {
            let r = parse(l, reference, None, &opts);
            lines += 1;
            let msg = r.message.to_ascii_lowercase();
            if msg.contains("failed password") || msg.contains("authentication failure;") {
                failures += 1;
                if r.field("src_host").is_some() {
                    with_src += 1;
                }
            }
            assert!(
                !r.flags.contains(Flags::NO_TIMESTAMP) || sub.contains("journal"),
                "{:?}",
                String::from_utf8_lossy(l)
            );
        }
        assert!(failures > 10, "{sub}: {failures}");
        assert!(
            with_src * 100 >= failures * 95,
            "{sub}: {with_src}/{failures} with a source"
        );
    }
    assert!(lines > 2000);
}

fn all_files(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut v: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        for e in v {
            all_files(&e, out);
        }
    } else {
        out.push(p.to_path_buf());
    }
}

/// Parsing without extraction and extracting later (`extract_fields`, what the Sigma engine does
/// when a rule needs the fields) gives exactly the record of parsing with extraction, on every
/// line of the shared corpus.
#[test]
fn deferred_extraction_equals_parse_time_extraction() {
    let Some(root) = shared() else { return };
    let mut files = Vec::new();
    all_files(&root, &mut files);
    let eager = ParseOptions::default();
    let lazy = ParseOptions {
        extract_fields: false,
        ..eager
    };
    let reference = Timestamp::from_parts(1_262_304_000, 0);
    let (mut n, mut with_fields) = (0, 0);
    for f in files {
        let Ok(text) = std::fs::read(&f) else {
            continue;
        };
        for l in text.split(|&b| b == b'\n') {
            let a = parse(l, reference, None, &eager);
            let mut b = parse(l, reference, None, &lazy);
            assert!(b.fields.is_empty());
            zonewatch_syslog::extract_fields(&mut b);
            assert_eq!(a, b, "{}: {}", f.display(), String::from_utf8_lossy(l));
            n += 1;
            with_fields += usize::from(!a.fields.is_empty());
        }
    }
    assert!(n > 15_000 && with_fields > 1_000, "{n} {with_fields}");
}
