//! The sealer thread: turns retired open segments into sealed ones off the writers' path.
//! Protocol (crash-safe at every step): write `X.seg.tmp`, fsync it, rename to `X.seg`, fsync
//! the directory, swap the catalogue entry, unlink `X.open`, fsync the directory. Recovery
//! removes a leftover `.seg.tmp`, and an `.open` whose `.seg` exists. With the journal, a seal
//! first waits for a checkpoint covering every frame the segment holds rows of: recovery
//! replays the frames after the last checkpoint into the open segments, and must never replay
//! rows that a sealed segment already holds.

use super::journal::Handle;
use super::open_segment::OpenSegment;
use super::sealed::{write_sealed_with, SealOptions, SealedSegment};
use super::shard::{fsync_dir, seg_stem, Shard};
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;

/// Work for the sealer.
pub enum SealJob {
    /// Seal this retired open segment of `shard`; the journal LSN of its last rows (0 without a
    /// journal, or when the segment was recovered).
    Seal(Arc<Shard>, Arc<OpenSegment>, u64),
    /// Answer once every job queued before this one is done.
    Barrier(Sender<()>),
    /// Finish the queued jobs, then exit.
    Stop,
}

/// Runs the sealer until [`SealJob::Stop`] or until every sender is gone.
pub fn run(rx: Receiver<SealJob>, cfg: Arc<LogConfig>, journal: Option<Handle>) {
    while let Ok(job) = rx.recv() {
        match job {
            SealJob::Seal(shard, seg, lsn) => {
                let covered = match &journal {
                    Some(j) => j.ensure_checkpoint(lsn),
                    None => Ok(()),
                };
                if let Err(cause) = covered {
                    tracing::error!(shard = shard.id, path = %seg.path().display(), %cause, "sealing postponed to the next open: no journal checkpoint covers the segment");
                    continue;
                }
                if let Err(e) = seal(&shard, &seg, &cfg) {
                    // The open segment stays in place and readable; a restart queues it again.
                    tracing::error!(shard = shard.id, path = %seg.path().display(), error = %e, "sealing failed; the open segment is kept");
                }
            }
            SealJob::Barrier(ack) => {
                let _ = ack.send(());
            }
            SealJob::Stop => break,
        }
    }
}

/// Seals one retired open segment (no writer appends to it any more).
pub fn seal(shard: &Shard, seg: &Arc<OpenSegment>, cfg: &LogConfig) -> Result<()> {
    let h = seg.header;
    let key = (h.bucket_start_ms, h.gen);
    let stem = seg_stem(h.bucket_start_ms, h.gen, cfg.tz_offset_ms);
    let mut rows = seg.read_index().rows.to_vec();
    if rows.is_empty() {
        shard.write().open.remove(&key);
        shard.io.remove_file(seg.path()).map_err(Error::io("remove", seg.path()))?;
        return fsync_dir(&*shard.io, &shard.dir);
    }
    rows.sort_by_key(|r| (r.ts_ms, r.off));
    let tmp = shard.dir.join(format!("{stem}.seg.tmp"));
    let dst = shard.dir.join(format!("{stem}.seg"));
    let started = std::time::Instant::now();
    // Sealing encrypts with the active key, whatever the open segment's rows were.
    let cipher = shard.new_cipher(&h);
    let stats = match write_sealed_with(
        &*shard.io,
        &tmp,
        h,
        rows.iter().map(|&r| seg.read_row(r)),
        SealOptions {
            block_bytes_max: cfg.block_bytes_max,
            block_records_max: cfg.block_records_max,
            zstd_level: cfg.zstd_level,
            dict_bytes_max: cfg.zstd_dict_bytes,
            cipher: cipher.as_ref(),
            templates: cfg.text_templates,
            packed: cfg.packed_blocks,
        },
    ) {
        Ok(s) => s,
        Err(e) => {
            let _ = shard.io.remove_file(&tmp);
            return Err(e);
        }
    };
    shard.io.rename(&tmp, &dst).map_err(Error::io("rename", &tmp))?;
    fsync_dir(&*shard.io, &shard.dir)?;
    let sealed = Arc::new(SealedSegment::open_with_keys(&dst, shard.keys.clone())?);
    {
        let mut cat = shard.write();
        cat.open.remove(&key);
        cat.sealed.insert(key, sealed);
    }
    shard.io.remove_file(seg.path()).map_err(Error::io("remove", seg.path()))?;
    fsync_dir(&*shard.io, &shard.dir)?;
    tracing::info!(
        shard = shard.id,
        segment = %stem,
        records = stats.records,
        blocks = stats.blocks,
        open_bytes = seg.bytes(),
        sealed_bytes = stats.bytes,
        ms = started.elapsed().as_millis() as u64,
        "sealed segment"
    );
    Ok(())
}
