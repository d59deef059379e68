//! PostgreSQL, a throw-away server ([`crate::pg`]) on loopback, driven over its socket.
//!
//! **Client: the `postgres` crate** (rust-postgres, synchronous). It speaks the extended
//! protocol, so the check and the trace are server-side prepared statements as an SMS platform
//! would run them, and binary `COPY … FROM STDIN` for ingest; each call is timed on its own in
//! the harness. Through `psql` every query would pay a process start and a text round trip
//! that no application pays, and a per-query latency could not be measured.
//!
//! # Schema
//!
//! ```sql
//! CREATE TABLE msg (ts timestamptz NOT NULL, peer bigint NOT NULL, dir smallint NOT NULL,
//!                   usage smallint, sub_port text NOT NULL, text text NOT NULL)
//!     PARTITION BY RANGE (ts);
//! CREATE TABLE msg_2026_05 PARTITION OF msg FOR VALUES FROM ('2026-05-01 00:00+08') TO ('2026-06-01 00:00+08');
//! -- ... one partition per calendar month (UTC+8) of the workload, and one after it
//! CREATE INDEX msg_peer_ts ON msg (peer, ts);             -- the number's index, per partition
//! CREATE TABLE rejects (sub_port text NOT NULL, peer bigint NOT NULL, at timestamptz NOT NULL,
//!                       PRIMARY KEY (sub_port, peer));
//! ```
//!
//! * ingest: per group one transaction: binary `COPY msg` of the records, then
//!   `INSERT INTO rejects … SELECT * FROM unnest($1, $2, $3) ON CONFLICT DO NOTHING` for its MO
//!   "R"s, `COMMIT` (synchronous commit: durable when it returns);
//! * check: prepared `SELECT 1 FROM rejects WHERE sub_port = $1 AND peer = $2`;
//! * trace: prepared `SELECT ts, peer, dir, usage, sub_port, text FROM msg WHERE peer = $1 AND
//!   ts >= $2 AND ts < $3 ORDER BY ts`, every row decoded;
//! * expiry: `DROP TABLE msg_YYYY_MM` then `CHECKPOINT`, so that the catalogue pages the drop
//!   dirtied are written (and counted) within the measurement;
//! * settle: `VACUUM (ANALYZE)` of both tables (what autovacuum would do to a freshly loaded
//!   table: hint bits, visibility map, statistics), then `CHECKPOINT`.
//!
//! Disk: `pg_total_relation_size` of every partition (heap, index, TOAST) and of `rejects`.
//! Not counted: the WAL (`pg_wal`, kept up to `max_wal_size`) and the system catalogues; both
//! are in the report's detail with the whole data directory.
//!
//! Bytes written: the server's processes (the postmaster and every child: backend,
//! checkpointer, background writer, WAL writer, autovacuum workers), `write_bytes` of
//! `/proc/<pid>/io`, sampled every 200 ms and around each measured phase; a process that exits
//! keeps the value of its last sample (an autovacuum worker may lose up to 200 ms of writes).
//! The WAL bytes of `pg_stat_wal` are in the detail as a cross-check. Peak memory: the largest
//! sum of the server processes' PSS (proportional set size: the shared buffers counted once)
//! over the same samples; the client's own `VmHWM` is in the detail.
//!
//! The check and trace latencies include a round trip over the unix socket (two context
//! switches on a 2-core machine); portlog's and RocksDB's are function calls. That is the
//! comparison a platform faces when its store is a database server, not a like-for-like cost of
//! the lookup.

use super::procfs::{self, TreeSampler};
use super::workload::{month_start_ms, month_suffix, MONTH_MS};
use super::{Counts, Disk, Peer, Spec};
use crate::disk::dir_bytes;
use crate::pg::{find_install, PgServer};
use anyhow::{anyhow, bail, Result};
use portlog_engine::time::{add_months_ms, rfc3339_utc8, UTC8_OFFSET_MS};
use portlog_engine::{Direction, PhoneNumber, Record, SubPort, Usage};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Statement};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The PostgreSQL server and a connection to it.
pub struct PgPeer {
    server: PgServer,
    client: Client,
    sampler: TreeSampler,
    check: Statement,
    trace: Statement,
    insert_rejects: Statement,
    extra: BTreeMap<String, f64>,
}

fn time_of(ts_ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ts_ms.max(0) as u64)
}

fn usage_code(u: Option<Usage>) -> Option<i16> {
    u.map(|u| match u {
        Usage::Commercial => 1,
        Usage::Service => 2,
        Usage::Public => 3,
    })
}

impl PgPeer {
    /// Starts a server in `spec.dir` and creates the schema for the workload's months.
    pub fn open(spec: &Spec) -> Result<Self> {
        let install = find_install(spec.pg_bin.as_deref()).map_err(|e| anyhow!(e))?;
        let server = PgServer::start(&install, &spec.dir)?;
        let sampler = TreeSampler::start(server.pid(), Duration::from_millis(200));
        let mut client = Client::connect(&server.conn_string(), NoTls)?;
        let mut ddl = String::from(
            "CREATE TABLE msg (ts timestamptz NOT NULL, peer bigint NOT NULL, dir smallint NOT NULL, \
             usage smallint, sub_port text NOT NULL, text text NOT NULL) PARTITION BY RANGE (ts);\n",
        );
        // One partition per month from the first record's to one past the nominal end (record
        // times are Poisson arrivals: the last one lands a little before or after it).
        let end = spec.workload.start_ms + (spec.months * MONTH_MS) as i64;
        let mut m = month_start_ms(spec.workload.start_ms);
        while m <= end {
            let next = add_months_ms(m, 1, UTC8_OFFSET_MS);
            ddl.push_str(&format!(
                "CREATE TABLE msg_{} PARTITION OF msg FOR VALUES FROM ('{}') TO ('{}');\n",
                month_suffix(m),
                rfc3339_utc8(m),
                rfc3339_utc8(next)
            ));
            m = next;
        }
        ddl.push_str(
            "CREATE INDEX msg_peer_ts ON msg (peer, ts);\n\
             CREATE TABLE rejects (sub_port text NOT NULL, peer bigint NOT NULL, at timestamptz NOT NULL, \
             PRIMARY KEY (sub_port, peer));\n",
        );
        client.batch_execute(&ddl)?;
        let check = client
            .prepare_typed("SELECT 1 FROM rejects WHERE sub_port = $1 AND peer = $2", &[Type::TEXT, Type::INT8])?;
        let trace = client.prepare_typed(
            "SELECT ts, peer, dir, usage, sub_port, text FROM msg WHERE peer = $1 AND ts >= $2 AND ts < $3 ORDER BY ts",
            &[Type::INT8, Type::TIMESTAMPTZ, Type::TIMESTAMPTZ],
        )?;
        let insert_rejects = client.prepare_typed(
            "INSERT INTO rejects (sub_port, peer, at) SELECT * FROM unnest($1, $2, $3) ON CONFLICT DO NOTHING",
            &[Type::TEXT_ARRAY, Type::INT8_ARRAY, Type::TIMESTAMPTZ_ARRAY],
        )?;
        let mut extra = BTreeMap::new();
        extra.insert("wal_bytes_at_start".into(), 0.0);
        let mut p = Self { server, client, sampler, check, trace, insert_rejects, extra };
        let wal = p.wal_bytes()?;
        p.extra.insert("wal_bytes_at_start".into(), wal as f64);
        eprintln!("[postgres] {} in {}", p.server.install().version, p.server.data_dir().display());
        Ok(p)
    }

    fn wal_bytes(&mut self) -> Result<u64> {
        let row = self.client.query_one("SELECT wal_bytes::bigint FROM pg_stat_wal", &[])?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    fn count(&mut self, sql: &str) -> Result<u64> {
        Ok(self.client.query_one(sql, &[])?.get::<_, i64>(0).max(0) as u64)
    }
}

impl Peer for PgPeer {
    fn ingest(&mut self, group: Vec<Record>, is_reject: &[bool]) -> Result<()> {
        let mut tx = self.client.transaction()?;
        let sink = tx.copy_in("COPY msg (ts, peer, dir, usage, sub_port, text) FROM STDIN BINARY")?;
        let types = [Type::TIMESTAMPTZ, Type::INT8, Type::INT2, Type::INT2, Type::TEXT, Type::TEXT];
        let mut w = BinaryCopyInWriter::new(sink, &types);
        let (mut sps, mut peers, mut ats) = (Vec::new(), Vec::new(), Vec::new());
        for (r, &reject) in group.iter().zip(is_reject) {
            let ts = time_of(r.ts_ms);
            let peer = r.peer.as_u64() as i64;
            let dir: i16 = if r.dir == Direction::Mo { 1 } else { 0 };
            let usage = usage_code(r.usage);
            let row: [&(dyn ToSql + Sync); 6] = [&ts, &peer, &dir, &usage, &r.sub_port.as_str(), &r.text.as_str()];
            w.write(&row)?;
            if reject {
                sps.push(r.sub_port.as_str());
                peers.push(peer);
                ats.push(ts);
            }
        }
        let n = w.finish()?;
        if n != group.len() as u64 {
            bail!("postgres: COPY stored {n} of {} rows", group.len());
        }
        if !sps.is_empty() {
            tx.execute(&self.insert_rejects, &[&sps, &peers, &ats])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn settle(&mut self) -> Result<()> {
        // One statement per call: a multi-statement query is one transaction, and VACUUM
        // refuses to run inside one.
        for sql in ["VACUUM (ANALYZE) msg", "VACUUM (ANALYZE) rejects", "CHECKPOINT"] {
            self.client.batch_execute(sql)?;
        }
        Ok(())
    }

    fn counts(&mut self) -> Result<Counts> {
        Ok(Counts {
            records: self.count("SELECT count(*) FROM msg")?,
            rejects: self.count("SELECT count(*) FROM rejects")?,
        })
    }

    fn disk(&mut self) -> Result<Disk> {
        let row = self.client.query_one(
            "SELECT COALESCE(sum(pg_total_relation_size(relid)), 0)::bigint, \
                    COALESCE(sum(pg_relation_size(relid)), 0)::bigint, \
                    COALESCE(sum(pg_indexes_size(relid)), 0)::bigint, \
                    pg_total_relation_size('rejects')::bigint \
             FROM pg_partition_tree('msg')",
            &[],
        )?;
        let (msg, heap, index, rejects): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
        let data = self.server.data_dir().to_path_buf();
        let all = dir_bytes(&data, ".never")?;
        let wal = dir_bytes(&data.join("pg_wal"), ".never")?;
        let detail = BTreeMap::from([
            ("msg_heap".to_string(), heap as u64),
            ("msg_index".to_string(), index as u64),
            ("msg_total".to_string(), msg as u64),
            ("rejects_total".to_string(), rejects as u64),
            ("data_dir".to_string(), all.total),
            ("pg_wal".to_string(), wal.total),
        ]);
        Ok(Disk { bytes: (msg + rejects) as u64, detail })
    }

    fn is_denied(&mut self, sub_port: &SubPort, number: PhoneNumber) -> Result<bool> {
        let peer = number.as_u64() as i64;
        Ok(self.client.query_opt(&self.check, &[&sub_port.as_str(), &peer])?.is_some())
    }

    fn trace(&mut self, number: PhoneNumber, from_ms: i64, to_ms: i64) -> Result<u64> {
        let peer = number.as_u64() as i64;
        let rows = self.client.query(&self.trace, &[&peer, &time_of(from_ms), &time_of(to_ms)])?;
        let mut n = 0u64;
        for row in &rows {
            let (_ts, p, _dir, _usage, _sp, _text): (SystemTime, i64, i16, Option<i16>, &str, &str) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?, row.try_get(4)?, row.try_get(5)?);
            if p != peer {
                bail!("postgres: trace of {number} returned a row of {p}");
            }
            n += 1;
        }
        Ok(n)
    }

    fn expire(&mut self, from_ms: i64, _to_ms: i64) -> Result<(u64, f64)> {
        let table = format!("msg_{}", month_suffix(from_ms));
        let records = self.count(&format!("SELECT count(*) FROM {table}"))?;
        let wal = self.wal_bytes()?;
        let t = Instant::now();
        self.client.batch_execute(&format!("DROP TABLE {table}"))?;
        let drop_secs = t.elapsed().as_secs_f64();
        self.client.batch_execute("CHECKPOINT")?;
        let secs = t.elapsed().as_secs_f64();
        let wal = self.wal_bytes()?.saturating_sub(wal);
        self.extra.insert("expiry_drop_secs".into(), drop_secs);
        self.extra.insert("expiry_wal_bytes".into(), wal as f64);
        Ok((records, secs))
    }

    fn write_bytes(&mut self) -> Result<u64> {
        Ok(self.sampler.write_bytes())
    }

    fn peak_memory(&mut self) -> Result<(u64, String)> {
        let (pss, samples) = self.sampler.peak_pss();
        self.extra.insert("memory_samples".into(), samples as f64);
        self.extra.insert("client_vm_hwm_bytes".into(), procfs::status_bytes("self", "VmHWM:")? as f64);
        Ok((pss, "largest sum of the server processes' PSS, sampled every 200 ms".into()))
    }

    fn extra(&mut self) -> Result<BTreeMap<String, f64>> {
        let wal = self.wal_bytes()? as f64 - self.extra.get("wal_bytes_at_start").copied().unwrap_or(0.0);
        self.extra.insert("wal_bytes_total".into(), wal);
        Ok(self.extra.clone())
    }

    fn close(self: Box<Self>) -> Result<()> {
        let PgPeer { mut server, client, sampler, .. } = *self;
        drop(client);
        drop(sampler);
        server.stop()
    }
}
