//! A whole sealed segment file from arbitrary bytes, written to a scratch file and read back
//! through the public API (`SealedSegment`: trailer, section table, block table, blocks, the
//! sub-port and number indexes, the number filter, the dictionary). Each input is tried twice:
//! as given, then with every checksum recomputed (`portlog_fuzz::fix_sealed`), so that mutated
//! footers reach the parsers behind the checksums. Never a panic; see
//! `portlog_fuzz::exercise_sealed` for the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = portlog_fuzz::scratch("footer");
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir.join("20260510T0000-000000.seg")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(path, data).expect("write scratch segment");
    portlog_fuzz::exercise_sealed(path);
    let mut fixed = data.to_vec();
    portlog_fuzz::fix_sealed(&mut fixed);
    if fixed != data {
        std::fs::write(path, &fixed).expect("write scratch segment");
        portlog_fuzz::exercise_sealed(path);
    }
});
