//! The hand-over of live audio from a source (a microphone callback, a socket, a file reader) to
//! the thread that diarizes it: a lock-free single-producer single-consumer ring of samples.
//!
//! Nothing on the writing side allocates, locks or blocks, except [`AudioWriter::push_wait`],
//! which a file source uses to wait for room. A live source that outruns the reader never loses
//! audio silently: what does not fit is recorded as a [`Gap`] at its exact place in the stream,
//! and the reader receives it in order with the samples. Positions count every sample the source
//! produced, gaps included, so time stays exact.
//!
//! Neither side polls. A reader that needs more audio says how much
//! ([`AudioReader::wake_when_readable`]) and parks its thread; the writer unparks it once that
//! much has been written (or lost, or the writer is gone): an atomic load per push, and an unpark
//! only when the reader asked. A writer waiting for room parks its thread
//! ([`AudioWriter::push_wait`]) or registers its task ([`AudioWriter::writable`]), and the reader
//! wakes it when it has taken samples out.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Poll, Waker};
use std::thread::Thread;
use std::time::Instant;

use ringbuf::HeapRb;
use ringbuf::traits::{Consumer, Observer, Producer, Split};

/// A stretch of audio the source produced but the ring had no room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Stream position of the first lost sample.
    pub at: u64,
    /// Number of lost samples.
    pub len: u64,
}

/// When a sample arrived: all samples before stream position `end` had arrived at `at`.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// Stream position one past the last sample of the push.
    pub end: u64,
    /// When the push happened.
    pub at: Instant,
}

/// A writer waiting for room: a parked thread or an async task.
#[derive(Debug)]
enum Waiting {
    Thread(Thread),
    Task(Waker),
}

/// What the two halves share besides the rings: whether each is still there, and who to wake.
#[derive(Debug)]
struct Flags {
    writer_gone: AtomicBool,
    reader_gone: AtomicBool,
    /// The reading thread, once it has asked to be woken.
    reader: OnceLock<Thread>,
    /// Wake the reader once the writer's position reaches this (`u64::MAX`: it has not asked).
    wake_at: AtomicU64,
    /// Whether a writer waits for room (then `waiting` says who).
    writer_waits: AtomicBool,
    waiting: Mutex<Option<Waiting>>,
}

impl Default for Flags {
    fn default() -> Self {
        Self {
            writer_gone: AtomicBool::new(false),
            reader_gone: AtomicBool::new(false),
            reader: OnceLock::new(),
            wake_at: AtomicU64::new(u64::MAX),
            writer_waits: AtomicBool::new(false),
            waiting: Mutex::new(None),
        }
    }
}

impl Flags {
    /// Wakes the reader if the writer's `position` reached what it asked for.
    fn wake_reader_at(&self, position: u64) {
        // Publish the ring's new contents before reading `wake_at` (a reader that stores
        // `wake_at` and then looks at the ring sees one or the other).
        fence(Ordering::SeqCst);
        if position >= self.wake_at.load(Ordering::Relaxed)
            && let Some(t) = self.reader.get()
        {
            t.unpark();
        }
    }

    /// Wakes a writer waiting for room.
    fn wake_writer(&self) {
        fence(Ordering::SeqCst);
        // Cleared before the slot is emptied: a writer registering meanwhile sets it again.
        if self.writer_waits.swap(false, Ordering::SeqCst) {
            let waiting = self
                .waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            match waiting {
                Some(Waiting::Thread(t)) => t.unpark(),
                Some(Waiting::Task(w)) => w.wake(),
                None => {}
            }
        }
    }

    /// Registers the writer as waiting for room; the caller checks for room again afterwards.
    fn writer_will_wait(&self, who: Waiting) {
        *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) = Some(who);
        self.writer_waits.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }
}

/// Why a blocking write stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the audio reader has gone")]
pub struct ReaderGone;

/// The writing half, owned by the audio source.
pub struct AudioWriter {
    samples: ringbuf::HeapProd<f32>,
    gaps: ringbuf::HeapProd<Gap>,
    arrivals: ringbuf::HeapProd<Arrival>,
    /// Stream position of the next sample (written and lost ones alike).
    position: u64,
    /// A gap not yet handed over (its ring was full); no sample is written while one is pending.
    pending: Option<Gap>,
    flags: Arc<Flags>,
}

/// The reading half, owned by the diarizing thread.
pub struct AudioReader {
    samples: ringbuf::HeapCons<f32>,
    gaps: ringbuf::HeapCons<Gap>,
    arrivals: ringbuf::HeapCons<Arrival>,
    position: u64,
    flags: Arc<Flags>,
}

/// What one [`AudioReader::read`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// This many samples were copied out.
    Samples(usize),
    /// The source lost this stretch here (the reader's position moves past it).
    Gap(Gap),
    /// Nothing available yet.
    Empty,
    /// The writer is gone and everything it wrote has been read.
    Closed,
}

/// A ring holding up to `capacity` samples, split into its two halves.
pub fn audio_ring(capacity: usize) -> (AudioWriter, AudioReader) {
    let (samples_w, samples_r) = HeapRb::<f32>::new(capacity.max(1)).split();
    let (gaps_w, gaps_r) = HeapRb::<Gap>::new(64).split();
    let (arrivals_w, arrivals_r) = HeapRb::<Arrival>::new(4096).split();
    let flags = Arc::new(Flags::default());
    (
        AudioWriter {
            samples: samples_w,
            gaps: gaps_w,
            arrivals: arrivals_w,
            position: 0,
            pending: None,
            flags: flags.clone(),
        },
        AudioReader {
            samples: samples_r,
            gaps: gaps_r,
            arrivals: arrivals_r,
            position: 0,
            flags,
        },
    )
}

impl AudioWriter {
    /// Stream position of the next sample: everything pushed so far, lost samples included.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Whether the reader has gone (nothing written will be read).
    pub fn reader_gone(&self) -> bool {
        self.flags.reader_gone.load(Ordering::Acquire)
    }

    fn hand_over_gap(&mut self) -> bool {
        match self.pending {
            Some(gap) => {
                if self.gaps.try_push(gap).is_ok() {
                    self.pending = None;
                    true
                } else {
                    false
                }
            }
            None => true,
        }
    }

    fn record_arrival(&mut self) {
        let _ = self.arrivals.try_push(Arrival {
            end: self.position,
            at: Instant::now(),
        });
    }

    /// Writes what fits of `samples` without waiting and records the rest as lost (a [`Gap`]).
    /// Returns the number written. Never allocates, locks or blocks: safe in an audio callback.
    pub fn push_live(&mut self, samples: &[f32]) -> usize {
        let written = if self.hand_over_gap() {
            self.samples.push_slice(samples)
        } else {
            0
        };
        self.position += written as u64;
        self.lose(samples.len() - written);
        self.record_arrival();
        self.flags.wake_reader_at(self.position);
        written
    }

    /// Records `len` samples as lost at the current position (a source that knows it dropped
    /// audio upstream, such as a device overrun).
    pub fn lose(&mut self, len: usize) {
        if len == 0 {
            return;
        }
        let len = len as u64;
        match &mut self.pending {
            Some(gap) => gap.len += len,
            None => {
                self.pending = Some(Gap {
                    at: self.position,
                    len,
                })
            }
        }
        self.position += len;
        self.hand_over_gap();
        self.flags.wake_reader_at(self.position);
    }

    /// Writes what fits of `samples` without waiting and loses nothing: returns how many were
    /// written (0 while the reader is behind); the caller keeps the rest and tries again later
    /// (an async source waits this way without holding a thread). Fails if the reader has gone.
    pub fn push_some(&mut self, samples: &[f32]) -> Result<usize, ReaderGone> {
        if self.reader_gone() {
            return Err(ReaderGone);
        }
        if samples.is_empty() || !self.hand_over_gap() {
            return Ok(0);
        }
        let n = self.samples.push_slice(samples);
        self.position += n as u64;
        if n > 0 {
            self.record_arrival();
            self.flags.wake_reader_at(self.position);
        }
        Ok(n)
    }

    /// Whether a sample could be written now: a pending gap handed over and room in the ring.
    fn has_room(&mut self) -> bool {
        self.hand_over_gap() && self.samples.vacant_len() > 0
    }

    /// Writes all of `samples`, parking the thread while the reader is behind (for sources that
    /// can wait, such as files); the reader wakes it when it takes samples out. Fails if the
    /// reader has gone.
    pub fn push_wait(&mut self, mut samples: &[f32]) -> Result<(), ReaderGone> {
        while !samples.is_empty() {
            let n = self.push_some(samples)?;
            samples = &samples[n..];
            if n == 0 {
                self.park_for_room();
            }
        }
        Ok(())
    }

    /// Parks the thread until the reader has taken something out or gone (or a spurious wake).
    fn park_for_room(&mut self) {
        self.flags
            .writer_will_wait(Waiting::Thread(std::thread::current()));
        if !self.has_room() && !self.reader_gone() {
            std::thread::park();
        }
    }

    /// Completes once a sample could be written without waiting, or the reader has gone (then
    /// with [`ReaderGone`]): for async sources, which wait without holding a thread. The reader
    /// wakes the task when it takes samples out.
    pub fn writable(&mut self) -> impl Future<Output = Result<(), ReaderGone>> + '_ {
        std::future::poll_fn(move |cx| {
            if self.reader_gone() {
                return Poll::Ready(Err(ReaderGone));
            }
            if self.has_room() {
                return Poll::Ready(Ok(()));
            }
            self.flags
                .writer_will_wait(Waiting::Task(cx.waker().clone()));
            if self.has_room() || self.reader_gone() {
                Poll::Ready(if self.reader_gone() {
                    Err(ReaderGone)
                } else {
                    Ok(())
                })
            } else {
                Poll::Pending
            }
        })
    }
}

impl Drop for AudioWriter {
    fn drop(&mut self) {
        // A gap still pending when the source ends is handed over by the reader's end check.
        while self.pending.is_some() && !self.reader_gone() {
            if !self.hand_over_gap() {
                self.park_for_room();
            }
        }
        self.flags.writer_gone.store(true, Ordering::Release);
        self.flags.wake_reader_at(u64::MAX);
    }
}

impl AudioReader {
    /// Stream position of the next sample to read.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Copies up to `out.len()` samples, stopping at the next gap; returns a gap when it is next.
    pub fn read(&mut self, out: &mut [f32]) -> Read {
        // A wake asked for before this read has served its purpose.
        self.flags.wake_at.store(u64::MAX, Ordering::Relaxed);
        // Check the writer and the samples before the gaps: a gap is always handed over before
        // any later sample, so a sample seen here has every earlier gap visible too.
        let writer_gone = self.flags.writer_gone.load(Ordering::Acquire);
        let available = self.samples.occupied_len() as u64;
        if let Some(&gap) = self.gaps.first()
            && gap.at <= self.position
        {
            self.gaps.try_pop();
            let mut gap = gap;
            // Adjacent gaps read as one.
            while let Some(&next) = self.gaps.first()
                && next.at == gap.at + gap.len
            {
                self.gaps.try_pop();
                gap.len += next.len;
            }
            self.position = gap.at + gap.len;
            self.flags.wake_writer();
            return Read::Gap(gap);
        }
        let limit = match self.gaps.first() {
            Some(gap) => available.min(gap.at - self.position),
            None => available,
        };
        let want = (limit as usize).min(out.len());
        if want == 0 {
            if writer_gone && available == 0 && self.gaps.is_empty() {
                return Read::Closed;
            }
            return Read::Empty;
        }
        let n = self.samples.pop_slice(&mut out[..want]);
        self.position += n as u64;
        self.flags.wake_writer();
        Read::Samples(n)
    }

    /// Asks the writer to unpark the calling thread once `samples` samples past those read so
    /// far have been written or lost, or the writer has gone; returns whether that is so
    /// already (then the caller reads instead of parking). The first thread that asks is the
    /// one woken from then on: read from one thread.
    pub fn wake_when_readable(&self, samples: usize) -> bool {
        let me = self.flags.reader.get_or_init(std::thread::current);
        debug_assert_eq!(me.id(), std::thread::current().id(), "one reading thread");
        let target = self.position.saturating_add(samples.max(1) as u64);
        self.flags.wake_at.store(target, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.flags.writer_gone.load(Ordering::Acquire)
            || !self.gaps.is_empty()
            || self.samples.occupied_len() >= samples.max(1)
    }

    /// Parks the calling thread until `samples` samples past those read so far can be read, a
    /// gap is next, or the writer has gone.
    pub fn wait_readable(&self, samples: usize) {
        while !self.wake_when_readable(samples) {
            std::thread::park();
        }
    }

    /// Hands every recorded arrival time to `f`, oldest first.
    pub fn arrivals(&mut self, mut f: impl FnMut(Arrival)) {
        while let Some(a) = self.arrivals.try_pop() {
            f(a);
        }
    }
}

impl Drop for AudioReader {
    fn drop(&mut self) {
        self.flags.reader_gone.store(true, Ordering::Release);
        self.flags.wake_writer();
    }
}

/// Where a window cut by a [`Windower`] lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCut {
    /// Stream position of the window's first sample.
    pub start: u64,
    /// Samples of context written before the window (fewer than asked near the stream start).
    pub context: usize,
    /// Samples of real audio in the window (the rest, at the end of a stream, is zero padding).
    pub real: usize,
}

/// Cuts fixed-length windows every hop out of a stream of samples, each preceded by up to
/// `context` samples of the audio before it, keeping only the audio the next window still needs.
/// Allocates only at construction (and while skipping long gaps).
pub struct Windower {
    window: usize,
    hop: usize,
    context: usize,
    buffer: Vec<f32>,
    /// Samples of `buffer` before the next window's start.
    lead: usize,
    /// Stream position of the next window's start (`buffer[lead]`).
    start: u64,
}

impl Windower {
    /// Windows of `window` samples whose starts are `hop` samples apart, the first at 0, each
    /// written after the `context` samples before it (as many as the stream has). The window is
    /// at least 1 sample and the hop 1 to `window` samples (a longer hop would leave audio out of
    /// every window).
    pub fn new(window: usize, hop: usize, context: usize) -> Self {
        let window = window.max(1);
        let hop = hop.clamp(1, window);
        Self {
            window,
            hop,
            context,
            buffer: Vec::with_capacity(context + window + hop),
            lead: 0,
            start: 0,
        }
    }

    /// Samples still needed before the next window is complete.
    pub fn missing(&self) -> usize {
        (self.lead + self.window).saturating_sub(self.buffer.len())
    }

    /// Appends samples.
    pub fn push(&mut self, samples: &[f32]) {
        self.buffer.extend_from_slice(samples);
    }

    /// Appends `n` samples of silence.
    pub fn push_silence(&mut self, n: usize) {
        self.buffer.resize(self.buffer.len() + n, 0.0);
    }

    /// Stream position one past the last sample pushed.
    pub fn end(&self) -> u64 {
        self.start + (self.buffer.len() - self.lead) as u64
    }

    /// The next complete window, written to `out` after its context; the windower then moves on
    /// by one hop.
    pub fn next_window(&mut self, out: &mut Vec<f32>) -> Option<WindowCut> {
        if self.missing() > 0 {
            return None;
        }
        out.clear();
        out.extend_from_slice(&self.buffer[..self.lead + self.window]);
        Some(self.advance(self.window))
    }

    /// At the end of the stream: the next window holding any audio not yet at the start of a
    /// complete window, written to `out` after its context and zero-padded to the window length.
    pub fn next_partial(&mut self, out: &mut Vec<f32>) -> Option<WindowCut> {
        let ahead = self.buffer.len() - self.lead;
        if ahead == 0 || (self.start > 0 && ahead <= self.window - self.hop) {
            return None;
        }
        out.clear();
        let real = ahead.min(self.window);
        out.extend_from_slice(&self.buffer[..self.lead + real]);
        out.resize(self.lead + self.window, 0.0);
        Some(self.advance(real))
    }

    fn advance(&mut self, real: usize) -> WindowCut {
        let cut = WindowCut {
            start: self.start,
            context: self.lead,
            real,
        };
        let moved = self.hop.min(self.buffer.len() - self.lead);
        self.start += moved as u64;
        let keep = self.context.min(self.start as usize);
        let drop = (self.lead + moved).saturating_sub(keep);
        self.buffer.drain(..drop);
        self.lead = self.lead + moved - drop;
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_overflow_becomes_an_exact_gap_and_nothing_else_is_lost() {
        let (mut w, mut r) = audio_ring(8);
        assert_eq!(w.push_live(&[1.0; 5]), 5);
        assert_eq!(w.push_live(&[2.0; 5]), 3); // 2 lost at position 8
        assert_eq!(w.push_live(&[3.0; 2]), 0); // ring still full: 2 more lost
        let mut out = [0f32; 16];
        assert_eq!(r.read(&mut out), Read::Samples(8));
        assert_eq!(&out[..8], &[1., 1., 1., 1., 1., 2., 2., 2.]);
        assert_eq!(r.read(&mut out), Read::Gap(Gap { at: 8, len: 4 }));
        assert_eq!(r.read(&mut out), Read::Empty);
        assert_eq!(w.push_live(&[4.0; 3]), 3);
        drop(w);
        assert_eq!(r.read(&mut out), Read::Samples(3));
        assert_eq!(r.position(), 15);
        assert_eq!(r.read(&mut out), Read::Closed);
    }

    #[test]
    fn waiting_writer_loses_nothing() {
        let (mut w, mut r) = audio_ring(7);
        let source: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        let expected = source.clone();
        let t = std::thread::spawn(move || w.push_wait(&source));
        let mut got = Vec::new();
        let mut buf = [0f32; 5];
        loop {
            match r.read(&mut buf) {
                Read::Samples(n) => got.extend_from_slice(&buf[..n]),
                Read::Gap(g) => panic!("gap {g:?}"),
                Read::Empty => std::thread::yield_now(),
                Read::Closed => break,
            }
        }
        t.join().unwrap().unwrap();
        assert_eq!(got, expected);
    }

    /// Both sides park instead of polling, and every wake-up they need arrives: a writer that
    /// waits for room and a reader that waits for audio pass 100 000 samples through a ring of
    /// 7 (a lost wake-up would hang here; the deadline turns that into a failure).
    #[test]
    fn parked_reader_and_writer_wake_each_other() {
        let (mut w, mut r) = audio_ring(7);
        let source: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
        let expected = source.clone();
        let writer = std::thread::spawn(move || {
            for piece in source.chunks(3) {
                w.push_wait(piece).unwrap();
            }
        });
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0f32; 5];
            loop {
                match r.read(&mut buf) {
                    Read::Samples(n) => got.extend_from_slice(&buf[..n]),
                    Read::Gap(g) => panic!("gap {g:?}"),
                    Read::Empty => r.wait_readable(4),
                    Read::Closed => break,
                }
            }
            let _ = done.send(got);
        });
        let got = finished
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("no lost wake-up");
        writer.join().unwrap();
        assert_eq!(got, expected);
    }

    /// An async writer's `writable` completes once the reader takes samples out, and fails
    /// once the reader is gone.
    #[test]
    fn an_async_writer_is_woken_by_the_reader() {
        let (mut w, mut r) = audio_ring(4);
        assert_eq!(w.push_some(&[1.0; 6]), Ok(4));
        let reader = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let mut buf = [0f32; 2];
            assert_eq!(r.read(&mut buf), Read::Samples(2));
            r
        });
        let runtime = std::thread::current();
        let waker = std::task::Waker::from(std::sync::Arc::new(ThreadWaker(runtime)));
        let mut cx = std::task::Context::from_waker(&waker);
        {
            let mut room = std::pin::pin!(w.writable());
            while room.as_mut().poll(&mut cx).is_pending() {
                std::thread::park();
            }
        }
        assert_eq!(w.push_some(&[2.0; 6]), Ok(2));
        drop(reader.join().unwrap());
        let mut room = std::pin::pin!(w.writable());
        assert_eq!(room.as_mut().poll(&mut cx), Poll::Ready(Err(ReaderGone)));
    }

    struct ThreadWaker(Thread);

    impl std::task::Wake for ThreadWaker {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }

    #[test]
    fn writer_stops_waiting_when_the_reader_goes() {
        let (mut w, r) = audio_ring(4);
        drop(r);
        assert_eq!(w.push_wait(&[0.0; 10]), Err(ReaderGone));
    }

    fn cut(start: u64, context: usize, real: usize) -> Option<WindowCut> {
        Some(WindowCut {
            start,
            context,
            real,
        })
    }

    #[test]
    fn windows_every_hop_then_padded_tail() {
        let mut win = Windower::new(6, 2, 0);
        let mut out = Vec::new();
        win.push(&[0., 1., 2., 3., 4.]);
        assert_eq!(win.next_window(&mut out), None);
        win.push(&[5., 6., 7., 8.]);
        assert_eq!(win.next_window(&mut out), cut(0, 0, 6));
        assert_eq!(out, [0., 1., 2., 3., 4., 5.]);
        assert_eq!(win.next_window(&mut out), cut(2, 0, 6));
        assert_eq!(out, [2., 3., 4., 5., 6., 7.]);
        assert_eq!(win.next_window(&mut out), None);
        // 9 samples: the window at 4 holds the last 5, the one at 6 is not needed (its audio is
        // all inside the window at 4... except sample 8, which the window at 4 covers too).
        assert_eq!(win.next_partial(&mut out), cut(4, 0, 5));
        assert_eq!(out, [4., 5., 6., 7., 8., 0.]);
        assert_eq!(win.next_partial(&mut out), None);
    }

    #[test]
    fn a_stream_shorter_than_a_window_gets_one_padded_window() {
        let mut win = Windower::new(6, 2, 4);
        let mut out = Vec::new();
        win.push(&[1., 2.]);
        assert_eq!(win.next_partial(&mut out), cut(0, 0, 2));
        assert_eq!(out, [1., 2., 0., 0., 0., 0.]);
        assert_eq!(win.next_partial(&mut out), None);
    }

    /// Each window comes after as much of the audio before it as the stream has, up to the
    /// context; the buffer holds no more than context, window and hop.
    #[test]
    fn windows_come_after_their_context() {
        let mut win = Windower::new(4, 2, 3);
        let mut out = Vec::new();
        let samples: Vec<f32> = (0..13).map(|i| i as f32).collect();
        let mut cuts = Vec::new();
        for chunk in samples.chunks(3) {
            win.push(chunk);
            while let Some(c) = win.next_window(&mut out) {
                let from = c.start as usize - c.context;
                assert_eq!(out, samples[from..c.start as usize + 4], "{c:?}");
                cuts.push((c.start, c.context));
            }
            assert!(win.buffer.len() <= 3 + 4 + 3);
        }
        assert_eq!(cuts, [(0, 0), (2, 2), (4, 3), (6, 3), (8, 3)]);
        // 13 samples: the window at 10 holds the last 3, after 3 of context.
        assert_eq!(win.next_partial(&mut out), cut(10, 3, 3));
        assert_eq!(out, [7., 8., 9., 10., 11., 12., 0.]);
        assert_eq!(win.next_partial(&mut out), None);
        assert_eq!(win.end(), 13);
    }
}
