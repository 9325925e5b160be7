//! Streaming sample-rate conversion of mono audio with rubato, delay-compensated so that output
//! sample `k` lines up with input time `k / out_rate` and the output length is the input length
//! scaled by the rate ratio.

use rubato::{FftFixedIn, Resampler as _};

/// Input samples per resampler call.
const CHUNK: usize = 1024;

/// A mono resampler that accepts any number of samples per call.
pub struct Resampler {
    inner: FftFixedIn<f32>,
    pending: Vec<f32>,
    out: Vec<Vec<f32>>,
    /// Output samples still to drop (the filter's delay).
    skip: usize,
    consumed: u64,
    produced: u64,
    in_rate: u64,
    out_rate: u64,
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Self, String> {
        let inner = FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, 1)
            .map_err(|e| format!("cannot resample {from} Hz to {to} Hz: {e}"))?;
        let skip = inner.output_delay();
        let out = inner.output_buffer_allocate(true);
        Ok(Self {
            inner,
            pending: Vec::with_capacity(CHUNK),
            out,
            skip,
            consumed: 0,
            produced: 0,
            in_rate: u64::from(from),
            out_rate: u64::from(to),
        })
    }

    /// Output samples owed for the input consumed so far.
    fn expected(&self) -> u64 {
        (self.consumed * self.out_rate + self.in_rate / 2) / self.in_rate
    }

    fn emit(&mut self, frames: usize, out: &mut Vec<f32>, limit: u64) {
        let chunk = &self.out[0][..frames];
        let drop = self.skip.min(chunk.len());
        self.skip -= drop;
        let room = limit.saturating_sub(self.produced) as usize;
        let take = (chunk.len() - drop).min(room);
        out.extend_from_slice(&chunk[drop..drop + take]);
        self.produced += take as u64;
    }

    /// Resamples `input`, appending what is ready to `out`.
    pub fn push(&mut self, mut input: &[f32], out: &mut Vec<f32>) {
        while !input.is_empty() {
            let need = self.inner.input_frames_next() - self.pending.len();
            let take = need.min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            self.consumed += take as u64;
            if self.pending.len() == self.inner.input_frames_next() {
                let Ok((_, frames)) =
                    self.inner
                        .process_into_buffer(&[&self.pending], &mut self.out, None)
                else {
                    self.pending.clear();
                    continue;
                };
                self.pending.clear();
                self.emit(frames, out, u64::MAX);
            }
        }
    }

    /// Flushes the tail: after this, the output holds exactly the samples owed for all input.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        let target = self.expected();
        let mut rounds = 0;
        while self.produced < target && rounds < 8 {
            let pending = std::mem::take(&mut self.pending);
            let result = if pending.is_empty() {
                self.inner
                    .process_partial_into_buffer(None::<&[&[f32]]>, &mut self.out, None)
            } else {
                self.inner
                    .process_partial_into_buffer(Some(&[&pending[..]]), &mut self.out, None)
            };
            match result {
                Ok((_, frames)) => self.emit(frames, out, target),
                Err(_) => break,
            }
            rounds += 1;
        }
        // Pad with silence if the filter ran dry before the owed length (very short inputs).
        while self.produced < target {
            out.push(0.0);
            self.produced += 1;
        }
    }
}
