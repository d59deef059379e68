//! Expiry of the message log for retention: whole sealed segments are removed, never rewritten.
//!
//! A segment goes when its whole bucket is older than the cutoff (`bucket start + bucket_ms <=
//! cutoff`), so that no record younger than the cutoff is ever removed with it. Per shard:
//!
//! 1. every chosen `X.seg` is renamed `X.seg.expired` (one atomic rename each), then the shard
//!    directory is fsynced: from here the deletion is decided, and recovery finishes it;
//! 2. the catalogue entries are removed (one short write lock): new reads no longer see them.
//!    Readers that already hold the segment keep its memory map, which stays valid after the
//!    unlink (the space is freed when the last of them drops it);
//! 3. each `X.seg.expired` is unlinked, then the directory is fsynced.
//!
//! A crash leaves each segment either as `X.seg` (in the catalogue at the next open, whole) or
//! as `X.seg.expired`/gone (not in it; `Shard::open` unlinks the leftover). Nothing is written
//! but directory entries. Open segments of an eligible bucket (a back-fill of old records) are
//! sealed first, through their writer, and removed once sealed.

use super::sealed::SealedSegment;
use super::shard::{fsync_dir, Shard, EXPIRED_SUFFIX};
use super::writer::Request;
use super::{sealer::SealJob, Log};
use crate::error::{Error, Result};
use crossbeam_channel::bounded;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One segment that retention removed, or would remove (dry run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredSegment {
    /// Shard.
    pub shard: u32,
    /// Start of its bucket, ms since the epoch.
    pub bucket_start_ms: i64,
    /// Generation within the bucket.
    pub generation: u32,
    /// File name (in the shard's directory).
    pub file: String,
    /// Records it held.
    pub records: u64,
    /// Bytes of its file.
    pub bytes: u64,
    /// Smallest record time.
    pub min_ts_ms: i64,
    /// Largest record time.
    pub max_ts_ms: i64,
    /// Still an open segment (dry run only: a real run seals it first, then removes it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open: bool,
}

/// What [`Log::expire`] asks for.
#[derive(Debug)]
pub struct ExpireOptions<'a> {
    /// Records older than this are eligible; a segment goes when its whole bucket is.
    pub cutoff_ms: i64,
    /// Only report what would go.
    pub dry_run: bool,
    /// Pause between two segment renames and between two unlinks.
    pub pause: Duration,
    /// Set to stop early (engine closing); what was removed so far is reported.
    pub cancel: &'a AtomicBool,
}

/// What [`Log::expire`] did.
#[derive(Debug, Clone, Default)]
pub struct Expiry {
    /// Segments removed (dry run: that would be), oldest bucket first per shard.
    pub segments: Vec<ExpiredSegment>,
    /// Open segments of eligible buckets handed to the sealer first (real runs).
    pub open_sealed: u64,
    /// Problems that did not stop the run.
    pub warnings: Vec<String>,
    /// Smallest record time left in the log after the run (dry run: that would be left).
    pub oldest_remaining_ms: Option<i64>,
}

impl Log {
    /// Removes every segment whose bucket ends at or before `opts.cutoff_ms` (see the module
    /// docs for the protocol). Never blocks appends: writers only wait for the catalogue's
    /// write lock while entries are removed from a map.
    pub fn expire(&self, opts: &ExpireOptions<'_>) -> Result<Expiry> {
        let bucket_ms = self.cfg.bucket_ms;
        let eligible = |bucket: i64| bucket.saturating_add(bucket_ms) <= opts.cutoff_ms;
        let mut out = Expiry::default();
        if opts.dry_run {
            for s in &self.shards {
                let cat = s.read();
                for ((bucket, gen), seg) in cat.open.iter().filter(|((b, _), _)| eligible(*b)) {
                    let ix = seg.read_index();
                    out.segments.push(ExpiredSegment {
                        shard: s.id,
                        bucket_start_ms: *bucket,
                        generation: *gen,
                        file: file_name(seg.path()),
                        records: ix.rows.len() as u64,
                        bytes: seg.bytes(),
                        min_ts_ms: ix.min_ts_ms,
                        max_ts_ms: ix.max_ts_ms,
                        open: true,
                    });
                }
                for ((bucket, gen), seg) in cat.sealed.iter().filter(|((b, _), _)| eligible(*b)) {
                    out.segments.push(entry(s.id, *bucket, *gen, seg));
                }
            }
        } else {
            self.seal_eligible_open(&eligible, &mut out)?;
            for s in &self.shards {
                if opts.cancel.load(Ordering::Acquire) {
                    break;
                }
                let victims: Vec<((i64, u32), Arc<SealedSegment>)> = s
                    .read()
                    .sealed
                    .iter()
                    .filter(|((b, _), _)| eligible(*b))
                    .map(|(k, seg)| (*k, seg.clone()))
                    .collect();
                if !victims.is_empty() {
                    expire_shard(s, victims, opts, &mut out)?;
                }
            }
        }
        out.oldest_remaining_ms = self.oldest_record_ms(|bucket| !(opts.dry_run && eligible(bucket)));
        Ok(out)
    }

    /// Smallest record time of the segments whose bucket `keep` accepts.
    fn oldest_record_ms(&self, keep: impl Fn(i64) -> bool) -> Option<i64> {
        let mut oldest: Option<i64> = None;
        let mut see = |t: i64| oldest = Some(oldest.map_or(t, |o| o.min(t)));
        for s in &self.shards {
            let cat = s.read();
            for seg in cat.sealed.iter().filter(|((b, _), seg)| keep(*b) && seg.records > 0).map(|(_, seg)| seg) {
                see(seg.min_ts_ms);
            }
            for seg in cat.open.iter().filter(|((b, _), _)| keep(*b)).map(|(_, seg)| seg) {
                let ix = seg.read_index();
                if !ix.rows.is_empty() {
                    see(ix.min_ts_ms);
                }
            }
        }
        oldest
    }

    /// Has the writers retire the open segments of eligible buckets and waits until the sealer
    /// has sealed them (or failed to: a warning, they stay open and readable).
    fn seal_eligible_open(&self, eligible: &dyn Fn(i64) -> bool, out: &mut Expiry) -> Result<()> {
        let mut acks = Vec::new();
        let mut asked = 0u64;
        for (s, tx) in self.shards.iter().zip(&self.senders) {
            let mut buckets: Vec<i64> = s.read().open.keys().map(|k| k.0).filter(|b| eligible(*b)).collect();
            buckets.dedup();
            if buckets.is_empty() {
                continue;
            }
            asked += s.read().open.keys().filter(|k| eligible(k.0)).count() as u64;
            let (atx, arx) = bounded(1);
            tx.send(Request::Retire { buckets: Some(buckets), ack: atx }).map_err(|_| Error::Closed)?;
            acks.push(arx);
        }
        if acks.is_empty() {
            return Ok(());
        }
        for a in acks {
            a.recv().map_err(|_| Error::Closed)?;
        }
        let (btx, brx) = bounded(1);
        self.sealer_tx.send(SealJob::Barrier(btx)).map_err(|_| Error::Closed)?;
        brx.recv().map_err(|_| Error::Closed)?;
        let left: usize = self.shards.iter().map(|s| s.read().open.keys().filter(|k| eligible(k.0)).count()).sum();
        out.open_sealed = asked.saturating_sub(left as u64);
        if left > 0 {
            out.warnings.push(format!(
                "{left} open segment(s) of eligible buckets are still open (a failed seal, or records still \
                 arriving for those days); they go at a later run"
            ));
        }
        Ok(())
    }
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn entry(shard: u32, bucket: i64, gen: u32, seg: &SealedSegment) -> ExpiredSegment {
    ExpiredSegment {
        shard,
        bucket_start_ms: bucket,
        generation: gen,
        file: file_name(seg.path()),
        records: seg.records,
        bytes: seg.file_bytes(),
        min_ts_ms: seg.min_ts_ms,
        max_ts_ms: seg.max_ts_ms,
        open: false,
    }
}

fn tombstone(seg: &SealedSegment) -> PathBuf {
    let name = file_name(seg.path());
    let stem = name.strip_suffix(".seg").unwrap_or(&name);
    seg.path().with_file_name(format!("{stem}{EXPIRED_SUFFIX}"))
}

/// Steps 1-3 of the module docs for one shard.
fn expire_shard(
    shard: &Shard,
    victims: Vec<((i64, u32), Arc<SealedSegment>)>,
    opts: &ExpireOptions<'_>,
    out: &mut Expiry,
) -> Result<()> {
    let mut renamed: Vec<((i64, u32), Arc<SealedSegment>, PathBuf)> = Vec::with_capacity(victims.len());
    let mut failure = None;
    for (i, (key, seg)) in victims.into_iter().enumerate() {
        if opts.cancel.load(Ordering::Acquire) {
            break;
        }
        if i > 0 && !opts.pause.is_zero() {
            std::thread::sleep(opts.pause);
        }
        let tomb = tombstone(&seg);
        if let Err(e) = shard.io.rename(seg.path(), &tomb) {
            failure = Some(Error::io("rename", seg.path())(e));
            break;
        }
        renamed.push((key, seg, tomb));
    }
    if renamed.is_empty() {
        return failure.map_or(Ok(()), Err);
    }
    // The renames are decided once durable; remove them from the catalogue either way (a
    // renamed file is no longer what the catalogue names), then report the fsync's failure.
    let synced = fsync_dir(&*shard.io, &shard.dir);
    {
        let mut cat = shard.write();
        for (key, _, _) in &renamed {
            cat.sealed.remove(key);
        }
    }
    for ((bucket, gen), seg, _) in &renamed {
        out.segments.push(entry(shard.id, *bucket, *gen, seg));
    }
    synced?;
    for (i, (_, _, tomb)) in renamed.iter().enumerate() {
        if i > 0 && !opts.pause.is_zero() {
            std::thread::sleep(opts.pause);
        }
        if let Err(e) = shard.io.remove_file(tomb) {
            // Decided and out of the catalogue: the next open finishes it.
            out.warnings.push(format!("{}: {e}; removed at the next open", tomb.display()));
        }
    }
    fsync_dir(&*shard.io, &shard.dir)?;
    tracing::info!(shard = shard.id, segments = renamed.len(), "expired sealed segments");
    failure.map_or(Ok(()), Err)
}
