//! Any text through the STM and SRT/WebVTT transcript readers: segments with finite times,
//! `0 <= start <= end`, or a typed error naming the line. (JSON transcripts are read with serde
//! in the binary, `crates/diarist/src/attribute.rs`.)

#![no_main]

use diarist_core::transcript::{self, Segment};
use libfuzzer_sys::fuzz_target;

fn check(text: &str, parsed: Result<Vec<Segment>, diarist_core::rttm::ParseError>) {
    match parsed {
        Ok(segments) => {
            for s in segments {
                assert!(s.start.is_finite() && s.end.is_finite());
                assert!(0.0 <= s.start && s.start <= s.end, "{s:?}");
            }
        }
        Err(e) => assert!(e.line >= 1 && e.line <= text.lines().count()),
    }
}

fuzz_target!(|text: &str| {
    check(text, transcript::parse_stm(text));
    check(text, transcript::parse_subtitles(text));
});
