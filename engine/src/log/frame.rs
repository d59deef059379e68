//! Open-segment encoding: the file header, group-commit frames and record rows.
//! Byte layouts are in docs/format.md ("Open segment"); keep the two in step.

use crate::codec::{checksum, Reader};
use crate::crypto::{CryptoError, Purpose, SegmentCipher};
use crate::record::{Direction, PhoneNumber, Record, SubPort, Usage};

/// Magic of an open segment file.
pub const OPEN_MAGIC: [u8; 8] = *b"PLOGOPN\0";
/// Magic of a sealed segment file.
pub const SEALED_MAGIC: [u8; 8] = *b"PLOGSEG\0";
/// Format version of a plaintext segment's header.
pub const FORMAT_VERSION: u16 = 1;
/// Format version of an encrypted segment's header: flag bit 0 set, the key id in bytes 28..32.
pub const ENCRYPTED_VERSION: u16 = 2;
/// Header flag (version 2): the segment's rows, or its blocks and personal footer sections, are
/// encrypted with the key named in the header.
pub const FLAG_ENCRYPTED: u16 = 1;
/// Size of either segment file's header.
pub const HEADER_LEN: usize = 40;
/// First 4 bytes of every frame ("PLFR").
pub const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"PLFR");
/// Size of a frame header: magic, payload length, checksum.
pub const FRAME_HEADER_LEN: usize = 16;
/// Size of a row header: body length and body checksum.
pub const ROW_HEADER_LEN: usize = 8;

/// The identity a segment file carries in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Shard number.
    pub shard: u32,
    /// Start of the segment's time bucket, ms since the epoch.
    pub bucket_start_ms: i64,
    /// Generation within the bucket (several segments can hold one bucket).
    pub gen: u32,
}

impl SegmentHeader {
    /// The 40-byte header with `magic` of a plaintext segment (version 1).
    pub fn encode(&self, magic: [u8; 8]) -> [u8; HEADER_LEN] {
        self.encode_keyed(magic, None)
    }

    /// The 40-byte header with `magic`: version 1 without a key, version 2 naming `key_id`.
    pub fn encode_keyed(&self, magic: [u8; 8], key_id: Option<u32>) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&magic);
        let (version, flags) = if key_id.is_some() { (ENCRYPTED_VERSION, FLAG_ENCRYPTED) } else { (FORMAT_VERSION, 0) };
        h[8..10].copy_from_slice(&version.to_le_bytes());
        h[10..12].copy_from_slice(&flags.to_le_bytes());
        h[12..16].copy_from_slice(&self.shard.to_le_bytes());
        h[16..24].copy_from_slice(&self.bucket_start_ms.to_le_bytes());
        h[24..28].copy_from_slice(&self.gen.to_le_bytes());
        // 28..32: reserved (zero) in version 1, the key id in version 2.
        h[28..32].copy_from_slice(&key_id.unwrap_or(0).to_le_bytes());
        let c = checksum(&[&h[0..32]]);
        h[32..40].copy_from_slice(&c.to_le_bytes());
        h
    }

    /// Parses and verifies a header with `magic` (either version; the key id is dropped).
    pub fn decode(buf: &[u8], magic: [u8; 8]) -> Result<Self, &'static str> {
        Self::decode_keyed(buf, magic).map(|(h, _)| h)
    }

    /// Parses and verifies a header with `magic`: the identity, and the key id of an encrypted
    /// segment (version 2).
    pub fn decode_keyed(buf: &[u8], magic: [u8; 8]) -> Result<(Self, Option<u32>), &'static str> {
        if buf.len() < HEADER_LEN {
            return Err("file shorter than its header");
        }
        let mut r = Reader::new(&buf[..HEADER_LEN]);
        if r.array::<8>()? != magic {
            return Err("bad magic");
        }
        let version = r.u16()?;
        let flags = r.u16()?;
        let shard = r.u32()?;
        let bucket_start_ms = r.i64()?;
        let gen = r.u32()?;
        let reserved = r.u32()?;
        let stored = r.u64()?;
        if stored != checksum(&[&buf[0..32]]) {
            return Err("header checksum mismatch");
        }
        let key_id = match version {
            FORMAT_VERSION => None,
            ENCRYPTED_VERSION if flags == FLAG_ENCRYPTED => Some(reserved),
            ENCRYPTED_VERSION => return Err("version 2 header without exactly the encrypted flag"),
            _ => return Err("unsupported format version"),
        };
        Ok((Self { shard, bucket_start_ms, gen }, key_id))
    }
}

/// Packs direction and usage into the one-byte `meta` field: bit 0 is the direction (0 MT,
/// 1 MO), bits 1-2 the usage code (0 none, 1 commercial, 2 service, 3 public).
pub fn meta_byte(r: &Record) -> u8 {
    let dir = match r.dir {
        Direction::Mt => 0,
        Direction::Mo => 1,
    };
    dir | (r.usage.map_or(0, Usage::code) << 1)
}

/// Inverse of [`meta_byte`].
pub fn parse_meta(m: u8) -> Result<(Direction, Option<Usage>), &'static str> {
    if m & !0b111 != 0 {
        return Err("bad meta byte");
    }
    let dir = if m & 1 == 0 { Direction::Mt } else { Direction::Mo };
    let usage = Usage::from_code(m >> 1).ok_or("bad usage code")?;
    if (dir == Direction::Mt) != usage.is_some() {
        return Err("usage present on mo or missing on mt");
    }
    Ok((dir, usage))
}

/// Appends one row (row header + body) for `r`.
pub fn encode_row(out: &mut Vec<u8>, r: &Record) {
    let start = out.len();
    out.extend_from_slice(&[0u8; ROW_HEADER_LEN]);
    encode_body(out, r);
    finish_row(out, start);
}

/// Appends one row for `r` whose body is sealed by `cipher` as the row at file offset `row_off`
/// (of its row header): `nonce ‖ ciphertext of the plain body ‖ tag`. The row header's length
/// and checksum are those of the stored (sealed) body.
pub fn encode_row_encrypted(
    out: &mut Vec<u8>,
    r: &Record,
    cipher: &SegmentCipher,
    row_off: u64,
    scratch: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    scratch.clear();
    encode_body(scratch, r);
    let start = out.len();
    out.extend_from_slice(&[0u8; ROW_HEADER_LEN]);
    if let Err(e) = cipher.seal(Purpose::Row, row_off, scratch, out) {
        out.truncate(start);
        return Err(e);
    }
    finish_row(out, start);
    Ok(())
}

/// The plain body of a stored row body: itself, or decrypted when the segment is encrypted.
pub fn plain_body<'a>(
    body: &'a [u8],
    cipher: Option<&SegmentCipher>,
    row_off: u64,
) -> Result<std::borrow::Cow<'a, [u8]>, CryptoError> {
    match cipher {
        None => Ok(std::borrow::Cow::Borrowed(body)),
        Some(c) => c.open(Purpose::Row, row_off, body).map(std::borrow::Cow::Owned),
    }
}

/// Fills in the header of the row starting at `start` (its body is the rest of `out`).
fn finish_row(out: &mut [u8], start: usize) {
    let body_len = (out.len() - start - ROW_HEADER_LEN) as u32;
    let crc = checksum(&[&out[start + ROW_HEADER_LEN..]]) as u32;
    out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Appends the plain body of `r`'s row.
fn encode_body(out: &mut Vec<u8>, r: &Record) {
    out.extend_from_slice(&r.ts_ms.to_le_bytes());
    out.push(meta_byte(r));
    out.extend_from_slice(&r.peer.as_u64().to_le_bytes());
    let sp = r.sub_port.as_str().as_bytes();
    // Sub-ports are at most 20 bytes (validated by SubPort::parse).
    out.push(sp.len() as u8);
    out.extend_from_slice(sp);
    out.extend_from_slice(r.text.as_bytes());
}

/// Decodes a row body (after its header).
pub fn decode_row_body(body: &[u8]) -> Result<Record, &'static str> {
    let mut r = Reader::new(body);
    let ts_ms = r.i64()?;
    let (dir, usage) = parse_meta(r.u8()?)?;
    let peer = PhoneNumber::from_u64(r.u64()?).ok_or("peer out of range")?;
    let sp_len = usize::from(r.u8()?);
    let sp = std::str::from_utf8(r.bytes(sp_len)?).map_err(|_| "sub_port not utf-8")?;
    let sub_port = SubPort::parse(sp).map_err(|_| "bad sub_port")?;
    let text = std::str::from_utf8(r.bytes(r.remaining())?).map_err(|_| "text not utf-8")?;
    Ok(Record { dir, sub_port, peer, ts_ms, usage, text: text.to_owned() })
}

/// Bytes of the row at the start of `buf` (header and body) if it is all there, read from its
/// header alone: the checksum is not verified ([`split_row`] does that).
pub fn row_len(buf: &[u8]) -> Option<usize> {
    let body = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    let len = ROW_HEADER_LEN.checked_add(body)?;
    (len <= buf.len()).then_some(len)
}

/// Splits and verifies one row at the start of `buf`; returns the body and the row's length.
pub fn split_row(buf: &[u8]) -> Result<(&[u8], usize), &'static str> {
    let mut r = Reader::new(buf);
    let len = r.u32()? as usize;
    let crc = r.u32()?;
    let body = r.bytes(len)?;
    if checksum(&[body]) as u32 != crc {
        return Err("row checksum mismatch");
    }
    Ok((body, ROW_HEADER_LEN + len))
}

/// Bytes of a frame before its rows: the header and the row count.
pub const FRAME_ROWS_AT: usize = FRAME_HEADER_LEN + 4;

/// Starts a frame in `buf` (cleared, its capacity kept): room for the header and the row count,
/// which [`finish_frame`] fills in once the rows are appended after them. A writer builds its
/// frames in place this way, with no copy of the rows into a second buffer.
pub fn start_frame(buf: &mut Vec<u8>) {
    buf.clear();
    buf.resize(FRAME_ROWS_AT, 0);
}

/// Fills in the header of a frame begun with [`start_frame`] whose `count` rows follow it.
pub fn finish_frame(f: &mut [u8], count: u32) {
    debug_assert!(f.len() >= FRAME_ROWS_AT);
    let payload_len = (f.len() - FRAME_HEADER_LEN) as u32;
    f[0..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
    f[4..8].copy_from_slice(&payload_len.to_le_bytes());
    f[FRAME_HEADER_LEN..FRAME_ROWS_AT].copy_from_slice(&count.to_le_bytes());
    let c = checksum(&[&f[0..8], &f[FRAME_HEADER_LEN..]]);
    f[8..16].copy_from_slice(&c.to_le_bytes());
}

/// Builds one frame around already-encoded rows.
pub fn encode_frame(rows: &[u8], count: u32) -> Vec<u8> {
    let mut f = Vec::with_capacity(FRAME_ROWS_AT + rows.len());
    start_frame(&mut f);
    f.extend_from_slice(rows);
    finish_frame(&mut f, count);
    f
}

/// A verified frame found in a buffer.
#[derive(Debug)]
pub struct FrameView<'a> {
    /// Number of rows.
    pub count: u32,
    /// The rows, back to back.
    pub rows: &'a [u8],
    /// Total frame length including its header.
    pub len: usize,
}

/// Why a frame could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The buffer ends inside the frame: a torn tail.
    Truncated,
    /// The bytes are there but wrong.
    Bad(&'static str),
}

/// Reads and verifies the frame at the start of `buf` (at most `max_payload` bytes of payload).
pub fn read_frame(buf: &[u8], max_payload: usize) -> Result<FrameView<'_>, FrameError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Err(FrameError::Truncated);
    }
    let mut r = Reader::new(buf);
    let magic = r.u32().map_err(FrameError::Bad)?;
    if magic != FRAME_MAGIC {
        return Err(FrameError::Bad("bad frame magic"));
    }
    let len = r.u32().map_err(FrameError::Bad)? as usize;
    if !(4..=max_payload).contains(&len) {
        return Err(FrameError::Bad("frame length out of range"));
    }
    let stored = r.u64().map_err(FrameError::Bad)?;
    let payload = buf.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len).ok_or(FrameError::Truncated)?;
    if checksum(&[&buf[0..8], payload]) != stored {
        return Err(FrameError::Bad("frame checksum mismatch"));
    }
    let count = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
    Ok(FrameView { count, rows: &payload[4..], len: FRAME_HEADER_LEN + len })
}

/// Iterates the rows of a verified frame: `(offset of the row within rows, body)`.
pub fn frame_rows<'a>(f: &FrameView<'a>) -> Result<Vec<(usize, &'a [u8])>, &'static str> {
    // The count is read from the file: a row takes at least its header, so no more rows fit.
    let mut out = Vec::with_capacity((f.count as usize).min(f.rows.len() / ROW_HEADER_LEN));
    let mut pos = 0;
    for _ in 0..f.count {
        let (body, n) = split_row(&f.rows[pos..])?;
        out.push((pos, body));
        pos += n;
    }
    if pos != f.rows.len() {
        return Err("frame has bytes after its rows");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(text: &str) -> Record {
        Record {
            dir: Direction::Mt,
            sub_port: SubPort::parse("1069012345601").unwrap(),
            peer: PhoneNumber::parse("13800138000").unwrap(),
            ts_ms: 1_777_599_000_000,
            usage: Some(Usage::Commercial),
            text: text.into(),
        }
    }

    #[test]
    fn frame_round_trip_and_every_truncation_detected() {
        let mut rows = Vec::new();
        encode_row(&mut rows, &rec("【星河银行】您好。拒收请回复R"));
        encode_row(&mut rows, &rec(""));
        let f = encode_frame(&rows, 2);
        let v = read_frame(&f, 1 << 20).unwrap();
        assert_eq!(v.len, f.len());
        let got: Vec<_> = frame_rows(&v).unwrap().into_iter().map(|(_, b)| decode_row_body(b).unwrap()).collect();
        assert_eq!(got, vec![rec("【星河银行】您好。拒收请回复R"), rec("")]);
        for cut in 0..f.len() {
            assert!(read_frame(&f[..cut], 1 << 20).is_err(), "cut at {cut}");
        }
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x40;
            assert!(read_frame(&g, 1 << 20).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn header_round_trip() {
        let h = SegmentHeader { shard: 3, bucket_start_ms: -5, gen: 7 };
        let b = h.encode(OPEN_MAGIC);
        assert_eq!(SegmentHeader::decode(&b, OPEN_MAGIC).unwrap(), h);
        assert!(SegmentHeader::decode(&b, SEALED_MAGIC).is_err());
        let mut c = b;
        c[13] ^= 1;
        assert!(SegmentHeader::decode(&c, OPEN_MAGIC).is_err());
        let k = h.encode_keyed(SEALED_MAGIC, Some(9));
        assert_eq!(SegmentHeader::decode_keyed(&k, SEALED_MAGIC).unwrap(), (h, Some(9)));
        assert_eq!(SegmentHeader::decode_keyed(&b, OPEN_MAGIC).unwrap(), (h, None));
        assert_eq!(&k[8..12], &[2, 0, 1, 0]);
        assert_eq!(b[8..12], [1, 0, 0, 0], "a plaintext header is unchanged");
    }
}
