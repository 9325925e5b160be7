#!/usr/bin/env python3
"""How much speech detection the segmentation model alone allows: speaker-agnostic miss and
false alarm of its per-frame speaker count, for several window lengths, offline and streaming.

    python3 -m venv /tmp/venv-seg && /tmp/venv-seg/bin/pip install numpy scipy onnxruntime==1.32.0
    /tmp/venv-seg/bin/python tools/segmentation_context.py [--eval ../shared/eval] [--windows 3,6,10]

DER = miss + false alarm + confusion, and miss and false alarm depend only on how many speakers
each frame is given (pyannote.metrics and `diarist eval` count them from the per-frame speaker
counts). So the miss + false alarm printed here is the DER that a perfect speaker assignment
would leave, for the powerset count decoded as diarist decodes it (argmax class, speakers per
class, mean over covering windows, rounded). Windows start every 59 frames (15 930 samples), as
in diarist. Rows:

- offline: every window covering a frame counts (as `diarist diarize`, 10 s windows).
- streaming, latency 3 s: only windows that end at most 3 s after the frame count, i.e. the
  frame lies in a window's last 3 s: a window of L seconds is a 3 s window heard after L - 3 s of
  context (`[streaming] context_secs`).
- the best post-processing found for the offline 10 s count (gap filling, turn padding): how
  close the detection alone gets to a reference that marks whole utterances (the simulated set).

Frames describe the instant `frame_offset` samples after their receptive field's centre (the
manifest's value); `--offsets 0,10,20` adds offline 10 s rows for other offsets, in ms, which is
how the manifest's value was chosen.

`--overlap` prints, for the frames where two or more reference speakers talk (10 s windows,
offline), the share that some covering window gives two or more speakers, and the share whose
rounded mean count does: where overlapped speech is lost before any speaker is assigned. It does
so for the powerset's most likely class (as diarist decodes it) and for each speaker's marginal
probability above 0.5 and 0.3.

`--oracle 0,3` adds, for each context length in seconds, the streaming DER that diarist's
aggregation (Hann taper over the window's frames, rounded mean count, the speakers with the most
weighted activity) would give if every window's local speakers were mapped to reference speakers
by their best one-to-one overlap in the window's own frames: an assignment that knows the answer
window by window, so the confusion left is what the segmentation's slots force (a slot holding
two voices in every window that decides a turn). It is not a bound for an assignment that
carries its decisions from window to window: such an assignment can give a window's merged slot
to the voice the slot held before, where this oracle gives it to the voice with more speech.
"""

import argparse
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
from scipy.io import wavfile
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models/segmentation-3.0/segmentation-3.0.int8.onnx"
CLASSES = [[], [0], [1], [2], [0, 1], [0, 2], [1, 2]]
SPEAKERS = np.array([len(c) for c in CLASSES])
ACTIVE = np.array([[k in c for k in range(3)] for c in CLASSES], dtype=float)
STEP, LENGTH, RATE = 270, 991, 16000
HOP = 59 * STEP
OFFSET = tomllib.loads((MODEL.parent / "manifest.toml").read_text())["output"].get("frame_offset", 0)


def frames_covering(samples):
    return (samples - LENGTH // 2 + STEP - 1) // STEP


def reference_activity(rttm, frames, offset=OFFSET):
    """[frames, reference speakers]: who speaks at the instant each frame describes."""
    speakers = {}
    centre = np.arange(frames) * STEP + LENGTH // 2 + offset
    for line in rttm.read_text().splitlines():
        f = line.split()
        start = float(f[3]) * RATE
        end = start + float(f[4]) * RATE
        row = speakers.setdefault(f[7], np.zeros(frames, bool))
        row |= (centre >= start) & (centre < end)
    return np.array(list(speakers.values()), dtype=float).T.reshape(frames, -1)


def reference_count(rttm, frames, offset=OFFSET):
    return reference_activity(rttm, frames, offset).sum(axis=1)


def oracle_streaming(session, audio, ref, context):
    """(miss, false alarm, confusion, reference) frames of diarist's streaming aggregation
    with each window's slots mapped to reference speakers by the best overlap."""
    frames, known = ref.shape
    window = int(round(3 * RATE / STEP))
    context = int(round(context * RATE / STEP))
    taper = 0.01 + 0.99 * np.sin(np.pi * (np.arange(window) + 0.5) / window) ** 2
    weight, count = np.zeros(frames), np.zeros(frames)
    votes = np.zeros((frames, known + 3))
    for first in range(0, frames, HOP // STEP):
        heard = max(0, first - context)
        end = (first + window - 1) * STEP + LENGTH
        chunk = audio[heard * STEP : end]
        if len(chunk) < LENGTH:
            break
        chunk = np.pad(chunk, (0, end - heard * STEP - len(chunk)))
        scores = session.run(None, {"waveform": chunk[None, None, :]})[0][0]
        act = ACTIVE[np.argmax(scores, axis=1)][first - heard :][: frames - first]
        n = len(act)
        overlap = act.T @ ref[first : first + n]
        label = [known + k for k in range(3)]
        for slot, speaker in zip(*linear_sum_assignment(-overlap)):
            if overlap[slot, speaker] > 0:
                label[slot] = speaker
        w = taper[:n]
        weight[first : first + n] += w
        count[first : first + n] += w * act.sum(axis=1)
        for slot in range(3):
            votes[first : first + n, label[slot]] += w * act[:, slot]
    n = np.round(count / np.maximum(weight, 1e-9)).astype(int)
    order = np.argsort(-votes, axis=1, kind="stable")
    hyp = np.zeros_like(votes)
    for f in range(frames):
        hyp[f, order[f, : n[f]]] = 1
    r, h = ref.sum(axis=1), hyp.sum(axis=1)
    correct = (hyp[:, :known] * ref).sum(axis=1)
    return np.maximum(r - h, 0).sum(), np.maximum(h - r, 0).sum(), (np.minimum(r, h) - correct).sum(), r.sum()


def window_scores(session, audio, window):
    """(start sample, per-frame class log-probabilities) of every window."""
    out = []
    for s in window_starts(audio, window):
        chunk = audio[s : s + window]
        if len(chunk) < window:
            chunk = np.pad(chunk, (0, window - len(chunk)))
        out.append((s, session.run(None, {"waveform": chunk[None, None, :]})[0][0]))
    return out


def window_counts(session, audio, window):
    """(start sample, per-frame speaker count) of every window: the most likely class's size."""
    return [(s, SPEAKERS[np.argmax(scores, axis=1)]) for s, scores in window_scores(session, audio, window)]


def window_marginal_counts(session, audio, window, threshold):
    """As `window_counts`, counting the speakers whose marginal probability exceeds `threshold`."""
    return [
        (s, ((np.exp(scores) @ ACTIVE) > threshold).sum(axis=1))
        for s, scores in window_scores(session, audio, window)
    ]


def window_starts(audio, window):
    """The windows' start samples, the last one aligned to the end."""
    starts = list(range(0, max(len(audio) - window, 0) + 1, HOP))
    if len(audio) > window and starts[-1] + window < len(audio):
        starts.append((len(audio) - window) // STEP * STEP)
    return starts


def overlap_report(session, recordings, sets):
    """Where reference overlap is lost: per set and decoding, the share of frames with two or
    more reference speakers that some covering window, and the rounded mean, counts as such."""
    window = 10 * RATE
    decoders = {
        "most likely powerset class (diarist)": lambda x: window_counts(session, x, window),
        "marginal per speaker > 0.5": lambda x: window_marginal_counts(session, x, window, 0.5),
        "marginal per speaker > 0.3": lambda x: window_marginal_counts(session, x, window, 0.3),
    }
    print(f"{'overlap frames (2+ reference speakers) kept by':48s}" + "".join(f"{s:>28s}" for s in sets))
    for label, decode in decoders.items():
        cells = []
        for name in sets:
            overlap = any_window = mean = 0
            for wav in recordings[name]:
                _, x = wavfile.read(wav)
                x = (x / 32768.0).astype(np.float32)
                frames = frames_covering(len(x))
                ref = reference_count(wav.with_suffix(".rttm"), frames)
                wins = decode(x)
                most = np.zeros(frames)
                for s, count in wins:
                    first = s // STEP
                    m = min(len(count), frames - first)
                    most[first : first + m] = np.maximum(most[first : first + m], count[:m])
                hyp = aggregate(wins, frames)
                both = ref >= 2
                overlap += both.sum()
                any_window += (both & (most >= 2)).sum()
                mean += (both & (hyp >= 2)).sum()
            cells.append(f"{overlap / (RATE / STEP):5.1f} s: any {100 * any_window / overlap:4.1f} %, mean {100 * mean / overlap:4.1f} %")
        print(f"{label:48s}" + "".join(f"{c:>28s}" for c in cells))


def aggregate(windows, frames, latency_frames=None):
    total, hits = np.zeros(frames), np.zeros(frames)
    for s, count in windows:
        first, n = s // STEP, len(count)
        keep = np.ones(n)
        if latency_frames is not None and s > 0:
            keep[: max(0, n - latency_frames)] = 0
        m = min(n, frames - first)
        total[first : first + m] += (count * keep)[:m]
        hits[first : first + m] += keep[:m]
    return np.round(total / np.maximum(hits, 1e-9))


def fill_and_pad(count, gap, onset, offset):
    out = count.copy()
    speech = np.flatnonzero(count > 0)
    for a, b in zip(speech[:-1], speech[1:]):
        if 1 < b - a <= gap:
            out[a + 1 : b] = np.maximum(out[a + 1 : b], 1)
    on = out > 0
    padded = out.copy()
    for i in np.flatnonzero(on[1:] & ~on[:-1]) + 1:
        padded[max(0, i - onset) : i] = np.maximum(padded[max(0, i - onset) : i], 1)
    for i in np.flatnonzero(on[:-1] & ~on[1:]):
        padded[i + 1 : i + 1 + offset] = np.maximum(padded[i + 1 : i + 1 + offset], 1)
    return padded


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", type=Path, default=ROOT.parent / "shared/eval")
    ap.add_argument("--windows", default="3,5,6,7,10", help="window lengths, seconds")
    ap.add_argument("--offsets", default="", help="frame offsets to compare, ms (10 s windows)")
    ap.add_argument("--oracle", default="", help="contexts for the oracle streaming DER, seconds")
    ap.add_argument("--overlap", action="store_true", help="only: where overlapped speech is lost")
    args = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(MODEL), opts)
    sets = ["ami", "sample", "simulated"]
    recordings = {s: sorted((args.eval / s).glob("*.wav")) for s in sets}
    if args.overlap:
        overlap_report(session, recordings, sets)
        return
    fps = RATE / STEP
    rules = {}
    offsets = {}
    for seconds in [float(w) for w in args.windows.split(",")]:
        window = int(seconds * RATE)
        per_set = {}
        for name in sets:
            rows = []
            for wav in recordings[name]:
                rate, x = wavfile.read(wav)
                assert rate == RATE, wav
                x = (x / 32768.0).astype(np.float32)
                frames = frames_covering(len(x))
                ref = reference_count(wav.with_suffix(".rttm"), frames)
                wins = window_counts(session, x, window)
                rows.append((ref, wins, frames))
                if seconds == 10:
                    for ms in [float(v) for v in args.offsets.split(",") if v]:
                        shifted = reference_count(wav.with_suffix(".rttm"), frames, int(ms * RATE / 1000))
                        offsets.setdefault(ms, {}).setdefault(name, []).append((shifted, wins, frames))
            per_set[name] = rows
        rules[f"offline, {seconds:g} s windows"] = (per_set, lambda w, f: aggregate(w, f))
        if seconds >= 3:
            rules[f"streaming, latency 3 s, {seconds:g} s = 3 s window + {seconds - 3:g} s context"] = (
                per_set,
                lambda w, f: aggregate(w, f, int(round(3 * fps))),
            )
        if seconds == 10:
            for gap, on, off in [(1.0, 0, 0), (2.0, 0, 0), (0, 0.5, 0.2), (2.0, 0.5, 0.3)]:
                fill = f"fill gaps < {gap:g} s" if gap else "no gap filling"
                rules[f"offline, 10 s, {fill}, pad {on:g} s before / {off:g} s after"] = (
                    per_set,
                    (lambda g, a, b: lambda w, f: fill_and_pad(aggregate(w, f), int(g * fps), int(a * fps), int(b * fps)))(
                        gap, on, off
                    ),
                )
    for ms, per_set in offsets.items():
        rules[f"offline, 10 s windows, frames describe centre + {ms:g} ms"] = (per_set, lambda w, f: aggregate(w, f))
    print(f"frames describe their receptive field's centre + {OFFSET} samples (manifest frame_offset)")
    print(f"{'count rule':70s}" + "".join(f"{s:>26s}" for s in sets))
    print(f"{'':70s}" + "".join(f"{'miss + FA = sum %':>26s}" for _ in sets))
    for label, (per_set, rule) in rules.items():
        cells = []
        for name in sets:
            miss = fa = total = 0.0
            for ref, wins, frames in per_set[name]:
                hyp = rule(wins, frames)
                miss += np.maximum(ref - hyp, 0).sum()
                fa += np.maximum(hyp - ref, 0).sum()
                total += ref.sum()
            cells.append(f"{100 * miss / total:6.2f} + {100 * fa / total:5.2f} = {100 * (miss + fa) / total:5.2f}")
        print(f"{label:70s}" + "".join(f"{c:>26s}" for c in cells))
    for context in [float(c) for c in args.oracle.split(",") if c]:
        cells = []
        for name in sets:
            sums = np.zeros(4)
            for wav in recordings[name]:
                _, x = wavfile.read(wav)
                x = (x / 32768.0).astype(np.float32)
                ref = reference_activity(wav.with_suffix(".rttm"), frames_covering(len(x)))
                sums += oracle_streaming(session, x, ref, context)
            miss, fa, conf = 100 * sums[:3] / sums[3]
            cells.append(f"{miss:.1f} + {fa:.1f} + {conf:.1f} = {miss + fa + conf:5.2f}")
        label = f"oracle streaming DER (miss + FA + conf), {context:g} s context"
        print(f"{label:70s}" + "".join(f"{c:>26s}" for c in cells))


if __name__ == "__main__":
    main()
