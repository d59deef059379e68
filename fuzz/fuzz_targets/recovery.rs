//! Recovery of an arbitrary data directory. A small valid directory is made once per process
//! by the engine's own log (`portlog_fuzz::build_seed_dir`: sealed and open segments in two
//! shards); each input is a list of mutations of its files (`portlog_fuzz::apply_ops`: flip,
//! truncate, set, zero, delete, rename, fix checksums, copy, append), written to a scratch
//! directory; then the log is opened and everything is read (`portlog_fuzz::exercise_log`).
//! Open must give Ok or a clean Err, reads Ok or Err, never a panic or an endless loop. The
//! untouched directory (an input shorter than one op) must open and give back every record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portlog_engine::{Log, ManualClock};
use portlog_fuzz::{OP_LEN, SEED_OPEN_RECORDS, SEED_SEALED_RECORDS};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

type Files = Vec<(PathBuf, Vec<u8>)>;

fn seed() -> &'static Files {
    static SEED: OnceLock<Files> = OnceLock::new();
    SEED.get_or_init(|| {
        let dir = portlog_fuzz::scratch("recovery-seed");
        portlog_fuzz::build_seed_dir(&dir).expect("build the seed data directory");
        let files = portlog_fuzz::snapshot(&dir).expect("read the seed data directory");
        let _ = std::fs::remove_dir_all(&dir);
        files
    })
}

fuzz_target!(|data: &[u8]| {
    let mut files = seed().clone();
    portlog_fuzz::apply_ops(&mut files, data);
    let dir = portlog_fuzz::scratch("recovery");
    portlog_fuzz::restore(&dir, &files).expect("write the scratch data directory");
    let untouched = data.len() < OP_LEN;
    match Log::open(&dir, portlog_fuzz::log_config(), Arc::new(ManualClock::new(portlog_fuzz::NOW_MS))) {
        Ok(log) => {
            let scanned = portlog_fuzz::exercise_log(&log);
            if untouched {
                assert_eq!(scanned, SEED_SEALED_RECORDS + SEED_OPEN_RECORDS, "the seed directory lost records");
            }
            log.close();
        }
        Err(e) => assert!(!untouched, "the untouched seed directory does not open: {e}"),
    }
});
