//! Text templates of a sealed segment: a text with its runs of ASCII digits cut out.
//!
//! Port SMS are templated: a provider sends the same sentence with a different amount, code or
//! date (`【星河银行】您的验证码为123456，5分钟内有效…`). The sealer splits each text into its
//! template (the text with every maximal run of ASCII digits replaced by the byte [`HOLE`]) and
//! its digit runs; a block stores a template id per record, the runs' lengths and their digits
//! in columns of their own, and the segment stores each distinct template once (footer section kind 6). zstd then
//! compresses what varies without the sentence around it. The idea is that of CLP's "log types"
//! (Rodrigues et al., OSDI 2021): keep what repeats apart from what varies. Layout:
//! docs/format.md, "Templates".
//!
//! Splitting is lossless: a text holding the byte [`HOLE`] itself, or longer than
//! [`TEMPLATE_BYTES_MAX`], is stored literally, and so is every new template once the
//! segment's table holds [`TABLE_BYTES_MAX`] bytes (which bounds the sealer's memory and the
//! table a reader keeps per segment).

use crate::codec::{put_varint, Reader};
use std::collections::HashMap;
use std::io::Read;

/// The byte that stands for one run of digits in a template (U+0001, a control character
/// that SMS texts do not carry; a text holding it is stored literally).
pub const HOLE: u8 = 0x01;
/// Longest text, in bytes, that is split into a template: a longer one (a long concatenated
/// SMS) is mostly unique and stored literally.
pub const TEMPLATE_BYTES_MAX: usize = 1024;
/// Most template bytes a segment's table holds; later new templates are stored literally.
pub const TABLE_BYTES_MAX: usize = 1 << 20;
/// Most templates in one table (each at least one byte).
const TABLE_COUNT_MAX: usize = TABLE_BYTES_MAX;
/// zstd level of the table section (it is small and written once per segment).
const TABLE_ZSTD_LEVEL: i32 = 19;

/// Whether `text` can be split into a template and runs.
pub fn splittable(text: &str) -> bool {
    text.len() <= TEMPLATE_BYTES_MAX && !text.as_bytes().contains(&HOLE)
}

/// Splits a [`splittable`] `text`: its template goes to `tpl` (cleared first), the length of
/// each of its digit runs to `run_lens`, their digits to `digits`.
pub fn split(text: &str, tpl: &mut Vec<u8>, run_lens: &mut Vec<usize>, digits: &mut Vec<u8>) {
    tpl.clear();
    let mut run = 0usize;
    for &b in text.as_bytes() {
        if b.is_ascii_digit() {
            if run == 0 {
                tpl.push(HOLE);
            }
            run += 1;
            digits.push(b);
        } else {
            if run > 0 {
                run_lens.push(run);
                run = 0;
            }
            tpl.push(b);
        }
    }
    if run > 0 {
        run_lens.push(run);
    }
}

/// About the bytes a [`splittable`] text adds to a templated block's run columns: its digits
/// and a byte per run.
pub fn run_bytes(text: &str) -> usize {
    let b = text.as_bytes();
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let runs =
        b.iter().enumerate().filter(|&(i, c)| c.is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit())).count();
    digits + runs
}

/// A sealer's table of distinct keys (templates, shapes), each with its id in order of first
/// use, within a budget of bytes and keys: what [`TemplateBuilder`] and the packed blocks'
/// shape table share.
#[derive(Debug)]
pub struct IdTable<T> {
    ids: HashMap<Box<[T]>, u32>,
    /// Bytes charged for the keys held.
    bytes: usize,
    /// The first id given.
    first: u32,
}

impl<T: std::hash::Hash + Eq + Clone> IdTable<T> {
    /// An empty table whose ids start at `first`.
    pub fn new(first: u32) -> Self {
        Self { ids: HashMap::new(), bytes: 0, first }
    }

    /// The id of `key`, added when new if its `cost` in bytes keeps the table within
    /// `bytes_max` and it holds fewer than `count_max` keys; `None` when it is new and does not
    /// fit.
    pub fn id(&mut self, key: &[T], cost: usize, bytes_max: usize, count_max: usize) -> Option<u32> {
        if let Some(&id) = self.ids.get(key) {
            return Some(id);
        }
        if self.bytes + cost > bytes_max || self.ids.len() >= count_max {
            return None;
        }
        self.bytes += cost;
        let id = self.first + self.ids.len() as u32;
        self.ids.insert(key.into(), id);
        Some(id)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Bytes charged for the keys held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The keys in id order.
    pub fn in_id_order(&self) -> Vec<&[T]> {
        let mut list: Vec<(&[T], u32)> = self.ids.iter().map(|(k, &id)| (&**k, id)).collect();
        list.sort_unstable_by_key(|&(_, id)| id);
        list.into_iter().map(|(k, _)| k).collect()
    }
}

/// The table a sealer fills while it writes a segment's blocks.
#[derive(Debug)]
pub struct TemplateBuilder(IdTable<u8>);

impl Default for TemplateBuilder {
    fn default() -> Self {
        Self(IdTable::new(1))
    }
}

impl TemplateBuilder {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id (1-based: 0 means "literal" in a block) of `tpl`, added when new and the table
    /// has room; `None` when it is new and the table is full.
    pub fn id(&mut self, tpl: &[u8]) -> Option<u32> {
        self.0.id(tpl, tpl.len(), TABLE_BYTES_MAX, TABLE_COUNT_MAX)
    }

    /// Templates held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The footer section: a zstd frame of `count: u32`, then each template in id order as
    /// `length: varint` and its bytes.
    pub fn encode(&self) -> std::io::Result<Vec<u8>> {
        let list = self.0.in_id_order();
        let mut raw = Vec::with_capacity(self.0.bytes() + 2 * list.len() + 4);
        raw.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for t in list {
            put_varint(&mut raw, t.len() as u64);
            raw.extend_from_slice(t);
        }
        zstd::bulk::compress(&raw, TABLE_ZSTD_LEVEL)
    }
}

/// One template of a table read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The template (UTF-8, holes included).
    pub text: Box<str>,
    /// Byte offsets of its holes in `text`: a record of it has one digit run per hole.
    pub holes: Box<[u32]>,
}

impl Template {
    /// The template `text`, its holes found.
    pub fn new(text: &str) -> Self {
        let holes = text.bytes().enumerate().filter(|&(_, b)| b == HOLE).map(|(i, _)| i as u32).collect();
        Self { text: text.into(), holes }
    }

    /// Appends the text of a record of this template: the template with its holes filled, in
    /// order, by the runs of `digits` whose lengths are `run_lens` (one per hole, each at least
    /// 1, within `digits`, ASCII digits; a mismatch is an error, never a panic). The template
    /// is UTF-8 and its holes are ASCII, so the result needs no second UTF-8 check.
    pub fn expand(&self, run_lens: &[u32], digits: &[u8], out: &mut String) -> Result<(), &'static str> {
        if run_lens.len() != self.holes.len() {
            return Err("templates: digit runs disagree with the template");
        }
        let (mut at, mut d) = (0usize, 0usize);
        for (&h, &l) in self.holes.iter().zip(run_lens) {
            let end = d + l as usize;
            let run = digits.get(d..end).ok_or("templates: digit runs truncated")?;
            // A hole is the ASCII byte 0x01: both ends of the slice are character boundaries.
            out.push_str(self.text.get(at..h as usize).ok_or("templates: hole inside a character")?);
            for &c in run {
                if !c.is_ascii_digit() {
                    return Err("templates: a digit run holds a non-digit");
                }
                out.push(char::from(c));
            }
            (at, d) = (h as usize + 1, end);
        }
        out.push_str(self.text.get(at..).ok_or("templates: hole inside a character")?);
        Ok(())
    }
}

/// A segment's table, decoded and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Templates {
    list: Vec<Template>,
}

impl Templates {
    /// Decodes a footer section written by [`TemplateBuilder::encode`]: every length and count
    /// within the builder's bounds, every template UTF-8; anything else is an error.
    pub fn decode(section: &[u8]) -> Result<Self, &'static str> {
        // The builder's bound, plus the count and at most 3 bytes of length per template
        // (each is at most TEMPLATE_BYTES_MAX bytes): no frame may decompress past it.
        let raw_max = 4 + TABLE_BYTES_MAX + 3 * TABLE_COUNT_MAX;
        let mut raw = Vec::new();
        let dec = zstd::stream::read::Decoder::with_buffer(section).map_err(|_| "templates: not a zstd frame")?;
        dec.single_frame()
            .take(raw_max as u64 + 1)
            .read_to_end(&mut raw)
            .map_err(|_| "templates: zstd frame damaged")?;
        if raw.len() > raw_max {
            return Err("templates: table larger than a sealer writes");
        }
        let mut r = Reader::new(&raw);
        let n = r.u32()? as usize;
        if n > TABLE_COUNT_MAX || n > r.remaining() {
            return Err("templates: count out of range");
        }
        let mut list = Vec::with_capacity(n);
        for _ in 0..n {
            let len = r.len(TEMPLATE_BYTES_MAX)?;
            let text = std::str::from_utf8(r.bytes(len)?).map_err(|_| "templates: a template is not utf-8")?;
            list.push(Template::new(text));
        }
        if r.remaining() != 0 {
            return Err("templates: bytes after the last template");
        }
        Ok(Self { list })
    }

    /// Template `id` (1-based, as in a block).
    pub fn get(&self, id: u32) -> Option<&Template> {
        (id as usize).checked_sub(1).and_then(|i| self.list.get(i))
    }

    /// Templates held.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Texts that exercise every path of a split (for the tests of the block layouts): two records
/// of one template, an "R", a text holding the hole byte and one too long (both literal), an
/// empty text and one that is a single run.
#[cfg(test)]
pub(crate) fn tricky_texts() -> Vec<String> {
    vec![
        "【星河银行】您的验证码为012345，5分钟内有效，请勿泄露给他人。".to_owned(),
        "【星河银行】您的验证码为987654，10分钟内有效，请勿泄露给他人。".to_owned(),
        "R".to_owned(),
        "a\u{1}literal because it holds the hole byte 7".to_owned(),
        "9".repeat(TEMPLATE_BYTES_MAX + 1),
        String::new(),
        "1234567".to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn round_trip(text: &str) -> (Vec<u8>, Vec<usize>, Vec<u8>) {
        let (mut tpl, mut lens, mut digits) = (Vec::new(), Vec::new(), Vec::new());
        split(text, &mut tpl, &mut lens, &mut digits);
        assert_eq!(run_bytes(text), lens.len() + digits.len(), "{text:?}");
        let t = Template::new(std::str::from_utf8(&tpl).unwrap());
        assert_eq!(t.holes.len(), lens.len());
        let lens32: Vec<u32> = lens.iter().map(|&l| l as u32).collect();
        let mut back = String::new();
        t.expand(&lens32, &digits, &mut back).unwrap();
        assert_eq!(back, text);
        // Wrong runs are an error.
        if let Some((&first, rest)) = lens32.split_first() {
            assert!(t.expand(rest, &digits, &mut String::new()).is_err(), "too few runs");
            let mut longer = lens32.clone();
            longer[0] = first + 1 + digits.len() as u32;
            assert!(t.expand(&longer, &digits, &mut String::new()).is_err(), "runs past the digits");
        }
        (tpl, lens, digits)
    }

    #[test]
    fn split_cuts_digit_runs_and_expand_restores_them() {
        let (tpl, lens, digits) = round_trip("【星河银行】您的验证码为012345，5分钟内有效，请勿泄露给他人。");
        assert_eq!(String::from_utf8(tpl).unwrap(), "【星河银行】您的验证码为\u{1}，\u{1}分钟内有效，请勿泄露给他人。");
        assert_eq!((lens, digits), (vec![6, 1], b"0123455".to_vec()));
        for t in ["", "R", "123", "a1b22c333", "9.99元", "１２３ full-width digits stay", "00:00"] {
            round_trip(t);
        }
        assert!(!splittable("a\u{1}b") && splittable("ab") && !splittable(&"x".repeat(TEMPLATE_BYTES_MAX + 1)));
    }

    #[test]
    fn a_table_round_trips_and_a_full_one_refuses_new_templates() {
        let mut b = TemplateBuilder::new();
        assert_eq!((b.id(b"a\x01b"), b.id(b"c"), b.id(b"a\x01b")), (Some(1), Some(2), Some(1)));
        let t = Templates::decode(&b.encode().unwrap()).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(1).unwrap(), &Template { text: "a\u{1}b".into(), holes: vec![1].into() });
        assert!(t.get(2).unwrap().holes.is_empty());
        assert!(t.get(0).is_none() && t.get(3).is_none());
        let big = vec![b'x'; TEMPLATE_BYTES_MAX];
        let mut full = TemplateBuilder::new();
        let mut i = 0u32;
        loop {
            let mut t = big.clone();
            t[..8].copy_from_slice(format!("{i:08}").as_bytes());
            if full.id(&t).is_none() {
                break;
            }
            i += 1;
        }
        assert_eq!(full.len(), TABLE_BYTES_MAX / TEMPLATE_BYTES_MAX);
        assert_eq!(Templates::decode(&full.encode().unwrap()).unwrap().len(), full.len());
    }

    #[test]
    fn a_damaged_table_is_an_error() {
        let mut b = TemplateBuilder::new();
        b.id("【鲜果到家】您的\u{1}张优惠券".as_bytes());
        let good = b.encode().unwrap();
        for cut in 0..good.len() {
            assert!(Templates::decode(&good[..cut]).is_err(), "cut {cut}");
        }
        assert!(Templates::decode(b"not zstd").is_err());
        let bad = |raw: &[u8]| Templates::decode(&zstd::bulk::compress(raw, 1).unwrap());
        assert!(bad(&[1, 0, 0, 0, 2, 0xff, 0xfe]).is_err(), "not utf-8");
        assert!(bad(&[2, 0, 0, 0, 1, b'a']).is_err(), "count beyond the bytes");
        assert!(bad(&[1, 0, 0, 0, 1, b'a', b'b']).is_err(), "bytes after the last");
        assert_eq!(bad(&[1, 0, 0, 0, 1, b'a']).unwrap().len(), 1);
    }
}
