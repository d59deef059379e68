//! What a trace pays per block: the mean time of `read_block_of_number` (one number's records,
//! a trace's unit of work) and of `read_block` (the whole block) over the blocks of the first
//! 40 sealed segments of shard 0 of each data directory given (e.g. `portlog-trace-bench
//! --data DIR` ones, with and without `--whole-texts`), warm.
//!
//! ```sh
//! cargo run --release --workspace --example block_read_cost -- DIR [DIR ...]
//! ```
use anyhow::Result;
use portlog_engine::log::sealed::SealedSegment;
use std::time::Instant;

fn main() -> Result<()> {
    for dir in std::env::args().skip(1) {
        let mut files = Vec::new();
        for e in std::fs::read_dir(format!("{dir}/log/shard-000"))? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "seg") {
                files.push(p);
            }
        }
        files.sort();
        let (mut peer_ns, mut whole_ns, mut blocks, mut recs) = (0u128, 0u128, 0u64, 0u64);
        for f in files.iter().take(40) {
            let s = SealedSegment::open(f)?;
            let n = s.blocks()?.len();
            for i in 0..n {
                let all = s.read_block(i)?;
                let p = all[all.len() / 2].peer.as_u64();
                let t = Instant::now();
                let got = s.read_block_of_number(i, p)?;
                peer_ns += t.elapsed().as_nanos();
                let t = Instant::now();
                let again = s.read_block(i)?;
                whole_ns += t.elapsed().as_nanos();
                blocks += 1;
                recs += again.len() as u64;
                assert!(!got.is_empty());
            }
        }
        println!(
            "{dir}: {blocks} blocks, {:.0} records each: read_block_of_number {:.1} us, read_block {:.1} us",
            recs as f64 / blocks as f64,
            peer_ns as f64 / blocks as f64 / 1e3,
            whole_ns as f64 / blocks as f64 / 1e3
        );
    }
    Ok(())
}
