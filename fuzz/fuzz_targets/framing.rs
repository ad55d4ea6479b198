//! Framing any bytes (plain or gzip, by magic bytes) ends, never panics, and numbers its items
//! without gaps. (Byte accounting is checked by the framing module's property tests.)
#![no_main]

use lakewatch_plugins::framing::frame_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut next_index = 0;
    for framed in frame_bytes(data) {
        let index = match framed {
            Ok(record) => record.index,
            Err(error) => error.index,
        };
        assert_eq!(index, next_index, "items are numbered without gaps");
        next_index += 1;
    }
});
