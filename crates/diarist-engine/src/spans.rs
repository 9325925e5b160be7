//! One recording cut into spans that any worker can analyse, with the same result however many
//! workers there are.
//!
//! A span is a run of consecutive windows (a minute of window starts) with the audio they and
//! the backbone blocks they pool from need. Each span is segmented and embedded on its own; the
//! spans' windows and embeddings are then joined in order and clustered as one recording. A
//! backbone block that two neighbouring spans pool from is run once: the recording's block
//! cache hands the first run's frames to the other. Every model run sees exactly the audio it
//! sees in one pass over the recording, so the result is identical to it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use diarist_core::SAMPLE_RATE;

use crate::EngineError;
use crate::offline::{FeatureBuffer, Models, Plan, State};

/// Window starts per span when no backbone block sets the size: a minute's.
const SPAN_SECS: usize = 60;

/// One block's frames once run; whoever runs it holds the lock meanwhile, so others wait.
type BlockSlot = Arc<Mutex<Option<Arc<Frames>>>>;

/// Backbone frames of blocks run so far, by block index, shared by one recording's spans.
#[derive(Default)]
pub(crate) struct BlockCache {
    blocks: Mutex<BTreeMap<usize, BlockSlot>>,
}

/// The frames one backbone block contributes, `[frames, dim]` row-major.
pub(crate) struct Frames {
    data: Vec<f32>,
    dim: usize,
}

impl BlockCache {
    /// The slot of block `k` (created empty).
    fn slot(&self, k: usize) -> BlockSlot {
        let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        blocks.entry(k).or_default().clone()
    }

    /// Forgets the blocks before `k`: no later span pools from them.
    fn forget_before(&self, k: usize) {
        let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        *blocks = blocks.split_off(&k);
    }
}

/// A run of consecutive windows of one recording and the audio they need.
pub(crate) struct Span {
    /// Position among the recording's spans (they are joined in this order).
    pub(crate) index: usize,
    /// Starts of its windows (samples).
    starts: Vec<usize>,
    /// The recording's last window, aligned to its end, or the whole of a recording shorter
    /// than a window: its start and length.
    tail: Option<(usize, usize)>,
    /// Backbone blocks its windows pool from.
    blocks: Range<usize>,
    /// The audio from sample `from` on.
    audio: Vec<f32>,
    from: usize,
    cache: Arc<BlockCache>,
}

impl Plan {
    /// Samples of window starts per span: two backbone blocks, or [`SPAN_SECS`].
    fn span_samples(&self) -> usize {
        let len = if self.block > 0 {
            2 * self.block
        } else {
            SPAN_SECS * SAMPLE_RATE as usize
        };
        len.div_ceil(self.step) * self.step
    }

    /// The backbone blocks whose frames the window at `start` of `len` samples pools from
    /// (empty for models that are not split).
    fn blocks_for(&self, start: usize, len: usize) -> Range<usize> {
        let Some(g) = self.features else {
            return 0..0;
        };
        let half = g.length / 2;
        let lo = start.saturating_sub(half).div_ceil(g.step);
        let hi = (start + len).saturating_sub(half + 1) / g.step + 1;
        let per = (self.block / g.step).max(1);
        if hi <= lo {
            0..0
        } else {
            lo / per..(hi - 1) / per + 1
        }
    }

    /// The first sample the window at `start` needs (its own, or its first block's).
    fn needs_from(&self, start: usize) -> usize {
        let blocks = self.blocks_for(start, self.window);
        if blocks.is_empty() {
            start
        } else {
            start.min(blocks.start * self.block)
        }
    }

    /// One past the last sample the window at `start` needs, its last block run in full.
    fn needs_until(&self, start: usize) -> usize {
        let blocks = self.blocks_for(start, self.window);
        let length = self.features.map_or(0, |g| g.length);
        let block_end = if blocks.is_empty() {
            0
        } else {
            blocks.end * self.block + length
        };
        (start + self.window).max(block_end)
    }
}

/// Reads a recording through `read` (which appends the next chunk of 16 kHz mono samples and
/// returns how many, 0 at the end) and hands its spans to `take`, in order, as soon as each
/// has its audio; returns the recording's length in samples.
pub(crate) fn cut<E>(
    plan: &Plan,
    mut read: impl FnMut(&mut Vec<f32>) -> Result<usize, E>,
    mut take: impl FnMut(Span) -> Result<(), EngineError>,
) -> Result<usize, EngineError>
where
    EngineError: From<E>,
{
    let cache = Arc::new(BlockCache::default());
    let per_span = plan.span_samples();
    // `buf` holds the recording from `buf_start` on; `next` is the next span's first start.
    let (mut buf, mut buf_start, mut next, mut index) = (Vec::new(), 0usize, 0usize, 0usize);
    loop {
        let eof = read(&mut buf)? == 0;
        let end = buf_start + buf.len();
        if eof {
            let (starts, tail) = last_windows(plan, next, end);
            let from = (starts.iter().copied().chain(tail.map(|t| t.0)))
                .map(|s| plan.needs_from(s))
                .min()
                .unwrap_or(end);
            debug_assert!(from >= buf_start, "the last span's audio was kept");
            let from = from.max(buf_start);
            let first = starts.first().copied().or(tail.map(|t| t.0));
            let blocks = first.map_or(0..0, |f| {
                let last_block = end.div_ceil(plan.block.max(1));
                plan.blocks_for(f, plan.window).start..last_block
            });
            let audio = buf.split_off(from - buf_start);
            let cache = cache.clone();
            take(Span {
                index,
                starts,
                tail,
                blocks: if plan.features.is_some() {
                    blocks
                } else {
                    0..0
                },
                audio,
                from,
                cache,
            })?;
            return Ok(end);
        }
        while plan.needs_until(next + per_span - plan.step) <= end {
            let last = next + per_span - plan.step;
            let from = plan.needs_from(next);
            let until = plan.needs_until(last);
            let blocks =
                plan.blocks_for(next, plan.window).start..plan.blocks_for(last, plan.window).end;
            take(Span {
                index,
                starts: (next..=last).step_by(plan.step).collect(),
                tail: None,
                blocks,
                audio: buf[from - buf_start..until - buf_start].to_vec(),
                from,
                cache: cache.clone(),
            })?;
            index += 1;
            next += per_span;
            // Keep what the next span needs, and what the recording's last window needs, which
            // may start up to a step before it.
            let keep = plan
                .needs_from(next.saturating_sub(plan.step))
                .max(buf_start);
            buf.drain(..keep - buf_start);
            buf_start = keep;
        }
    }
}

/// The windows of a recording of `total` samples from start `next` on: the complete ones, and
/// the last window aligned to the end when it is not among them (or the whole recording, when
/// it is shorter than a window).
fn last_windows(plan: &Plan, next: usize, total: usize) -> (Vec<usize>, Option<(usize, usize)>) {
    let starts: Vec<usize> = (next..)
        .step_by(plan.step)
        .take_while(|s| s + plan.window <= total)
        .collect();
    let tail = if total >= plan.window {
        let start = (total - plan.window) / plan.grid.step * plan.grid.step;
        let last_regular = (total - plan.window) / plan.step * plan.step;
        (start > last_regular).then_some((start, plan.window))
    } else {
        (total >= plan.min_samples).then_some((0, total))
    };
    (starts, tail)
}

/// Segments and embeds the windows of `span` on `models`.
pub(crate) fn analyse(models: &mut Models, plan: &Plan, span: &Span) -> Result<State, EngineError> {
    let feats = features(models, plan, span)?;
    let mut state = State::new(plan.dimension);
    let audio = |start: usize, len: usize| &span.audio[start - span.from..start - span.from + len];
    for &s in &span.starts {
        state.window(models, plan, s, audio(s, plan.window), &feats, false)?;
    }
    if let Some((start, len)) = span.tail {
        state.window(models, plan, start, audio(start, len), &feats, true)?;
    }
    span.cache.forget_before(span.blocks.start);
    Ok(state)
}

/// The backbone frames of the span's blocks, each run once per recording.
fn features(models: &mut Models, plan: &Plan, span: &Span) -> Result<FeatureBuffer, EngineError> {
    let mut feats = FeatureBuffer {
        first: 0,
        data: Vec::new(),
        dim: 0,
    };
    let Some(g) = plan.features else {
        return Ok(feats);
    };
    feats.first = span.blocks.start * (plan.block / g.step);
    for k in span.blocks.clone() {
        let slot = span.cache.slot(k);
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(Arc::new(run_block(models, plan, span, k)?));
        }
        let frames = slot.as_ref().expect("just filled");
        if frames.dim > 0 {
            feats.dim = frames.dim;
        }
        feats.data.extend_from_slice(&frames.data);
    }
    Ok(feats)
}

/// Runs the backbone over block `k` (one block and one feature frame of audio, or what is left
/// of the recording; nothing when that is shorter than the model takes).
fn run_block(
    models: &mut Models,
    plan: &Plan,
    span: &Span,
    k: usize,
) -> Result<Frames, EngineError> {
    let g = plan.features.expect("only split models run blocks");
    let start = k * plan.block;
    let stop = (start + plan.block + g.length).min(span.from + span.audio.len());
    if stop < start + plan.embed_min_samples {
        return Ok(Frames {
            data: Vec::new(),
            dim: 0,
        });
    }
    let f = models
        .embedding
        .features(&span.audio[start - span.from..stop - span.from])?;
    let keep = f.frames.min(plan.block / g.step);
    Ok(Frames {
        data: f.data[..keep * f.dimension].to_vec(),
        dim: f.dimension,
    })
}
