//! Any text through the RTTM and UEM readers: turns and regions that are non-empty, or a typed
//! error naming the line.

#![no_main]

use diarist_core::rttm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match rttm::parse(text) {
        Ok(files) => {
            for turns in files.values() {
                assert!(turns.iter().all(|t| t.end > t.start));
            }
        }
        Err(e) => assert!(e.line >= 1 && e.line <= text.lines().count()),
    }
    match rttm::parse_uem(text) {
        Ok(files) => {
            for regions in files.values() {
                assert!(regions.iter().all(|(start, end)| end > start));
            }
        }
        Err(e) => assert!(e.line >= 1 && e.line <= text.lines().count()),
    }
});
