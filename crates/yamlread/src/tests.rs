use super::tree::{documents, Document, Kind, Node, Scalar};
use super::*;
use yaml_rust2::{yaml::Hash, Yaml, YamlLoader};

fn to_yaml(n: &Node<Scalar>) -> Yaml {
    fn scalar(s: &Scalar) -> Yaml {
        match s {
            Scalar::Null => Yaml::Null,
            Scalar::Bool(b) => Yaml::Boolean(*b),
            Scalar::Int(i) => Yaml::Integer(*i),
            Scalar::Real(r) => Yaml::Real(r.clone()),
            Scalar::Str(s) => Yaml::String(s.clone()),
            Scalar::Bad => Yaml::BadValue,
        }
    }
    match &n.kind {
        Kind::Scalar(s) => scalar(s),
        Kind::Seq(v) => Yaml::Array(v.iter().map(to_yaml).collect()),
        Kind::Map(e) => {
            let mut h = Hash::new();
            for (k, _, v) in e {
                h.insert(scalar(k), to_yaml(v));
            }
            Yaml::Hash(h)
        }
    }
}

/// The typed documents as `Yaml` values, to compare them with `YamlLoader`'s.
fn load_docs(text: &str, limits: &Limits) -> Result<Vec<Yaml>, Error> {
    Ok(documents(text, limits)?
        .iter()
        .map(|d| d.root.as_ref().map_or(Yaml::BadValue, to_yaml))
        .collect())
}

fn events(text: &str) -> Result<Vec<(Event, usize)>, Error> {
    let mut out = Vec::new();
    read(text, &LIMITS, &mut |ev, line| {
        out.push((ev, line));
        Ok(())
    })?;
    Ok(out)
}

/// A bomb of `levels` levels, each a list of ten aliases of the level below: 10^levels
/// nodes once expanded, from a few hundred bytes.
fn bomb(levels: usize) -> String {
    let mut s = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..=levels {
        let p = i - 1;
        s.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    s
}

#[test]
fn same_documents_as_yaml_loader_for_ordinary_files() {
    let texts = [
        "title: t\nid: 1234\nlevel: high\ntags: [attack.t1110, attack.credential_access]\ndetection:\n  sel:\n    message|contains:\n      - 'Failed password'\n      - \"Invalid user\"\n    pid: 42\n    ok: true\n    ratio: 1.5\n    nothing: ~\n    empty:\n  condition: sel\n",
        "---\na: 1\n---\nb: [x, {c: d}]\n...\n",
        "x: !!int 12\ny: !!str 13\nz: !!float 1e3\nw: !!bool True\nv: !custom q\nhex: 0x1f\noct: 0o17\nplus: +5\n",
        "- a\n- - b\n  - c\n- {k: v, k2: [1, 2]}\n",
        "plain scalar at top\n",
        "",
        "# only a comment\n",
        "key: |\n  literal\n  block\nfolded: >\n  a\n  b\n",
        "base: &b {x: 1, y: [2, 3]}\nuse: *b\nlist: [&s str, *s]\n",
    ];
    for t in texts {
        let ours = load_docs(t, &LIMITS).unwrap_or_else(|e| panic!("{t:?}: {e}"));
        let theirs = YamlLoader::load_from_str(t).unwrap();
        assert_eq!(ours, theirs, "{t:?}");
    }
}

#[test]
fn same_documents_as_yaml_loader_for_the_projects_rule_and_config_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("zonewatch.example.yaml")];
    let mut dirs = vec![root.join("rules"), root.join("fixtures")];
    // SigmaHQ's rules and Suricata's files in the shared corpus, when present.
    for d in ["../shared/data/sigma", "../shared/data/rules"] {
        if root.join(d).is_dir() {
            dirs.push(root.join(d));
        }
    }
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 20, "{files:?}");
    for f in files {
        let t = std::fs::read_to_string(&f).unwrap();
        match YamlLoader::load_from_str(&t) {
            Ok(theirs) => assert_eq!(load_docs(&t, &LIMITS).unwrap(), theirs, "{f:?}"),
            Err(e) => {
                let ours = load_docs(&t, &LIMITS).unwrap_err();
                assert_eq!(ours.line, e.marker().line().max(1), "{f:?}");
            }
        }
    }
}

#[test]
fn lines_are_kept_and_aliases_carry_the_line_of_their_use() {
    let ev = events("sensor:\n  name: &n city-a\n  tenant: *n\n").unwrap();
    let scalars: Vec<(String, usize)> = ev
        .iter()
        .filter_map(|(e, l)| match e {
            Event::Scalar(s, _, aid, _) => {
                assert_eq!(*aid, 0, "anchor ids are stripped");
                Some((s.clone(), *l))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        scalars,
        [
            ("sensor".into(), 1),
            ("name".into(), 2),
            ("city-a".into(), 2),
            ("tenant".into(), 3),
            ("city-a".into(), 3)
        ]
    );
    assert!(!ev.iter().any(|(e, _)| matches!(e, Event::Alias(_))));
}

#[test]
fn a_billion_laughs_is_refused_quickly_with_the_line_of_the_alias() {
    let text = bomb(9);
    assert!(text.len() < 1024, "{}", text.len());
    let t0 = std::time::Instant::now();
    let e = load_docs(&text, &LIMITS).unwrap_err();
    assert!(t0.elapsed() < std::time::Duration::from_secs(2));
    // Aliases at levels 1 and 2 make 1,220 nodes; the eighth `*a2` (1,111 nodes each)
    // passes 10,000.
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("alias *a2"), "{e}");
    assert!(e.message.contains("10000 nodes"), "{e}");
    // The same file within the budget: three levels are fine.
    let small = load_docs(&bomb(2), &LIMITS).unwrap();
    assert_eq!(small[0]["a2"].as_vec().unwrap().len(), 10);
}

#[test]
fn long_scalars_count_as_bytes() {
    let big = "x".repeat(20_000);
    let mut text = format!("a: &a \"{big}\"\nb: [");
    for _ in 0..60 {
        text.push_str("*a, ");
    }
    text.push_str("*a]\n");
    let e = load_docs(&text, &LIMITS).unwrap_err();
    assert!(e.message.contains("bytes"), "{e}");
    assert_eq!(e.line, 2);
    let ok = format!("a: &a \"{big}\"\nb: [*a, *a]\n");
    assert_eq!(
        load_docs(&ok, &LIMITS).unwrap(),
        YamlLoader::load_from_str(&ok).unwrap()
    );
}

#[test]
fn deep_nesting_is_refused() {
    let text = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let e = load_docs(&text, &LIMITS).unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("128 levels"), "{e}");
    let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert!(load_docs(&ok, &LIMITS).is_ok());
    // Block style, one level per line.
    let block: String = (0..200).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
    let e = load_docs(&block, &LIMITS).unwrap_err();
    assert_eq!(e.line, 129, "{e}");
    // A nested alias counts its own depth.
    let e = load_docs(
        &format!(
            "a: &a {}{}\nb: {}*a{}\n",
            "[".repeat(100),
            "]".repeat(100),
            "[".repeat(100),
            "]".repeat(100)
        ),
        &LIMITS,
    )
    .unwrap_err();
    assert_eq!(e.line, 2, "{e}");
}

#[test]
fn recursive_and_cross_document_aliases_are_errors() {
    let e = load_docs("a: &a [1, *a]\n", &LIMITS).unwrap_err();
    assert!(e.message.contains("recursive"), "{e}");
    let e = load_docs("a: &a 1\n---\nb: *a\n", &LIMITS).unwrap_err();
    assert_eq!(e.line, 3, "{e}");
}

#[test]
fn syntax_errors_name_the_line() {
    let e = load_docs("a: 1\nb: [1, 2\n", &LIMITS).unwrap_err();
    assert!(e.line >= 2, "{e}");
    assert!(e.message.starts_with("YAML syntax error"), "{e}");
    let e = load_docs("a: 1\nb: 2\na: 3\n", &LIMITS).unwrap_err();
    assert!(e.message.contains("duplicated key"), "{e}");
}

#[test]
fn tighter_limits_apply() {
    let l = Limits {
        alias_nodes: 3,
        ..LIMITS
    };
    assert!(load_docs("a: &a [1, 2]\nb: *a\n", &l).is_ok());
    assert!(load_docs("a: &a [1, 2]\nb: *a\nc: *a\n", &l).is_err());
}

#[test]
fn files_are_read_within_the_size_limit() {
    let dir = std::env::temp_dir().join(format!("zw-yamlread-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ok = dir.join("ok.yaml");
    std::fs::write(&ok, "a: 1\n").unwrap();
    assert_eq!(read_file(&ok).unwrap(), b"a: 1\n");
    let big = dir.join("big.yaml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(MAX_FILE_BYTES + 1).unwrap();
    let e = read_file(&big).unwrap_err();
    assert!(e.to_string().contains("larger than 16 MiB"), "{e}");
    assert!(read_file(&dir).is_err());
    let e = read_file(std::path::Path::new("/dev/zero")).unwrap_err();
    assert!(e.to_string().contains("larger than 16 MiB"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_document_with_its_start_line() {
    let text = "# comment\n\ntitle: a\nid: 1\n---\ntitle: b\n--- # c\n---\n- x\n...\n";
    let docs = documents(text, &LIMITS).unwrap();
    let lines: Vec<usize> = docs.iter().map(|d| d.line).collect();
    assert_eq!(lines, [3, 5, 7, 8]);
    assert_eq!(docs[0].root.as_ref().unwrap().get("id").unwrap().line, 4);
    assert_eq!(docs[1].root.as_ref().unwrap().entry("title").unwrap().0, 6);
    // An empty document is a null scalar, as YamlLoader has it.
    let empty = docs[2].root.as_ref().unwrap();
    assert_eq!(empty.scalar(), Some(&Scalar::Null));
    assert!(matches!(docs[3].root.as_ref().unwrap().kind, Kind::Seq(_)));
    let lead = documents("---\na: 1\n", &LIMITS).unwrap();
    assert_eq!(lead.len(), 1);
    assert_eq!(lead[0].line, 1);
    assert!(documents("", &LIMITS).unwrap().is_empty());
    assert!(documents("# only\n", &LIMITS).unwrap().is_empty());
}

#[test]
fn scalars_are_typed_by_style_and_tag() {
    let text = "a: 1\nb: '1'\nc: \"1\"\nd: null\ne: 'null'\nf: ~\ng:\nh: true\ni: 'true'\nj: 1.5\nk: 0x10\nl: !!str 2\nm: !!int x\nn: |\n  7\no: TRUE\np: yes\n";
    let doc = &documents(text, &LIMITS).unwrap()[0];
    let root = doc.root.as_ref().unwrap();
    let s = |k: &str| root.get(k).unwrap().scalar().unwrap().clone();
    assert_eq!(s("a"), Scalar::Int(1));
    assert_eq!(s("b"), Scalar::Str("1".into()));
    assert_eq!(s("c"), Scalar::Str("1".into()));
    assert_eq!(s("d"), Scalar::Null);
    assert_eq!(s("e"), Scalar::Str("null".into()));
    assert_eq!(s("f"), Scalar::Null);
    assert_eq!(s("g"), Scalar::Null);
    assert_eq!(s("h"), Scalar::Bool(true));
    assert_eq!(s("i"), Scalar::Str("true".into()));
    assert_eq!(s("j"), Scalar::Real("1.5".into()));
    assert_eq!(s("k"), Scalar::Int(16));
    assert_eq!(s("l"), Scalar::Str("2".into()));
    assert_eq!(s("m"), Scalar::Bad);
    assert_eq!(s("n"), Scalar::Str("7\n".into()));
    assert_eq!(s("o"), Scalar::Bool(true));
    assert_eq!(s("p"), Scalar::Str("yes".into()));
    assert_eq!(root.get("k").unwrap().text().as_deref(), Some("16"));
    assert_eq!(root.get("d").unwrap().text(), None);
    // Keys are typed too: `1` and `'1'` are different keys, `1` twice is an error.
    let two = documents("1: a\n'1': b\n", &LIMITS).unwrap();
    assert!(two[0].root.as_ref().unwrap().get("1").is_some());
    let e = documents("x: 1\n1: a\ny: 2\n1: b\n", &LIMITS).unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("duplicated key"), "{e}");
}

#[test]
fn the_untyped_tree_is_unchanged() {
    // Configuration and detector files: scalars as written, `~`/`null` empty, the first
    // document only, repeated keys kept.
    let t = tree::parse("a: 1\nb: 'x'\nc: ~\nd: null\na: 2\n---\nz: 1\n")
        .unwrap()
        .unwrap();
    let Kind::Map(e) = &t.kind else { panic!() };
    let flat: Vec<(&str, usize, Option<&str>)> = e
        .iter()
        .map(|(k, l, n)| (k.as_str(), *l, n.as_scalar()))
        .collect();
    assert_eq!(
        flat,
        [
            ("a", 1, Some("1")),
            ("b", 2, Some("x")),
            ("c", 3, Some("")),
            ("d", 4, Some("")),
            ("a", 5, Some("2"))
        ]
    );
    let _: Option<Document> = None;
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap stand-in for the fuzz target: mutations of a rule-like text.
    let base = b"title: t\nid: &i x\ndetection:\n  s: {a: [1, *i, 'q', \"r\"]}\n  condition: s\n---\n- ? [k]\n  : v\n";
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        let mut b = base.to_vec();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed % b.len() as u64) as usize;
            b[i] = b"[]{}:-?*&!|>'\"#,\n x0"[(seed >> 32) as usize % 20];
        }
        let t = String::from_utf8_lossy(&b);
        let _ = documents(&t, &LIMITS);
        let _ = tree::parse(&t);
    }
}
