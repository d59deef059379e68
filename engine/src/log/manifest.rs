//! The data directory's `MANIFEST`: the settings fixed at creation (format, shard count,
//! bucket length and zone), checked at every open. Plain text with a checksum line.

use crate::codec::checksum;
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::io::Io;
use std::path::Path;

const FORMAT_LINE: &str = "portlog-data-dir 1";

/// The settings a data directory was created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manifest {
    /// Number of shards.
    pub shards: u32,
    /// Bucket length, ms.
    pub bucket_ms: i64,
    /// Zone offset aligning buckets, ms.
    pub tz_offset_ms: i64,
}

impl Manifest {
    /// From a configuration.
    pub fn from_config(c: &LogConfig) -> Self {
        Self { shards: c.shards, bucket_ms: c.bucket_ms, tz_offset_ms: c.tz_offset_ms }
    }

    fn body(&self) -> String {
        format!(
            "{FORMAT_LINE}\nshards {}\nbucket_ms {}\ntz_offset_ms {}\n",
            self.shards, self.bucket_ms, self.tz_offset_ms
        )
    }

    /// Writes the manifest atomically (temporary file, fsync, rename, fsync of the directory).
    pub fn write(&self, io: &dyn Io, dir: &Path) -> Result<()> {
        let body = self.body();
        let text = format!("{body}checksum {:016x}\n", checksum(&[body.as_bytes()]));
        super::shard::replace_file(io, dir, "MANIFEST", text.as_bytes())
    }

    /// Reads `dir/MANIFEST`; `Ok(None)` when there is none (a new directory).
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join("MANIFEST");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        let bad = |d: &str| Error::corrupt(&path, 0, d.to_string());
        let (body, sum) = text.rsplit_once("checksum ").ok_or_else(|| bad("no checksum line"))?;
        if format!("{:016x}", checksum(&[body.as_bytes()])) != sum.trim() {
            return Err(bad("checksum mismatch"));
        }
        let mut lines = body.lines();
        if lines.next() != Some(FORMAT_LINE) {
            return Err(bad("unknown data directory format"));
        }
        let mut m = Manifest { shards: 0, bucket_ms: 0, tz_offset_ms: 0 };
        for l in lines {
            let (k, v) = l.split_once(' ').ok_or_else(|| bad("malformed line"))?;
            match k {
                "shards" => m.shards = v.parse().map_err(|_| bad("bad shards"))?,
                "bucket_ms" => m.bucket_ms = v.parse().map_err(|_| bad("bad bucket_ms"))?,
                "tz_offset_ms" => m.tz_offset_ms = v.parse().map_err(|_| bad("bad tz_offset_ms"))?,
                _ => return Err(bad("unknown key")),
            }
        }
        if m.shards == 0 || m.bucket_ms <= 0 {
            return Err(bad("missing settings"));
        }
        Ok(Some(m))
    }
}
