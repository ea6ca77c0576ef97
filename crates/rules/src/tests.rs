use super::*;

fn one(text: &str) -> Result<Signature, Box<RuleError>> {
    parse_rule(
        text,
        Origin {
            file: "t.rules".into(),
            line: 7,
        },
    )
}

#[test]
fn content_with_hex_escapes_and_modifiers() {
    let s = one(r#"alert tcp $HOME_NET any -> any 80 (msg:"a \"q\""; content:"GET |20 2f|x\;"; nocase; depth:8; content:!"zz"; distance:0; within:10; sid:5; rev:2; classtype:trojan-activity;)"#).unwrap();
    assert_eq!(s.msg, "a \"q\"");
    assert_eq!(s.sid, 5);
    assert_eq!(s.rev, 2);
    let items = &s.buffers[0].items;
    let Item::Content(c) = &items[0] else {
        panic!()
    };
    assert_eq!(c.pattern, b"GET  /x;");
    assert!(c.nocase);
    assert_eq!(c.depth, Some(Num::Lit(8)));
    let Item::Content(c2) = &items[1] else {
        panic!()
    };
    assert!(c2.negated && c2.is_relative());
}

#[test]
fn continuation_and_comments_keep_line_numbers() {
    let text = "# comment\n\nalert ip any any -> any any (msg:\"x\"; \\\n sid:1;)\n#alert ip any any -> any any (sid:2;)\nalert udp any any -> any 53 (sid:3;)\n";
    let (sigs, errs) = parse_file(text, "f.rules");
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(sigs.len(), 2);
    assert_eq!(sigs[0].origin.line, 3);
    assert_eq!(sigs[1].origin.line, 6);
}

#[test]
fn errors_name_line_column_sid_and_keyword() {
    let text = "alert tcp any any -> any any (msg:\"x\"; luajit:foo.lua; sid:9;)\nalert tcp any any any any (sid:10;)\nalert tcp any any -> any any (content:\"|4|\"; sid:11;)\nalert tcp any any -> any any (sid:12;)\n";
    let (sigs, errs) = parse_file(text, "f.rules");
    assert_eq!(sigs.len(), 1);
    assert_eq!(errs.len(), 3);
    assert_eq!(errs[0].sid, Some(9));
    assert!(matches!(&errs[0].kind, ErrorKind::Unsupported { keyword, .. } if keyword == "luajit"));
    assert_eq!(errs[0].column, 40);
    assert!(errs[0].to_string().starts_with("f.rules:1:40 sid 9"));
    assert_eq!(errs[1].origin.line, 2);
    assert!(matches!(&errs[1].kind, ErrorKind::Syntax(m) if m.contains("direction")));
    assert!(matches!(&errs[2].kind, ErrorKind::Invalid(m) if m.contains("hex")));
}

#[test]
fn legacy_modifier_moves_content_to_buffer() {
    let s = one(r#"alert http any any -> any any (content:"GET"; http_method; content:"/x"; http_uri; content:"y"; sid:1;)"#).unwrap();
    let names: Vec<_> = s.buffers.iter().map(|b| b.buffer.as_str()).collect();
    assert_eq!(names, ["http.method", "http.uri", "pkt"]);
}

#[test]
fn flags_byte_test_and_uint_syntax() {
    let s = one("alert tcp any any -> any any (flags:S+,12; dsize:10<>20; ttl:<5; byte_test:2,!&,0x10,3,relative,little; sid:1;)").unwrap();
    assert_eq!(
        s.header_tests[0],
        HeaderTest::Flags(BitsMode::All, 2, 128 | 64)
    );
    assert_eq!(
        s.header_tests[1],
        HeaderTest::Dsize(UintCmp::Between(10, 20))
    );
    assert!(UintCmp::Between(10, 20).test(11) && !UintCmp::Between(10, 20).test(10));
    let Item::ByteTest(t) = &s.buffers[0].items[0] else {
        panic!()
    };
    assert!(t.negated && t.format.little && t.relative);
    assert_eq!(t.op, "&");
}

#[test]
fn hostile_text_never_panics() {
    for t in [
        "(",
        ")",
        "alert (;",
        "alert tcp a b -> c d (content:\"|\"",
        "alert tcp a b -> c d (\u{0}:\"\\",
        "alert ip any any -> any any (pcre:\"/\";sid:1;)",
    ] {
        let _ = parse_file(t, "x");
    }
}

/// The routing tables do not overlap (the parser's order among them would
/// otherwise decide), and every keyword of the table is routed: none is
/// reported as an unknown keyword.
#[test]
fn keyword_table_is_what_the_parser_routes() {
    let table = crate::keyword_table();
    let mut names: Vec<&str> = table.iter().map(|k| k.name).collect();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "a keyword in two tables");
    for k in &table {
        for text in [
            format!(
                "alert tcp any any -> any any (msg:\"p\"; content:\"x\"; {}; sid:1;)",
                k.name
            ),
            format!(
                "alert tcp any any -> any any (msg:\"p\"; content:\"x\"; {}:1; sid:1;)",
                k.name
            ),
        ] {
            let origin = crate::Origin {
                file: "t".into(),
                line: 1,
            };
            if let Err(e) = crate::parse_rule(&text, origin) {
                if let crate::ErrorKind::Unsupported { detail, .. } = &e.kind {
                    assert_ne!(detail, "unknown keyword", "{}: {e}", k.name);
                }
            }
        }
    }
    // And a keyword outside the tables is unknown.
    let origin = crate::Origin {
        file: "t".into(),
        line: 1,
    };
    let e = crate::parse_rule(
        "alert tcp any any -> any any (msg:\"p\"; no_such_kw; sid:1;)",
        origin,
    )
    .unwrap_err();
    assert!(
        matches!(&e.kind, crate::ErrorKind::Unsupported { detail, .. } if detail == "unknown keyword")
    );
}
