//! The `portlog ingest` JSON-lines parser (client/src/ingest_parse.rs, compiled here from the
//! client's own source file so that the fuzz build needs no gRPC stack) on arbitrary text,
//! split into lines as the CLI does (trimmed, blank lines skipped). Checks: no panic; every
//! error names its cause (`malformed JSON at column N: ...` or `invalid FIELD: ...`); a line
//! that parses, written back as canonical JSON, parses to the same message.
#![no_main]

#[path = "../../client/src/ingest_parse.rs"]
#[allow(dead_code)]
mod ingest_parse;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.split_inclusive('\n').take(256) {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        match ingest_parse::parse_line(t) {
            Ok(m) => {
                let canonical = serde_json::json!({
                    "dir": m.dir.as_str(),
                    "sub_port": &m.sub_port,
                    "peer": &m.peer,
                    "ts": m.ts_ms,
                    "usage": m.usage.map(|u| u.as_str()),
                    "text": &m.text,
                })
                .to_string();
                assert_eq!(ingest_parse::parse_line(&canonical).as_ref(), Ok(&m), "{canonical}");
            }
            Err(e) => assert!(e.starts_with("malformed JSON at column ") || e.starts_with("invalid "), "{e}"),
        }
    }
});
