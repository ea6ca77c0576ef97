//! `MODIFIERS` (the table in docs/rules.md) is what the compiler accepts:
//! a rule with each listed modifier loads, and the modifiers of the Sigma
//! specification that are not listed are refused as unsupported.

use std::path::Path;
use zonewatch_sigma::{RuleSet, SigmaConfig, MODIFIERS};

/// Errors of loading a one-search rule whose field test is `key: value`.
fn load(key: &str, value: &str) -> Vec<String> {
    let text = format!(
        "title: t\nid: probe\nlogsource:\n  product: linux\ndetection:\n  sel:\n    {key}: {value}\n  condition: sel\n"
    );
    let r = RuleSet::load_texts(&[(Path::new("probe.yml"), &text)], &SigmaConfig::default());
    r.errors.iter().map(|e| e.message.clone()).collect()
}

/// The modifier chain and a value a rule would use it with.
fn probe(m: &str) -> (String, &'static str) {
    match m {
        "i" | "m" | "s" => (format!("message|re|{m}"), "'a+b'"),
        "exists" => ("message|exists".into(), "true"),
        "cidr" => ("source_addr|cidr".into(), "'10.0.0.0/8'"),
        "lt" | "lte" | "gt" | "gte" => (format!("pid|{m}"), "5"),
        "re" => ("message|re".into(), "'a+b'"),
        "base64offset" => ("message|base64offset|contains".into(), "abc"),
        "wide" | "utf16le" | "utf16" => (format!("message|{m}|base64"), "abc"),
        _ => (format!("message|{m}"), "abc"),
    }
}

#[test]
fn every_listed_modifier_compiles() {
    for (m, what) in MODIFIERS {
        assert!(!what.is_empty());
        let (key, value) = probe(m);
        let errs = load(&key, value);
        assert!(errs.is_empty(), "{key}: {errs:?}");
    }
}

#[test]
fn specification_modifiers_not_listed_are_refused() {
    // The Sigma specification's value modifiers (v2.0 and the 2024 additions).
    let spec = [
        "contains",
        "startswith",
        "endswith",
        "all",
        "cased",
        "re",
        "i",
        "m",
        "s",
        "cidr",
        "exists",
        "base64",
        "base64offset",
        "wide",
        "utf16le",
        "utf16be",
        "utf16",
        "windash",
        "lt",
        "lte",
        "gt",
        "gte",
        "expand",
        "fieldref",
        "neq",
    ];
    for m in spec {
        let listed = MODIFIERS.iter().any(|(n, _)| *n == m);
        let (key, value) = probe(m);
        let errs = load(&key, value);
        if listed {
            assert!(errs.is_empty(), "{m}: {errs:?}");
        } else {
            assert!(
                errs.iter()
                    .any(|e| e.contains(&format!("unsupported modifier `{m}`"))),
                "{m} is not listed but loads: {errs:?}"
            );
        }
    }
}
