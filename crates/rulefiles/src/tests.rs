use super::*;
use std::os::unix::fs::symlink;

fn touch(p: &Path) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, "x").unwrap();
}

fn names(r: &RuleFiles, root: &Path) -> Vec<String> {
    r.files
        .iter()
        .map(|(p, _)| p.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

#[test]
fn kinds_by_extension() {
    assert_eq!(Kind::of(Path::new("a/et.rules")), Some(Kind::Signatures));
    assert_eq!(Kind::of(Path::new("a/R.YML")), Some(Kind::Yaml));
    assert_eq!(Kind::of(Path::new("a/b.yaml")), Some(Kind::Yaml));
    assert_eq!(Kind::of(Path::new("a/README.md")), None);
    assert_eq!(Kind::of(Path::new("a/rules")), None);
}

#[test]
fn recursive_in_name_order_each_kind_apart() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    for f in [
        "sigma/b/z.yml",
        "sigma/a.yml",
        "detectors/scan.yaml",
        "et/emerging.rules",
        "et/README.md",
        "B.rules",
    ] {
        touch(&r.join(f));
    }
    let w = collect(&[r.to_owned()]).unwrap();
    assert_eq!(
        names(&w, r),
        [
            "B.rules",
            "detectors/scan.yaml",
            "et/emerging.rules",
            "sigma/a.yml",
            "sigma/b/z.yml"
        ]
    );
    assert_eq!(w.of(Kind::Signatures).len(), 2);
    assert_eq!(w.of(Kind::Yaml).len(), 3);
    assert!(w.skipped.is_empty(), "{:?}", w.skipped);
}

#[test]
fn symlink_loops_end_and_every_file_is_listed_once() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("rules");
    touch(&r.join("a/one.rules"));
    touch(&r.join("b/two.yml"));
    // A loop back to the top, a loop to the directory itself, a second path to `b`
    // and a second link to a file.
    symlink(&r, r.join("a/up")).unwrap();
    symlink(".", r.join("b/self")).unwrap();
    symlink(r.join("b"), r.join("c")).unwrap();
    symlink(r.join("a/one.rules"), r.join("a/again.rules")).unwrap();
    let t0 = std::time::Instant::now();
    let w = collect(&[r.clone(), r.join("b"), r.join("a/one.rules")]).unwrap();
    assert!(t0.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(names(&w, &r), ["a/again.rules", "b/two.yml"]);
    let loops: Vec<String> = w
        .skipped
        .iter()
        .map(|s| s.path.strip_prefix(&r).unwrap().display().to_string())
        .collect();
    assert_eq!(loops, ["a/up", "b/self"], "{:?}", w.skipped);
    assert!(w.skipped[0].reason.contains("loop"), "{}", w.skipped[0]);
    // `c` (a second path to b), `b` and `one.rules` given again, `one.rules` after its link.
    assert_eq!(w.repeated.len(), 4, "{:?}", w.repeated);
}

#[test]
fn what_is_too_deep_is_named() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let mut d = r.to_owned();
    for i in 0..=MAX_DEPTH {
        d = d.join(format!("d{i}"));
    }
    touch(&d.parent().unwrap().join("last.yml"));
    touch(&d.join("deep.yml"));
    touch(&d.join("deeper/deepest.rules"));
    let w = collect(&[r.to_owned()]).unwrap();
    assert_eq!(w.files.len(), 1, "{:?}", w.files);
    assert!(w.files[0]
        .0
        .ends_with(format!("d{}/last.yml", MAX_DEPTH - 1)));
    let skipped: Vec<String> = w.skipped.iter().map(|s| s.to_string()).collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped[0].contains(&format!("d{MAX_DEPTH}: directory more than 32")));
    assert!(
        skipped[1].contains("deep.yml: rule file more than 32 directory levels"),
        "{skipped:?}"
    );
}

#[test]
fn non_regular_broken_and_unknown_files() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    touch(&r.join("ok.rules"));
    symlink(r.join("missing.yml"), r.join("dangling.yml")).unwrap();
    let fifo = r.join("pipe.rules");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    touch(&t.path().join("notes.txt"));
    let w = collect(&[r.to_owned(), r.join("notes.txt")]).unwrap();
    assert_eq!(names(&w, r), ["ok.rules"]);
    let skipped: Vec<String> = w.skipped.iter().map(|s| s.to_string()).collect();
    assert!(
        skipped[0].contains("dangling.yml: cannot read"),
        "{skipped:?}"
    );
    if made {
        assert!(
            skipped[1].contains("pipe.rules: not a regular file"),
            "{skipped:?}"
        );
    }
    assert!(
        skipped.last().unwrap().contains("notes.txt: neither"),
        "{skipped:?}"
    );
    let e = collect(&[r.join("nope")]).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn collect_each_goes_on_after_a_bad_path() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    touch(&r.join("a/x.yml"));
    touch(&r.join("b/y.yml"));
    let paths = [
        r.join("a"),
        r.join("missing"),
        r.join("b"),
        r.join("a/x.yml"),
    ];
    assert!(collect(&paths).is_err());
    let (w, errors) = collect_each(&paths);
    assert_eq!(names(&w, r), ["a/x.yml", "b/y.yml"]);
    assert_eq!(w.repeated, [r.join("a/x.yml")]);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, r.join("missing"));
}
