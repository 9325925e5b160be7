#!/usr/bin/env python3
"""Writes the golden model outputs that `cargo test -p diarist-models --test golden` checks.

    pip install numpy onnxruntime==1.32.0 soundfile
    python tools/golden_outputs.py            # audio-fixtures/golden/outputs.{json,bin}

The INT8 models are quantized so that every x86-64 CPU computes the same integers
(tools/quantize_models.py), and ONNX Runtime's fp32 kernels agree between AVX2 and AVX-512: the
outputs below are what every CPU must give. The Rust test runs the same inputs through
diarist-models natively and, where qemu-user is installed, as an AVX2-only CPU
(`qemu-x86_64 -cpu EPYC-Rome`), so a few windows only: emulation is ~60x slower.

Inputs (all from audio-fixtures/pyannote_sample.wav, 16 kHz):
- segmentation-3.0 INT8: a batch of two 10 s windows (offline size) and one 6 s window (a
  streaming window with its context): log-probabilities [batch, frames, 7];
- CAM++ INT8 backbone: a batch of two 3 s windows: frame features [batch, frames, 512]; then the
  fp32 pooling graph on the first window's features with two speakers' weights: [1, 2, 192];
- PII tagger INT8: two token sequences (ids from the tokenizer's vocabulary, fixed seed):
  logits [batch, tokens, 19].
The JSON lists, for each output, its shape and where its little-endian f32 values start in the
.bin file; the inputs are described there too, so the test can rebuild them.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
AUDIO = "audio-fixtures/pyannote_sample.wav"
SR = 16000
SEG_WINDOWS = [(0, 10 * SR), (12 * SR, 10 * SR)]
SEG_CONTEXT_WINDOW = (20 * SR, 6 * SR)
EMB_WINDOWS = [(4 * SR, 3 * SR), (16 * SR, 3 * SR)]
PII_SEED, PII_TOKENS, PII_VOCAB = 7, 48, (1000, 30000)


def session(path):
    """A session as diarist opens one: extended optimisations, one thread."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def pool_weights(frames):
    """Two speakers' weights over `frames` backbone frames: the first third, and a soft ramp."""
    w = np.zeros((1, 2, frames), np.float32)
    w[0, 0, : frames // 3] = 1.0
    w[0, 1] = np.linspace(0.0, 1.0, frames, dtype=np.float32)
    return w


def pii_ids():
    """Token sequences with [CLS] (101) first and [SEP] (102) last."""
    rng = np.random.default_rng(PII_SEED)
    ids = rng.integers(*PII_VOCAB, (2, PII_TOKENS)).astype(np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "audio-fixtures/golden")
    args = ap.parse_args()
    audio = sf.read(ROOT / AUDIO, dtype="float32")[0]
    cut = lambda ws: np.stack([audio[s: s + n] for s, n in ws])  # noqa: E731

    seg = session(ROOT / "models/segmentation-3.0/segmentation-3.0.int8.onnx")
    outputs = {
        "segmentation": seg.run(None, {"waveform": cut(SEG_WINDOWS)[:, None]})[0],
        "segmentation_context": seg.run(None, {"waveform": cut([SEG_CONTEXT_WINDOW])[:, None]})[0],
    }
    frames = session(ROOT / "models/campplus/campplus-frames.int8.onnx")
    feats = frames.run(None, {"waveform": cut(EMB_WINDOWS)})[0]
    outputs["embedding_features"] = feats
    pool = session(ROOT / "models/campplus/campplus-pool.onnx")
    weights = pool_weights(feats.shape[1])
    outputs["embedding_pooled"] = pool.run(None, {"features": feats[:1], "weights": weights})[0]
    pii = session(ROOT / "models/pii-minilm-l3/model.int8.onnx")
    ids = pii_ids()
    outputs["pii_logits"] = pii.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]

    args.out.mkdir(parents=True, exist_ok=True)
    blob, index, at = [], {}, 0
    for name, value in outputs.items():
        value = np.ascontiguousarray(value, dtype="<f4")
        index[name] = {"shape": list(value.shape), "offset": at}
        blob.append(value.tobytes())
        at += value.size
    (args.out / "outputs.bin").write_bytes(b"".join(blob))
    meta = {
        "made_by": "tools/golden_outputs.py",
        "onnxruntime": ort.__version__,
        "audio": AUDIO,
        "segmentation_windows": [list(w) for w in SEG_WINDOWS],
        "segmentation_context_window": list(SEG_CONTEXT_WINDOW),
        "embedding_windows": [list(w) for w in EMB_WINDOWS],
        "pool_weights": weights[0].tolist(),
        "pii_ids": ids.tolist(),
        "outputs": index,
    }
    (args.out / "outputs.json").write_text(json.dumps(meta, indent=1) + "\n")
    for name, value in outputs.items():
        print(f"{name}: shape {list(value.shape)}, range {value.min():.3f} .. {value.max():.3f}")


if __name__ == "__main__":
    main()
