//! What a WebSocket client controls: its text messages, through the protocol's `ClientMessage`
//! parser and `parse_start` (which builds the session's frame decoder), and its binary frames,
//! through that decoder (any encoding, rate and channel count a `start` may ask for).

#![no_main]

use diarist_server::protocol::{ClientMessage, Encoding, FrameDecoder, parse_start};
use libfuzzer_sys::fuzz_target;

// The first byte picks the half: binary frames when it is 1 modulo 8 (building a resampler for
// an odd rate takes milliseconds, parsing a message microseconds), else a text message.
fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    if kind % 8 != 1 {
        if let Ok(text) = std::str::from_utf8(rest) {
            let _ = serde_json::from_str::<ClientMessage>(text);
            if let Ok(Some(mut start)) = parse_start(text) {
                let mut out = Vec::new();
                let _ = start.audio.decode(&[0; 64], &mut out);
                start.audio.finish(&mut out);
            }
        }
        return;
    }
    // Four bytes of format (rate, channels, encoding), then frames cut at the fifth byte.
    let Some((format, frames)) = rest.split_first_chunk::<5>() else {
        return;
    };
    let rate = 4_000 + u32::from_le_bytes([format[0], format[1], format[2], 0]) % 380_001;
    let channels = 1 + usize::from(format[3] % 32);
    let encoding = if kind & 8 == 0 {
        Encoding::PcmS16le
    } else {
        Encoding::PcmF32le
    };
    let mut decoder = FrameDecoder::new(encoding, rate, channels).expect("a rate a start accepts");
    let mut out = Vec::new();
    let mut taken = 0;
    for frame in frames.chunks(usize::from(format[4]).max(1)) {
        if decoder.decode(frame, &mut out).is_ok() {
            taken += frame.len();
        }
    }
    decoder.finish(&mut out);
    let inputs = taken / (encoding.bytes() * channels);
    let expected = (inputs as f64 * 16_000.0 / f64::from(rate)).round() as usize;
    assert_eq!(out.len(), expected, "{inputs} frames at {rate} Hz");
    // Clamped input stays finite through the resampler (which may overshoot 1 a little).
    assert!(out.iter().all(|s| s.is_finite()));
});
