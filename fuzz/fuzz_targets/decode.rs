//! Every on-disk decoder of the message log fed arbitrary bytes: frames, rows, columnar blocks,
//! sub-port and number indexes. None may panic, loop or allocate without bound; a malformed
//! input is an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portlog_engine::log::{block, frame, index};

fuzz_target!(|data: &[u8]| {
    let _ = frame::SegmentHeader::decode(data, frame::OPEN_MAGIC);
    if let Ok(f) = frame::read_frame(data, 1 << 20) {
        if let Ok(rows) = frame::frame_rows(&f) {
            for (_, body) in rows {
                let _ = frame::decode_row_body(body);
            }
        }
    }
    let _ = block::decode(data);
    let _ = index::decode_sub_ports(data, 64);
    if let Ok(ix) = index::NumberIndex::open(data, 64) {
        for probe in [0u64, 13_800_138_000, u64::MAX] {
            let _ = ix.lookup(probe);
        }
    }
});
