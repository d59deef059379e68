//! Turns a fuzz input into the files the engine read, for a regression test that needs no
//! fuzz crate (fuzz/README.md, "A crash"):
//!
//! ```sh
//! cd fuzz
//! cargo run --release --example materialise -- footer ARTIFACT OUT.seg     # OUT.seg and OUT.fixed.seg
//! cargo run --release --example materialise -- recovery ARTIFACT OUTDIR    # the mutated data directory
//! ```
//!
//! `footer` tries each input as given, then with its checksums recomputed: both files are
//! written (the second only when it differs). `recovery` applies the input's mutations to the
//! seed directory and writes the result.

use std::path::{Path, PathBuf};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target, input, out] = args.as_slice() else {
        eprintln!("usage: materialise footer|recovery ARTIFACT OUT");
        std::process::exit(2);
    };
    let data = std::fs::read(input).expect("read the artifact");
    match target.as_str() {
        "footer" => {
            let out = Path::new(out);
            std::fs::write(out, &data).expect("write");
            println!("{}", out.display());
            let mut fixed = data.clone();
            portlog_fuzz::fix_sealed(&mut fixed);
            if fixed != data {
                let f = out.with_extension("fixed.seg");
                std::fs::write(&f, &fixed).expect("write");
                println!("{}", f.display());
            }
        }
        "recovery" => {
            let seed = portlog_fuzz::scratch("materialise-seed");
            portlog_fuzz::build_seed_dir(&seed).expect("seed directory");
            let mut files = portlog_fuzz::snapshot(&seed).expect("snapshot");
            let _ = std::fs::remove_dir_all(&seed);
            portlog_fuzz::apply_ops(&mut files, &data);
            portlog_fuzz::restore(&PathBuf::from(out), &files).expect("write the directory");
            for (p, b) in &files {
                println!("{} ({} bytes)", p.display(), b.len());
            }
        }
        other => {
            eprintln!("materialise: unknown target {other} (footer or recovery)");
            std::process::exit(2);
        }
    }
}
