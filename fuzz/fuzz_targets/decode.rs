//! Any bytes through the decoder, as `AudioStream::from_bytes` and `read` to the end: a typed
//! error or finite 16 kHz samples, never a panic, a hang or unbounded memory.
//!
//! A panic inside symphonia is caught at diarist-audio's boundary and comes back as
//! `AudioError::Malformed`; such a panic does not stop the run (any other panic does): the input
//! is written to `fuzz/artifacts/decode/malformed-<hash>`, one per distinct message, to become a
//! regression input.

#![no_main]

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, Once};

use diarist_audio::{AudioError, AudioStream};
use libfuzzer_sys::fuzz_target;

/// Lets a panic raised inside symphonia unwind to the boundary that catches it; any other panic
/// goes to libFuzzer's hook, which aborts and records the input.
fn let_upstream_panics_unwind() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let trace = std::backtrace::Backtrace::force_capture().to_string();
            if !trace.contains("symphonia") {
                fuzzer_hook(info);
            }
        }));
    });
}

/// Keeps an input that made symphonia panic, once per message.
fn keep_malformed(message: &str, data: &[u8]) {
    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if seen.iter().any(|m| m == message) {
        return;
    }
    seen.push(message.to_string());
    let mut h = DefaultHasher::new();
    data.hash(&mut h);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/artifacts/decode");
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(format!("{dir}/malformed-{:016x}", h.finish()), data);
    eprintln!("symphonia panicked, caught as AudioError::Malformed: {message}");
}

fn decode(data: &[u8]) -> Result<(), AudioError> {
    let mut stream = AudioStream::from_bytes(data.to_vec())?;
    let mut out = Vec::new();
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut out)?;
        if n == 0 {
            break;
        }
        assert!(out.iter().all(|s| s.is_finite()), "a non-finite sample");
        total += n as u64;
        out.clear();
    }
    assert_eq!(stream.stats().output_samples, total);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let_upstream_panics_unwind();
    if let Err(AudioError::Malformed(message)) = decode(data) {
        keep_malformed(&message, data);
    }
});
