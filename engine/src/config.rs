//! Configuration of the message log: plain structs whose `Default` is the embedded default.
//! Every limit is a named value with its unit in the name.

use serde::Deserialize;

/// When a shard writer considers a batch durable, and so acknowledges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// `fdatasync` every touched segment file once per batch, then acknowledge (default).
    #[default]
    Data,
    /// `fsync` (data and all metadata) once per batch, then acknowledge.
    Full,
    /// Acknowledge once the batch is written to the page cache. NOT durable across a power
    /// loss or kernel crash (a killed process loses nothing); for bulk back-fills that can be
    /// replayed, and for measuring the cost of fsync.
    None,
}

/// Configuration of the sharded message log.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Number of shards (writer threads). Fixed when a data directory is created.
    pub shards: u32,
    /// Length of a segment's time bucket, in ms (default one day). Fixed at creation.
    pub bucket_ms: i64,
    /// Offset east of UTC of the zone whose midnight aligns buckets, in ms (default UTC+8).
    pub tz_offset_ms: i64,
    /// How far a record's time may be ahead of the engine clock, in ms (default 1 hour).
    pub future_skew_ms: i64,
    /// Durability policy of acknowledgements.
    pub sync: SyncPolicy,
    /// Extra time a writer waits to gather more appends into a batch, in µs (default 0: the
    /// batch is whatever queued up during the previous fsync).
    pub group_commit_delay_us: u64,
    /// Capacity of each shard's request channel, in requests. A full channel blocks `append`.
    pub channel_capacity: usize,
    /// Largest number of records in one group commit.
    pub batch_records_max: usize,
    /// Largest number of encoded bytes in one group commit.
    pub batch_bytes_max: usize,
    /// Largest UTF-8 text of one record, in bytes.
    pub text_bytes_max: usize,
    /// Largest number of records in one `append` call.
    pub append_records_max: usize,
    /// An open segment reaching this size is sealed and a new one started, in bytes.
    pub segment_bytes_max: u64,
    /// Uncompressed size at which a sealed segment's block is cut, in bytes (default 8 KiB: a
    /// trace decompresses one block per record it returns, so small blocks keep it fast; the
    /// segment's dictionary keeps their ratio; docs/benchmarks.md, "Trace").
    pub block_bytes_max: usize,
    /// Most records in one sealed block (default 256): a trace decodes the columns of a whole
    /// block for each record it returns, and templated blocks (`text_templates`) are small per
    /// record, so this bounds that work where the byte size would not (docs/benchmarks.md,
    /// "Space").
    pub block_records_max: usize,
    /// zstd level of sealed blocks (1-22).
    pub zstd_level: i32,
    /// Largest zstd dictionary trained per sealed segment (on its first 4 MiB of blocks) and
    /// used for all its blocks, in bytes; 0: blocks compressed alone. A dictionary lets small
    /// blocks (fast point reads: a trace decompresses one block per record it returns) keep
    /// the ratio of large ones.
    pub zstd_dict_bytes: usize,
    /// Sealed blocks store each text as a template of the segment (the text with its digit
    /// runs cut out, kept once per segment) and its digit runs (default on; docs/format.md,
    /// "Templates"); off: texts stored whole.
    pub text_templates: bool,
    /// With `text_templates`: sealed blocks are packed (default on; docs/format.md, "Packed
    /// block"): every column bit-packed against the segment's sorted sub-ports and numbers and
    /// its record shapes, no zstd over the block; off: templated blocks compressed by zstd.
    pub packed_blocks: bool,
    /// A bucket's open segment is sealed once the clock is this far past the bucket's end, in
    /// ms (default 2 hours: late delivery reports still land in the open segment).
    pub seal_grace_ms: i64,
    /// An open segment of a past bucket (a back-fill) that received nothing for this long is
    /// sealed, in ms.
    pub seal_idle_ms: i64,
    /// Most open segments a shard keeps; past it, the least recently written one is sealed.
    pub open_segments_max: usize,
    /// How often writers look for segments to seal, in ms.
    pub maintenance_interval_ms: u64,
    /// Group commit through one journal shared by all shards (default on): a batch of appends
    /// is durable after one write and one fdatasync of the journal, however many shards it
    /// touches, and the open segments are synced at checkpoints (docs/architecture.md,
    /// "Journal"). Off: each shard writer syncs every open segment its batch touched. Unused
    /// with `sync = "none"`.
    pub journal: bool,
    /// Size of each of the journal's two files, written ahead before use, in bytes.
    pub journal_file_bytes: u64,
    /// Journal bytes after which a checkpoint is taken (the open segments synced, so that the
    /// frames before it need no replay), in bytes (default 32 MiB, half a journal file: a file
    /// is covered by a checkpoint before the journal comes back to it).
    pub checkpoint_bytes: u64,
    /// With the journal: once this many bytes of an open segment are written and not yet
    /// handed to the disk, the writer starts their writeback (`sync_file_range`, no wait), so
    /// that a checkpoint's sync finds little left and stalls the journal's `fdatasync` less
    /// (docs/operations.md, "Starting"). In bytes; 0 leaves it all to the checkpoint.
    pub writeback_bytes: u64,
    /// Write the journal's frames with direct I/O (`O_DIRECT`, default on): a frame then goes
    /// from the journal's buffer to the disk without the page cache, and its `fdatasync` only
    /// flushes the device (docs/architecture.md, "Journal"). Where the file system refuses
    /// direct I/O the journal writes through the page cache, as with this off.
    pub journal_direct_io: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            shards: 4,
            bucket_ms: crate::time::DAY_MS,
            tz_offset_ms: crate::time::UTC8_OFFSET_MS,
            future_skew_ms: 3_600_000,
            sync: SyncPolicy::Data,
            group_commit_delay_us: 0,
            channel_capacity: 1024,
            batch_records_max: 16_384,
            batch_bytes_max: 8 << 20,
            text_bytes_max: 16 << 10,
            append_records_max: 100_000,
            segment_bytes_max: 128 << 20,
            block_bytes_max: 8 << 10,
            block_records_max: 256,
            zstd_level: 9,
            zstd_dict_bytes: 64 << 10,
            text_templates: true,
            packed_blocks: true,
            seal_grace_ms: 2 * 3_600_000,
            seal_idle_ms: 15 * 60_000,
            open_segments_max: 8,
            maintenance_interval_ms: 10_000,
            journal: true,
            journal_file_bytes: 64 << 20,
            checkpoint_bytes: 32 << 20,
            writeback_bytes: 1 << 20,
            journal_direct_io: true,
        }
    }
}

impl LogConfig {
    /// Checks that every value is usable; names the first one that is not.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |field: &'static str, why: &str| Err(crate::Error::invalid(field, why.to_string()));
        if self.shards == 0 || self.shards > 1024 {
            return bad("shards", "must be 1..=1024");
        }
        if self.bucket_ms < 60_000
            || crate::time::DAY_MS % self.bucket_ms != 0 && self.bucket_ms % crate::time::DAY_MS != 0
        {
            return bad("bucket_ms", "must be at least a minute and divide or be a multiple of a day");
        }
        if self.channel_capacity == 0 || self.batch_records_max == 0 || self.append_records_max == 0 {
            return bad("channel_capacity", "channel and batch limits must be positive");
        }
        if self.batch_bytes_max < 64 << 10 || self.batch_bytes_max > 256 << 20 {
            return bad("batch_bytes_max", "must be 64 KiB..=256 MiB");
        }
        if self.text_bytes_max > 1 << 20 || self.text_bytes_max + 1024 > self.batch_bytes_max {
            return bad("text_bytes_max", "must be at most 1 MiB and fit in a batch");
        }
        if self.block_bytes_max < 4096 || self.block_bytes_max > 16 << 20 {
            return bad("block_bytes_max", "must be 4 KiB..=16 MiB");
        }
        if self.block_records_max < 16 || self.block_records_max > crate::log::block::BLOCK_RECORDS_MAX {
            return bad("block_records_max", "must be 16..=1048576");
        }
        if self.segment_bytes_max < self.batch_bytes_max as u64 || self.segment_bytes_max > 4 << 30 {
            return bad("segment_bytes_max", "must be at least batch_bytes_max and at most 4 GiB");
        }
        if !(1..=22).contains(&self.zstd_level) {
            return bad("zstd_level", "must be 1..=22");
        }
        if self.zstd_dict_bytes != 0 && !(4096..=1 << 20).contains(&self.zstd_dict_bytes) {
            return bad("zstd_dict_bytes", "must be 0 (no dictionary) or 4 KiB..=1 MiB");
        }
        if self.open_segments_max == 0 {
            return bad("open_segments_max", "must be positive");
        }
        if self.future_skew_ms < 0 || self.seal_grace_ms < 0 || self.seal_idle_ms < 0 {
            return bad("future_skew_ms", "durations must not be negative");
        }
        // A frame of the journal holds at most an eighth of a file, and one record at least.
        if self.journal_file_bytes < (256 << 10).max(8 * (self.text_bytes_max as u64 + 1024))
            || self.journal_file_bytes > 4 << 30
        {
            return bad(
                "journal_file_bytes",
                "must be at least 256 KiB and 8 records of text_bytes_max, at most 4 GiB",
            );
        }
        if self.checkpoint_bytes == 0 || self.checkpoint_bytes > self.journal_file_bytes {
            return bad("checkpoint_bytes", "must be positive and at most journal_file_bytes");
        }
        Ok(())
    }

    /// Whether appends go through the journal (`journal` on, and a sync policy that syncs).
    pub fn journaled(&self) -> bool {
        self.journal && self.sync != SyncPolicy::None
    }

    /// Largest approximate bytes ([`crate::Record::approx_bytes`]) of records in one journal
    /// frame: an append above it is cut into several frames.
    pub fn journal_frame_bytes(&self) -> usize {
        self.batch_bytes_max.min((self.journal_file_bytes / 8) as usize)
    }
}

/// Encryption at rest (the `[encryption]` table): off unless a key file is named. With one, new
/// log segments, reject texts and consent records are encrypted with the file's highest key id, and every key of
/// the file decrypts (docs/operations.md, "Encryption at rest").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionConfig {
    /// The key file: lines `key <id> <64 hex digits>`, mode 600 (refused when group or others
    /// may read it). None: nothing new is encrypted, and encrypted data cannot be read.
    pub key_file: Option<std::path::PathBuf>,
}

impl EncryptionConfig {
    /// The key ring of `key_file`, if one is named.
    pub fn load(&self) -> crate::Result<Option<std::sync::Arc<crate::crypto::KeyRing>>> {
        match &self.key_file {
            None => Ok(None),
            Some(p) => Ok(Some(std::sync::Arc::new(crate::crypto::KeyRing::load(p)?))),
        }
    }
}

/// Configuration of the ledger and reject registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// MO texts that register a reject (compared trimmed, case-insensitive, full-width folded).
    pub reject_keywords: Vec<String>,
    /// `sync` on every registry write (ledger, rejects, consent, audit). Only turn off for tests
    /// and benchmarks: a reject acknowledged without it may be lost on power failure.
    pub sync: bool,
    /// Largest number of rows in one reject import.
    pub import_rows_max: usize,
    /// Largest evidence or reject text, in bytes.
    pub note_bytes_max: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            reject_keywords: vec!["R".into()],
            sync: true,
            import_rows_max: 5_000_000,
            note_bytes_max: 4096,
        }
    }
}

impl RegistryConfig {
    /// Checks the values, naming the first bad one.
    pub fn validate(&self) -> crate::Result<()> {
        if self.reject_keywords.is_empty() || self.reject_keywords.iter().any(|k| k.trim().is_empty() || k.len() > 32) {
            return Err(crate::Error::invalid("reject_keywords", "must be a non-empty list of 1-32 byte keywords"));
        }
        if self.import_rows_max == 0 || self.note_bytes_max == 0 {
            return Err(crate::Error::invalid("import_rows_max", "limits must be positive"));
        }
        Ok(())
    }
}

/// Configuration of retention: expiry of the message log by whole sealed segments, and the
/// purge of reject and consent records after their assignment's end (docs/architecture.md,
/// "Retention"). Months are calendar months in the log's zone (UTC+8 by default).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Run by itself every `interval_ms` (default on). Off: only on demand.
    pub enabled: bool,
    /// Retention in calendar months (default 5, the regulation's minimum). A record becomes
    /// eligible when the clock reaches its time plus this many months (`time::add_months_ms`).
    pub months: u32,
    /// How often the background run looks for eligible data, in ms (default 10 minutes).
    pub interval_ms: u64,
    /// Purge the rejects of an assignment `months` after its end (default on).
    pub purge_rejects: bool,
    /// Purge consent records `months` after the later of their last record (a withdrawal) and
    /// their assignment's end (default on).
    pub purge_consent: bool,
    /// Also purge ledger history events older than retention (default off: kept forever).
    pub purge_ledger_history: bool,
    /// Also purge audit entries older than retention (default off: kept forever).
    pub purge_audit: bool,
    /// Largest jump of the clock ahead of the last run's time (or, before any run, of the
    /// newest record) that retention acts on without confirmation, in ms (default 3 days).
    /// Beyond it a run is refused with [`crate::Error::ClockAhead`] and a warning: a clock set
    /// far ahead must not expire months of data at once.
    pub clock_jump_max_ms: i64,
    /// Explicit confirmation that the clock is right after a jump larger than
    /// `clock_jump_max_ms`: runs proceed while the clock is at or before this instant (RFC 3339
    /// or ms since the epoch). Unset by default.
    pub future_clock_confirm_until: Option<String>,
    /// Pause between two segment deletions, in ms (default 0): spreads the file system's work
    /// of a large expiry.
    pub delete_pause_ms: u64,
    /// Registry rows deleted per batch (default 16,384): the registry's writer (and so reject
    /// registration at ingest) waits for at most one batch at a time.
    pub purge_batch_rows: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            enabled: true,
            months: 5,
            interval_ms: 10 * 60_000,
            purge_rejects: true,
            purge_consent: true,
            purge_ledger_history: false,
            purge_audit: false,
            clock_jump_max_ms: 3 * crate::time::DAY_MS,
            future_clock_confirm_until: None,
            delete_pause_ms: 0,
            purge_batch_rows: 16_384,
        }
    }
}

impl RetentionConfig {
    /// Checks the values, naming the first bad one.
    pub fn validate(&self) -> crate::Result<()> {
        if self.months == 0 || self.months > 1200 {
            return Err(crate::Error::invalid("months", "must be 1..=1200"));
        }
        if self.interval_ms < 10 || self.interval_ms > 7 * crate::time::DAY_MS as u64 {
            return Err(crate::Error::invalid("interval_ms", "must be 10 ms..=7 days"));
        }
        if self.clock_jump_max_ms < 0 {
            return Err(crate::Error::invalid("clock_jump_max_ms", "must not be negative"));
        }
        if self.purge_batch_rows == 0 || self.purge_batch_rows > 1 << 20 {
            return Err(crate::Error::invalid("purge_batch_rows", "must be 1..=1048576"));
        }
        if self.delete_pause_ms > 60_000 {
            return Err(crate::Error::invalid("delete_pause_ms", "must be at most 60000"));
        }
        self.confirm_until_ms()?;
        Ok(())
    }

    /// `future_clock_confirm_until` parsed.
    pub fn confirm_until_ms(&self) -> crate::Result<Option<i64>> {
        match &self.future_clock_confirm_until {
            None => Ok(None),
            Some(s) => crate::time::parse_time_ms(s)
                .map(Some)
                .map_err(|e| crate::Error::invalid("future_clock_confirm_until", e)),
        }
    }
}
