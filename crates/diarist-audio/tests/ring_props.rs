//! Exact sample accounting of the audio ring and the windower, over random push sizes, reads,
//! capacities, windows, hops and contexts. Every sample carries its stream position as its value,
//! so a sample lost, duplicated or moved shows up as a wrong value.

use diarist_audio::{Gap, Read, WindowCut, Windower, audio_ring};
use proptest::prelude::*;

/// One step of a ring's life.
#[derive(Debug, Clone)]
enum Op {
    /// A live push of this many samples (what does not fit is lost).
    Live(usize),
    /// A push that loses nothing (what does not fit is kept by the caller).
    Some(usize),
    /// Samples the source lost upstream.
    Lose(usize),
    /// A read into a buffer of this size.
    Read(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..40).prop_map(Op::Live),
        (0usize..40).prop_map(Op::Some),
        (0usize..10).prop_map(Op::Lose),
        (0usize..50).prop_map(Op::Read),
    ]
}

/// What the reader has seen: samples (checked against their positions) and gaps.
#[derive(Debug, Default)]
struct Seen {
    samples: u64,
    lost: u64,
}

/// Reads once and checks what came out against the reader's position.
fn read_once(
    r: &mut diarist_audio::AudioReader,
    size: usize,
    seen: &mut Seen,
) -> Result<Read, TestCaseError> {
    let mut buf = vec![f32::NAN; size];
    let at = r.position();
    let got = r.read(&mut buf);
    match got {
        Read::Samples(n) => {
            prop_assert!(n > 0 && n <= size);
            for (i, &s) in buf[..n].iter().enumerate() {
                prop_assert_eq!(
                    s,
                    (at + i as u64) as f32,
                    "sample {} of a read at {}",
                    i,
                    at
                );
            }
            prop_assert_eq!(r.position(), at + n as u64);
            seen.samples += n as u64;
        }
        Read::Gap(Gap { at: gap_at, len }) => {
            prop_assert_eq!(gap_at, at, "a gap out of place");
            prop_assert!(len > 0);
            prop_assert_eq!(r.position(), at + len);
            seen.lost += len;
        }
        Read::Empty | Read::Closed => prop_assert_eq!(r.position(), at),
    }
    Ok(got)
}

/// Samples written to the ring and lost before it, as the writer reported them.
#[derive(Debug, Default)]
struct Sent {
    written: u64,
    lost: u64,
}

/// Samples `from..from + n`, each valued at its stream position.
fn samples(from: u64, n: usize) -> Vec<f32> {
    (0..n as u64).map(|i| (from + i) as f32).collect()
}

fn ring_case(capacity: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let (mut w, mut r) = audio_ring(capacity);
    let (mut sent, mut seen) = (Sent::default(), Seen::default());
    for op in ops {
        let before = w.position();
        match *op {
            Op::Live(n) => {
                let written = w.push_live(&samples(before, n));
                prop_assert!(written <= n);
                sent.written += written as u64;
                sent.lost += (n - written) as u64;
                prop_assert_eq!(w.position(), before + n as u64);
            }
            Op::Some(n) => {
                let written = w.push_some(&samples(before, n)).unwrap();
                sent.written += written as u64;
                prop_assert_eq!(w.position(), before + written as u64);
            }
            Op::Lose(n) => {
                w.lose(n);
                sent.lost += n as u64;
                prop_assert_eq!(w.position(), before + n as u64);
            }
            Op::Read(size) => {
                read_once(&mut r, size, &mut seen)?;
            }
        }
        prop_assert!(r.position() <= w.position());
    }
    // Everything in the ring comes out, then the writer's end.
    while read_once(&mut r, 7, &mut seen)? != Read::Empty {}
    let end = w.position();
    drop(w);
    while read_once(&mut r, 7, &mut seen)? != Read::Closed {}
    prop_assert_eq!(r.position(), end);
    prop_assert_eq!(seen.samples, sent.written, "samples in and out");
    prop_assert_eq!(seen.lost, sent.lost, "samples lost and reported");
    prop_assert_eq!(seen.samples + seen.lost, end);
    Ok(())
}

/// What one window must hold: its context and real audio from the stream, then zeros.
fn check_cut(
    cut: WindowCut,
    out: &[f32],
    stream: &[f32],
    (window, context): (usize, usize),
) -> Result<(), TestCaseError> {
    let start = cut.start as usize;
    prop_assert_eq!(cut.context, context.min(start), "{:?}", cut);
    prop_assert!(cut.real >= 1 && cut.real <= window, "{:?}", cut);
    prop_assert!(
        start + cut.real <= stream.len(),
        "{:?} past the stream",
        cut
    );
    prop_assert_eq!(out.len(), cut.context + window);
    let real = cut.context + cut.real;
    prop_assert_eq!(&out[..real], &stream[start - cut.context..start + cut.real]);
    prop_assert!(out[real..].iter().all(|&s| s == 0.0), "padding");
    Ok(())
}

fn windower_case(
    window: usize,
    hop: usize,
    context: usize,
    pushes: &[(usize, bool)],
) -> Result<(), TestCaseError> {
    let mut win = Windower::new(window, hop, context);
    // A hop longer than the window is taken as the window.
    let hop = hop.min(window);
    // Real samples are valued at their position + 1; silence is 0.
    let mut stream: Vec<f32> = Vec::new();
    let mut out = Vec::new();
    let mut starts = Vec::new();
    for &(n, silent) in pushes {
        if silent {
            win.push_silence(n);
            stream.resize(stream.len() + n, 0.0);
        } else {
            let from = stream.len();
            let real: Vec<f32> = (from..from + n).map(|i| (i + 1) as f32).collect();
            win.push(&real);
            stream.extend_from_slice(&real);
        }
        prop_assert_eq!(win.end(), stream.len() as u64);
        while let Some(cut) = win.next_window(&mut out) {
            prop_assert_eq!(cut.real, window);
            check_cut(cut, &out, &stream, (window, context))?;
            starts.push(cut.start);
        }
        let next = (starts.len() * hop) as u64;
        prop_assert_eq!(
            win.missing() as u64,
            (next + window as u64).saturating_sub(stream.len() as u64)
        );
    }
    while let Some(cut) = win.next_partial(&mut out) {
        check_cut(cut, &out, &stream, (window, context))?;
        starts.push(cut.start);
        prop_assert!(
            starts.len() <= stream.len() + 1,
            "partial windows without end"
        );
    }
    // Windows start every hop from 0, and together cover every sample of the stream.
    for (k, &s) in starts.iter().enumerate() {
        prop_assert_eq!(s, (k * hop) as u64);
    }
    if !stream.is_empty() {
        let last = *starts.last().unwrap() as usize;
        prop_assert!(last + window >= stream.len(), "samples never windowed");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_ring_accounts_for_every_sample(
        capacity in 1usize..64,
        ops in prop::collection::vec(op(), 0..200),
    ) {
        ring_case(capacity, &ops)?;
    }

    #[test]
    fn the_windower_accounts_for_every_sample(
        window in 1usize..40,
        hop in 1usize..45,
        context in 0usize..30,
        pushes in prop::collection::vec((0usize..60, prop::bool::weighted(0.2)), 0..40),
    ) {
        windower_case(window, hop, context, &pushes)?;
    }
}
