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
"""

import argparse
from pathlib import Path

import numpy as np
import onnxruntime as ort
from scipy.io import wavfile

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models/segmentation-3.0/segmentation-3.0.int8.onnx"
CLASSES = [[], [0], [1], [2], [0, 1], [0, 2], [1, 2]]
SPEAKERS = np.array([len(c) for c in CLASSES])
STEP, LENGTH, RATE = 270, 991, 16000
HOP = 59 * STEP


def frames_covering(samples):
    return (samples - LENGTH // 2 + STEP - 1) // STEP


def reference_count(rttm, frames):
    count = np.zeros(frames)
    centre = np.arange(frames) * STEP + LENGTH // 2
    for line in rttm.read_text().splitlines():
        f = line.split()
        start = float(f[3]) * RATE
        end = start + float(f[4]) * RATE
        count += (centre >= start) & (centre < end)
    return count


def window_counts(session, audio, window):
    """(start sample, per-frame speaker count) of every window, the last one aligned to the end."""
    starts = list(range(0, max(len(audio) - window, 0) + 1, HOP))
    if len(audio) > window and starts[-1] + window < len(audio):
        starts.append((len(audio) - window) // STEP * STEP)
    out = []
    for s in starts:
        chunk = audio[s : s + window]
        if len(chunk) < window:
            chunk = np.pad(chunk, (0, window - len(chunk)))
        scores = session.run(None, {"waveform": chunk[None, None, :]})[0][0]
        out.append((s, SPEAKERS[np.argmax(scores, axis=1)]))
    return out


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
    args = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(MODEL), opts)
    sets = ["ami", "sample", "simulated"]
    recordings = {s: sorted((args.eval / s).glob("*.wav")) for s in sets}
    fps = RATE / STEP
    rules = {}
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


if __name__ == "__main__":
    main()
