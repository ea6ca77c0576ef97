//! Rule parser and engine on arbitrary text: never panics; whatever parses
//! also compiles or is reported.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (_sigs, _errs) = zonewatch_rules::parse_file(&text, "fuzz.rules");
    let e = zonewatch_detect::Engine::from_texts(&[("fuzz.rules", &text)], &Default::default());
    let _ = e.len();
});
