//! Rejects: registering them (one, many, an MO batch, a bulk import), listing them by sub-port,
//! assignment or number, exporting them.

use super::rejecttable::{key_of, number_of, NeedsGrowth};
use super::store::RejectValue;
use super::types::{Reject, RejectSource};
use super::view::Slot;
use super::Registry;
use crate::error::{Error, Result, RowError};
use crate::record::{PhoneNumber, SubPort};
use crate::retention::PurgeCtx;
use crate::time::{parse_time_ms, rfc3339_utc8};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One reject to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectInput {
    /// The sub-port the user refuses.
    pub sub_port: String,
    /// The user.
    pub number: PhoneNumber,
    /// Since when (None: now). Not in the future.
    pub at_ms: Option<i64>,
    /// Where it comes from.
    pub source: RejectSource,
    /// The reject message or a note.
    pub text: String,
    /// The assignment it binds (None: the one in force at `at_ms`).
    pub assignment: Option<u32>,
}

/// The result of registering one reject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectOutcome {
    /// The reject as stored (for a repeat: the first one, which stays).
    pub reject: Reject,
    /// False when the user had already refused under this assignment (nothing written).
    pub registered: bool,
}

/// File formats of import and export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectFormat {
    /// `number,at,source,text` with a header line (import: `number` required, the rest
    /// optional; a header line is recognised by its first field `number`).
    Csv,
    /// One object per line: `{"number","at","source","text"}` (import: `at`, `text` optional).
    JsonLines,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// The assignment the rejects were registered under.
    pub assignment: u32,
    /// Rows read.
    pub rows: u64,
    /// New rejects.
    pub registered: u64,
    /// Rows whose number had already refused (kept as they were).
    pub already: u64,
}

#[derive(serde::Deserialize)]
struct JsonRow {
    number: serde_json::Value,
    #[serde(default)]
    at: Option<serde_json::Value>,
    #[serde(default)]
    text: Option<String>,
}

fn json_str(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Registry {
    fn reject_of(&self, slot: &Slot, key: u64, v: RejectValue) -> Reject {
        Reject {
            assignment: slot.id(),
            sub_port: slot.created().sub_port.clone(),
            number: number_of(key).map(|n| n.to_string()).unwrap_or_default(),
            at_ms: v.at_ms,
            source: v.source,
            text: v.text,
        }
    }

    fn slot_for(&self, sub_port: &str, assignment: Option<u32>, at_ms: i64) -> Result<Arc<Slot>> {
        let sp = SubPort::parse(sub_port)?;
        let state = self.state.load();
        match assignment {
            Some(id) => {
                let slot = state
                    .slots
                    .get((id as usize).wrapping_sub(1))
                    .ok_or_else(|| Error::NotFound { what: "assignment", key: id.to_string() })?;
                if slot.created().sub_port != sp.as_str() {
                    return Err(Error::invalid(
                        "assignment",
                        format!("assignment {id} belongs to sub-port {}, not {sp}", slot.created().sub_port),
                    ));
                }
                Ok(slot.clone())
            }
            None => state.view.in_force(sp.as_str(), at_ms).cloned().ok_or_else(|| Error::NotFound {
                what: "assignment in force",
                key: format!("for sub-port {sp} at {}", rfc3339_utc8(at_ms)),
            }),
        }
    }

    /// Registers rejects in one durable batch: all are validated first (nothing is written if
    /// one is bad). A number that already refused under the assignment keeps its first reject.
    pub fn register_rejects(&self, inputs: &[RejectInput]) -> Result<Vec<RejectOutcome>> {
        let now = self.now_ms();
        let mut resolved = Vec::with_capacity(inputs.len());
        for inp in inputs {
            let at = inp.at_ms.unwrap_or(now);
            if at > now {
                return Err(Error::invalid("at", format!("{} is in the future", rfc3339_utc8(at))));
            }
            if inp.text.len() > self.cfg.note_bytes_max {
                return Err(Error::invalid("text", format!("longer than {} bytes", self.cfg.note_bytes_max)));
            }
            let key = key_of(inp.number)
                .ok_or_else(|| Error::invalid("number", format!("{} is not a mobile number", inp.number)))?;
            let slot = self.slot_for(&inp.sub_port, inp.assignment, at)?;
            resolved.push((slot, key, RejectValue { at_ms: at, source: inp.source, text: inp.text.clone() }));
        }
        let _w = self.writer()?;
        let mut out = Vec::with_capacity(resolved.len());
        let mut b = self.store.batch();
        let mut fresh: Vec<(Arc<Slot>, u64)> = Vec::new();
        let mut seen: HashMap<(u32, u64), usize> = HashMap::new();
        let table = self.state.load().rejects.clone();
        for (slot, key, v) in resolved {
            let id = slot.id();
            if let Some(&i) = seen.get(&(id, key)) {
                let first: &RejectOutcome = &out[i];
                out.push(RejectOutcome { reject: first.reject.clone(), registered: false });
                continue;
            }
            // The table may still hold a purged reject: the store decides.
            if table.contains(id, key) {
                if let Some(stored) = self.store.get_reject(id, key)? {
                    seen.insert((id, key), out.len());
                    out.push(RejectOutcome { reject: self.reject_of(&slot, key, stored), registered: false });
                    continue;
                }
            }
            b.reject(id, key, &v)?;
            seen.insert((id, key), out.len());
            out.push(RejectOutcome { reject: self.reject_of(&slot, key, v), registered: true });
            fresh.push((slot, key));
        }
        if fresh.is_empty() {
            return Ok(out);
        }
        self.store.write(b)?;
        // Durable: now visible to checks.
        self.insert_rejects(&fresh)?;
        Ok(out)
    }

    /// Puts durable rejects into the table (the caller holds the writer lock), growing it when
    /// it asks: the new table is built beside the old one, which readers keep using until the
    /// swap.
    fn insert_rejects(&self, fresh: &[(Arc<Slot>, u64)]) -> Result<()> {
        let mut table = self.state.load().rejects.clone();
        for (i, (slot, key)) in fresh.iter().enumerate() {
            let mut attempts = 0;
            while let Err(NeedsGrowth) = table.insert(slot.id(), *key) {
                attempts += 1;
                if attempts > 3 {
                    return Err(Error::Limit(format!(
                        "assignment id {} is beyond the reject table's range",
                        slot.id()
                    )));
                }
                let max_id = self.state.load().slots.len() as u32;
                let grown = table
                    .grown(fresh.len() - i, max_id.max(slot.id()))
                    .map_err(Error::io("map", "reject table (anonymous memory)"))?;
                table = Arc::new(grown);
                self.publish_rejects(table.clone());
            }
            slot.rejects.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The rejects of one assignment, by number.
    pub fn rejects_of_assignment(&self, id: u32) -> Result<Vec<Reject>> {
        let state = self.state.load();
        let slot = state
            .slots
            .get((id as usize).wrapping_sub(1))
            .ok_or_else(|| Error::NotFound { what: "assignment", key: id.to_string() })?;
        Ok(self.store.rejects_of(id)?.into_iter().map(|(k, v)| self.reject_of(slot, k, v)).collect())
    }

    /// The rejects of `sub_port`'s assignment in force now, or of the named assignment.
    pub fn rejects_of_sub_port(&self, sub_port: &str, assignment: Option<u32>) -> Result<Vec<Reject>> {
        let slot = self.slot_for(sub_port, assignment, self.now_ms())?;
        self.rejects_of_assignment(slot.id())
    }

    /// Every reject `number` ever made that is still kept, with whether its assignment is in
    /// force now.
    pub fn rejects_of_number(&self, number: PhoneNumber) -> Result<Vec<(Reject, bool)>> {
        let Some(key) = key_of(number) else { return Ok(Vec::new()) };
        let state = self.state.load();
        let now = self.now_ms();
        let mut out = Vec::new();
        for id in self.store.assignments_rejected_by(key)? {
            let Some(slot) = state.slots.get((id as usize).wrapping_sub(1)) else { continue };
            if let Some(v) = self.store.get_reject(id, key)? {
                out.push((self.reject_of(slot, key, v), slot.in_force(now)));
            }
        }
        out.sort_by_key(|(r, _)| r.at_ms);
        Ok(out)
    }

    /// Imports a file of rejects for `sub_port` (its assignment in force now, or the named one):
    /// every row is parsed first; if any is bad, nothing is imported and the error lists every
    /// bad row by line. Source `import`.
    pub fn import_rejects(
        &self,
        sub_port: &str,
        assignment: Option<u32>,
        input: impl BufRead,
        format: RejectFormat,
    ) -> Result<ImportReport> {
        let now = self.now_ms();
        let slot = self.slot_for(sub_port, assignment, now)?;
        let parse_row = |number: &str, at: Option<&str>, text: Option<&str>| -> Result<RejectInput> {
            let number = PhoneNumber::parse(number)?;
            let at_ms = match at.map(str::trim).filter(|s| !s.is_empty()) {
                Some(t) => Some(parse_time_ms(t).map_err(|e| Error::invalid("at", e.to_string()))?),
                None => None,
            };
            if at_ms.is_some_and(|t| t > now) {
                return Err(Error::invalid("at", "in the future"));
            }
            let text = text.unwrap_or("").to_string();
            if text.len() > self.cfg.note_bytes_max {
                return Err(Error::invalid("text", format!("longer than {} bytes", self.cfg.note_bytes_max)));
            }
            Ok(RejectInput {
                sub_port: sub_port.to_string(),
                number,
                at_ms,
                source: RejectSource::Import,
                text,
                assignment: Some(slot.id()),
            })
        };
        let mut rows: Vec<RejectInput> = Vec::new();
        let mut bad: Vec<RowError> = Vec::new();
        let mut push = |line: u64, r: Result<RejectInput>| -> Result<()> {
            match r {
                Ok(r) => rows.push(r),
                Err(e) => bad.push(RowError { line, reason: e.to_string() }),
            }
            if rows.len() + bad.len() > self.cfg.import_rows_max {
                return Err(Error::Limit(format!("more than {} rows in one import", self.cfg.import_rows_max)));
            }
            Ok(())
        };
        match format {
            RejectFormat::JsonLines => {
                for (i, line) in input.lines().enumerate() {
                    let line_no = i as u64 + 1;
                    let line = line.map_err(Error::io("read", "import input"))?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let r = match serde_json::from_str::<JsonRow>(&line) {
                        Ok(r) => {
                            let at = r.at.as_ref().map(json_str);
                            parse_row(&json_str(&r.number), at.as_deref(), r.text.as_deref())
                        }
                        Err(e) => Err(Error::invalid("row", format!("not a JSON reject row: {e}"))),
                    };
                    push(line_no, r)?;
                }
            }
            RejectFormat::Csv => {
                let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(input);
                for (i, rec) in rdr.records().enumerate() {
                    let line_no = i as u64 + 1;
                    let line_no = match &rec {
                        Ok(r) => r.position().map_or(line_no, |p| p.line()),
                        Err(e) => e.position().map_or(line_no, |p| p.line()),
                    };
                    let r = match rec {
                        Ok(r) if line_no == 1 && r.get(0).is_some_and(|f| f.trim().eq_ignore_ascii_case("number")) => {
                            continue
                        }
                        Ok(r) if r.iter().all(|f| f.trim().is_empty()) => continue,
                        Ok(r) => parse_row(r.get(0).unwrap_or(""), r.get(1), r.get(3)),
                        Err(e) => Err(Error::invalid("row", format!("bad CSV: {e}"))),
                    };
                    push(line_no, r)?;
                }
            }
        }
        if !bad.is_empty() {
            return Err(Error::BadRows { rows: bad });
        }
        let n = rows.len() as u64;
        let outcomes = self.register_rejects(&rows)?;
        let registered = outcomes.iter().filter(|o| o.registered).count() as u64;
        Ok(ImportReport { assignment: slot.id(), rows: n, registered, already: n - registered })
    }

    /// Writes the rejects of `sub_port`'s assignment in force (or the named one) to `out`;
    /// returns how many. The output imports back unchanged.
    pub fn export_rejects(
        &self,
        sub_port: &str,
        assignment: Option<u32>,
        format: RejectFormat,
        mut out: impl Write,
    ) -> Result<u64> {
        let rejects = self.rejects_of_sub_port(sub_port, assignment)?;
        let werr = |e: std::io::Error| Error::Io { op: "write", path: "export output".into(), source: e };
        match format {
            RejectFormat::JsonLines => {
                for r in &rejects {
                    let line = serde_json::json!({
                        "number": r.number, "at": rfc3339_utc8(r.at_ms), "source": r.source.as_str(), "text": r.text,
                    });
                    writeln!(out, "{line}").map_err(werr)?;
                }
            }
            RejectFormat::Csv => {
                let mut w = csv::Writer::from_writer(&mut out);
                let cerr = |e: csv::Error| Error::Io { op: "write", path: "export output".into(), source: e.into() };
                w.write_record(["number", "at", "source", "text"]).map_err(cerr)?;
                for r in &rejects {
                    w.write_record([r.number.as_str(), &rfc3339_utc8(r.at_ms), r.source.as_str(), &r.text])
                        .map_err(cerr)?;
                }
                w.flush().map_err(werr)?;
            }
        }
        Ok(rejects.len() as u64)
    }
}

impl Registry {
    /// Purges the rejects of every assignment that ended `months` ago or more (never one in
    /// force, or ended more recently): from the store in batches of `batch_rows` (each batch
    /// removes rejects with their `rejects_by_number` entries, under the writer), then the
    /// assignment's in-memory set is replaced by an empty one. Returns how many rejects went
    /// and the assignments they belonged to (a dry run counts them from memory).
    pub(crate) fn purge_rejects(&self, ctx: &PurgeCtx<'_>) -> Result<(u64, Vec<u32>)> {
        let state = self.state.load_full();
        let mut total = 0u64;
        let mut ids = Vec::new();
        for slot in &state.slots {
            if ctx.cancelled() {
                break;
            }
            if !ctx.eligible(slot.to_ms()) {
                continue;
            }
            let held = slot.rejects.load(Ordering::Relaxed);
            if held == 0 {
                continue;
            }
            let n = if ctx.dry_run { held } else { self.purge_rejects_of(slot, ctx)? };
            if n > 0 {
                total += n;
                ids.push(slot.id());
            }
        }
        if !ctx.dry_run && !ids.is_empty() {
            // Drop the purged entries from memory: one rebuild per run, under the writer (no
            // registration meanwhile). Until the swap they linger, harmlessly: a purged
            // assignment ended months ago, so no check at "now" consults it, and every other
            // path asks the store.
            let _w = self.writer()?;
            let state = self.state.load_full();
            let slots = &state.slots;
            let keep =
                |a: u32| slots.get((a as usize).wrapping_sub(1)).is_some_and(|s| s.rejects.load(Ordering::Relaxed) > 0);
            let rebuilt = state
                .rejects
                .rebuilt(keep, 0, slots.len() as u32)
                .map_err(Error::io("map", "reject table (anonymous memory)"))?;
            self.publish_rejects(Arc::new(rebuilt));
        }
        Ok((total, ids))
    }

    /// Deletes one assignment's rejects from the store in batches (each under the writer, so
    /// registrations go on between them); returns how many went.
    fn purge_rejects_of(&self, slot: &Slot, ctx: &PurgeCtx<'_>) -> Result<u64> {
        let id = slot.id();
        let mut after = None;
        let mut deleted = 0u64;
        loop {
            if ctx.cancelled() {
                // The rest goes at the next run (the engine is closing).
                slot.rejects.fetch_sub(deleted, Ordering::Relaxed);
                return Ok(deleted);
            }
            let _w = self.writer()?;
            let keys = self.store.reject_keys_of(id, after, ctx.batch_rows)?;
            if keys.is_empty() {
                break;
            }
            self.delete_rejects(id, &keys)?;
            deleted += keys.len() as u64;
            after = keys.last().copied();
        }
        // Rejects registered under this assignment meanwhile may sit behind the cursor: the
        // count (exact under the writer) says whether any did; if so, sweep from the start.
        let _w = self.writer()?;
        if slot.rejects.load(Ordering::Relaxed) > deleted {
            loop {
                let keys = self.store.reject_keys_of(id, None, ctx.batch_rows)?;
                if keys.is_empty() {
                    break;
                }
                self.delete_rejects(id, &keys)?;
                deleted += keys.len() as u64;
            }
        }
        slot.rejects.store(0, Ordering::Relaxed);
        Ok(deleted)
    }

    fn delete_rejects(&self, id: u32, keys: &[u64]) -> Result<()> {
        let mut b = self.store.batch();
        for &k in keys {
            b.delete_reject(id, k)?;
        }
        self.store.write(b)
    }
}
