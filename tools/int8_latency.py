#!/usr/bin/env python3
"""Single-thread latency of ONNX model files side by side, in interleaved rounds (so that every
file sees the same machine load), as diarist opens them (ONNX Runtime, extended optimisations).

    pip install numpy onnxruntime==1.32.0 soundfile
    python tools/int8_latency.py models/segmentation-3.0/*.onnx models/campplus/campplus-frames*.onnx \
        models/pii-minilm-l3/model.int8.onnx OLD.onnx ...

Inputs by model kind: segmentation [1, 1, N] gets 10 s of audio-fixtures/pyannote_sample.wav, a
waveform model [1, N] 3 s of it, a token classifier 128 token ids. Prints the median over the
rounds of each file's mean time per run.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def feed(session, audio):
    first = session.get_inputs()[0]
    if first.name == "input_ids":
        ids = np.random.default_rng(0).integers(1000, 20000, (1, 128)).astype(np.int64)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if len(first.shape) == 3:
        return {first.name: audio[None, None, : 10 * 16000]}
    return {first.name: audio[None, : 3 * 16000]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.6, help="timing per file and round")
    args = ap.parse_args()
    audio = sf.read(ROOT / "audio-fixtures/pyannote_sample.wav", dtype="float32")[0]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    sessions = {p: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for p in args.models}
    times = {p: [] for p in sessions}
    for _ in range(args.rounds):
        for p, s in sessions.items():
            f = feed(s, audio)
            s.run(None, f)
            t0, runs = time.perf_counter(), 0
            while time.perf_counter() - t0 < args.seconds:
                s.run(None, f)
                runs += 1
            times[p].append(1000 * (time.perf_counter() - t0) / runs)
    for p, t in times.items():
        print(f"{p}: median {np.median(t):.2f} ms")


if __name__ == "__main__":
    main()
