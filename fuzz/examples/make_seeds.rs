//! Regenerates the checked-in seed corpora, `fuzz/corpus/<target>/`, with the engine's own
//! encoders (a format change makes the old seeds stale: rerun this and commit the result).
//!
//! ```sh
//! cd fuzz && cargo run --release --example make_seeds
//! ```
//!
//! Seeds are small on purpose (the whole corpus stays well under 1 MB): libFuzzer takes its
//! default `-max_len` from the largest seed.

use portlog_engine::log::frame::{self, SegmentHeader, OPEN_MAGIC, SEALED_MAGIC};
use portlog_engine::log::{block, filter, index, sealed, template};
use portlog_fuzz::{records, NOW_MS, OP_LEN};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

/// `corpus/<target>/`, emptied of generated seeds (nothing stale stays) but not of the inputs
/// that once crashed a target (`regression-*`, copied there by hand: fuzz/README.md).
fn target_dir(root: &Path, target: &str) -> PathBuf {
    let d = root.join(target);
    std::fs::create_dir_all(&d).expect("create corpus directory");
    for e in std::fs::read_dir(&d).expect("list corpus directory") {
        let p = e.expect("list corpus directory").path();
        if !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("regression-")) {
            std::fs::remove_file(&p).expect("remove a stale seed");
        }
    }
    d
}

fn decode(root: &Path) {
    let d = target_dir(root, "decode");
    let recs = records(6, NOW_MS - 60_000, 7_000);
    let h = SegmentHeader { shard: 1, bucket_start_ms: NOW_MS - 86_400_000, gen: 2 };
    put(&d, "open-header", &h.encode(OPEN_MAGIC));
    put(&d, "sealed-header", &h.encode(SEALED_MAGIC));
    let mut rows = Vec::new();
    for r in &recs[..3] {
        frame::encode_row(&mut rows, r);
    }
    let mut one = Vec::new();
    frame::encode_row(&mut one, &recs[4]);
    put(&d, "row", &one);
    put(&d, "frame-3-rows", &frame::encode_frame(&rows, 3));
    let refs: Vec<_> = recs.iter().collect();
    put(&d, "block-6", &block::encode(&refs));
    put(&d, "block-empty", &block::encode(&[]));
    // A templated block over the decode target's fixed table (template 1 with two holes, 2 "R").
    let mut tpl = recs[..3].to_vec();
    tpl[0].text = "【星河银行】验证码012345，5分钟内有效".into();
    tpl[1].text = "R".into();
    tpl[2].text = "literal: holds the hole byte \u{1} 42".into();
    let mut b = template::TemplateBuilder::new();
    put(&d, "block-templated", &block::encode_templated(&tpl.iter().collect::<Vec<_>>(), &mut b));
    put(&d, "templates", &b.encode().expect("zstd compresses"));
    // A packed block over the decode target's fixed tables, and a shape table.
    let fx = portlog_fuzz::packed_fixture();
    put(&d, "block-packed", &fx.block);
    let mut shapes = portlog_engine::log::packed::ShapeBuilder::new();
    let mut t = template::TemplateBuilder::new();
    let mut bld = portlog_engine::log::packed::Builders {
        sub_ports: &fx.sub_ports,
        numbers: &fx.numbers,
        templates: &mut t,
        shapes: &mut shapes,
    };
    portlog_engine::log::packed::encode(&tpl.iter().collect::<Vec<_>>(), &mut bld, 3).expect("encode");
    put(&d, "shapes", &shapes.encode().expect("zstd compresses"));
    let mut sps: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut nums: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for (i, r) in recs.iter().enumerate() {
        sps.entry(r.sub_port.as_str().to_owned()).or_default().push(i as u32);
        nums.entry(r.peer.as_u64()).or_default().push(i as u32);
    }
    put(&d, "sub-port-index", &index::encode_sub_ports(&sps));
    put(&d, "number-index", &index::encode_numbers(&nums));
    put(&d, "number-index-ranked", &index::encode_numbers_ranked(&nums));
    put(&d, "number-filter", &filter::encode(nums.keys().copied()));
}

fn footer(root: &Path) {
    let d = target_dir(root, "footer");
    let tmp = portlog_fuzz::scratch("make-seeds-footer");
    std::fs::create_dir_all(&tmp).expect("scratch");
    let h = SegmentHeader { shard: 0, bucket_start_ms: NOW_MS - 86_400_000, gen: 0 };
    // (name, records, dictionary bytes, templates, packed): a plain segment, one whose blocks
    // use a dictionary (at least 8 blocks: format version 2), an empty one, one of templated
    // blocks with a dictionary (format version 4) and one of packed blocks (version 5).
    for (name, n, dict, templates, packed) in [
        ("plain.seg", 20, 0, false, false),
        ("dict.seg", 600, 4096, false, false),
        ("empty.seg", 0, 0, false, false),
        ("templated.seg", 3_000, 4096, true, false),
        ("packed.seg", 600, 4096, true, true),
    ] {
        let path = tmp.join(name);
        let recs = records(n, NOW_MS - 86_400_000, 60_000);
        let opts = sealed::SealOptions {
            block_bytes_max: 4096,
            block_records_max: 128,
            zstd_level: 3,
            dict_bytes_max: dict,
            cipher: None,
            templates,
            packed,
        };
        let st = sealed::write_sealed_with(&portlog_engine::io::OsIo, &path, h, recs.into_iter().map(Ok), opts)
            .expect("seal");
        assert_eq!(st.dict_bytes > 0, dict > 0 && !packed, "{name}: dictionary expected exactly when asked for");
        std::fs::copy(&path, d.join(name)).expect("copy seed");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The 16-bit position that `apply_ops` scales to byte `p` of a file of `len` bytes.
fn pos16(p: usize, len: usize) -> [u8; 2] {
    let v = (0..=u16::MAX).find(|&v| (usize::from(v) * (len + 1)) >> 16 >= p).unwrap_or(u16::MAX);
    v.to_le_bytes()
}

fn recovery(root: &Path) {
    let d = target_dir(root, "recovery");
    let dir = portlog_fuzz::scratch("make-seeds-recovery");
    portlog_fuzz::build_seed_dir(&dir).expect("seed directory");
    let files = portlog_fuzz::snapshot(&dir).expect("snapshot");
    let _ = std::fs::remove_dir_all(&dir);
    for (i, (p, b)) in files.iter().enumerate() {
        println!("recovery seed file {i}: {} ({} bytes)", p.display(), b.len());
    }
    let find = |suffix: &str| {
        files.iter().position(|(p, _)| p.to_string_lossy().ends_with(suffix)).expect("seed directory file") as u8
    };
    let (open, seg, manifest) = (find(".open"), find(".seg"), find("MANIFEST"));
    let len = |i: u8| files[usize::from(i)].1.len();
    let op = |kind: u8, file: u8, at: usize, val: u8| {
        let p = pos16(at, len(file));
        vec![kind, file, p[0], p[1], val]
    };
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("untouched", vec![0]),
        ("torn-open-tail", op(1, open, len(open) * 9 / 10, 0)),
        ("open-row-damaged-checksums-fixed", [op(0, open, len(open) / 2, 0x20), op(6, open, 0, 0)].concat()),
        ("open-header-damaged", op(0, open, 3, 1)),
        ("open-frames-appended-again", op(8, open, 40, 255)),
        ("sealed-footer-flip", op(0, seg, len(seg) - 30, 4)),
        ("sealed-block-damaged-checksums-fixed", [op(0, seg, len(seg) / 4, 0x10), op(6, seg, 0, 0)].concat()),
        ("sealed-trailer-count-fixed", [op(2, seg, len(seg) - 56, 0x77), op(6, seg, 0, 0)].concat()),
        ("sealed-zeroed-page", op(3, seg, len(seg) / 3, 255)),
        ("sealed-in-wrong-shard", op(5, seg, 0, 0x80)),
        ("sealed-and-open-same-stem", op(7, seg, 0, 1)),
        ("seal-leftover-tmp", op(7, seg, 0, 2)),
        ("expired-leftover", op(5, seg, 0, 3)),
        ("manifest-deleted", op(4, manifest, 0, 0)),
        (
            "several-at-once",
            [
                op(0, open, len(open) / 3, 0x01),
                op(6, open, 0, 0),
                op(7, seg, 0, 2),
                op(1, seg, len(seg) - 8, 0),
                op(8, open, 40, 128),
                op(3, open, len(open) / 2, 16),
            ]
            .concat(),
        ),
        ("manifest-edited-checksum-fixed", [op(2, manifest, 26, b'7'), op(6, manifest, 0, 0)].concat()),
    ];
    for (name, s) in seeds {
        assert!(s.len() % OP_LEN == 0 || s.len() < OP_LEN);
        put(&d, name, &s);
    }
}

fn ingest_jsonl(root: &Path) {
    let d = target_dir(root, "ingest_jsonl");
    let seeds = [
        ("mt-rfc3339", r#"{"dir":"mt","sub_port":"1069012345601","peer":"13800138000","ts":"2026-05-01T09:30:00+08:00","usage":"commercial","text":"【星河银行】会员日满100减20。拒收请回复R"}"#),
        ("mo-ms-integers", r#"{"dir":"mo","sub_port":1069012345601,"peer":8613800138000,"ts":1777599030000,"text":"R"}"#),
        ("fraction-zulu", r#"{"dir":"MT","sub_port":"106901","peer":"+8613800138000","ts":"2026-05-01T01:30:00.25Z","usage":"Service","text":"验证码 1234"}"#),
        ("bad-ts", r#"{"dir":"mt","sub_port":"106901","peer":"13800138000","ts":"yesterday","usage":"public","text":"x"}"#),
        ("bad-dir-unknown-field", r#"{"dir":"up","sub_port":"106901","peer":"13800138000","ts":1,"text":"x","extra":1}"#),
        ("float-ts-negative-peer", r#"{"dir":"mo","sub_port":"106901","peer":-1,"ts":1.5,"text":"R"}"#),
        ("not-json", "{not json"),
        (
            "three-lines-one-blank",
            "{\"dir\":\"mo\",\"sub_port\":\"106901\",\"peer\":\"13800138000\",\"ts\":1777599030000,\"text\":\"R\"}\n\n  {\"dir\":\"mt\",\"sub_port\":\"106901\",\"peer\":\"13800138000\",\"ts\":\"2026-05-01T09:30:00-03:30\",\"usage\":\"commercial\",\"text\":\"\\u3010x\\u3011y\"}  \n",
        ),
    ];
    for (name, s) in seeds {
        put(&d, name, s.as_bytes());
    }
}

fn numbers(root: &Path) {
    let d = target_dir(root, "numbers");
    let seeds = [
        ("number", "13800138000"),
        ("number-plus86", "+8613800138000"),
        ("number-0086", "008613800138000"),
        ("number-86", "8613800138000"),
        ("number-padded", " 13800138000\t"),
        ("number-bad", "23800138000"),
        ("sub-port", "1069012345601"),
        ("sub-port-20", "12345678901234567890"),
        ("time-rfc3339", "2026-05-01T09:30:00+08:00"),
        ("time-fraction-z", "2026-05-01T01:30:00.123456Z"),
        ("time-leap-second", "2026-06-30T23:59:60-00:30"),
        ("time-ms", "1777599000000"),
        ("direction", " MO "),
        ("usage", "Commercial"),
    ];
    for (name, s) in seeds {
        put(&d, name, s.as_bytes());
    }
}

fn content_rules(root: &Path) {
    let d = target_dir(root, "content_rules");
    let seeds = [
        ("good", "【星河银行】会员日满100减20。拒收请回复R"),
        ("good-padded-lower", "  【星河】会员日。拒收请回复r。 "),
        ("full-width-r", "【星河银行】会员日。拒收请回复Ｒ！"),
        ("no-signature", "会员日。拒收请回复R"),
        ("empty-signature", "【】会员日。拒收请回复R"),
        ("unclosed-signature", "【星河银行 会员日。拒收请回复R"),
        ("instruction-not-last", "【星河银行】拒收请回复R 详情见 http://x.cn"),
        ("keyword", "\u{3000}Ｒ。"),
        ("keyword-td", "td!"),
        ("split-signature-body", "星河 银行|会员日"),
    ];
    for (name, s) in seeds {
        put(&d, name, s.as_bytes());
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    decode(&root);
    footer(&root);
    recovery(&root);
    ingest_jsonl(&root);
    numbers(&root);
    content_rules(&root);
    println!("seeds written to {}", root.display());
}
