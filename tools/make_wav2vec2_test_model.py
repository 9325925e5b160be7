#!/usr/bin/env python3
"""Build a small Wav2Vec2-architecture speaker segmentation model with random weights.

    pip install torch numpy onnx onnxruntime==1.32.0 transformers
    python tools/make_wav2vec2_test_model.py --out models/wav2vec2-test

It proves that the segmentation slot is generic: a transformers Wav2Vec2 encoder (conv feature
extractor, 320-sample frame step, 400-sample receptive field) with a multilabel (sigmoid) head
over 3 speakers, exported to ONNX and described by a manifest. The weights are random (seed 0):
it is a test model for plumbing, not for accuracy. So that its output is not a flat ~0.5, each
speaker's logit also gets a term in the frame's log energy (framed exactly like the conv feature
extractor: 400 samples every 320) with its own threshold: silence gives ~0, loud speech ~1, and the
three speakers switch on at different levels, modulated by the random encoder.
"""

import argparse
import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import Wav2Vec2Config, Wav2Vec2Model

SPEAKERS = 3
# Optional parity audio: ../shared/eval beside the checkout (skipped when absent).
AUDIO = str(Path(__file__).resolve().parents[2] / "shared/eval/ami/ami_dev00.wav")


class Wav2Vec2Segmentation(nn.Module):
    def __init__(self):
        super().__init__()
        config = Wav2Vec2Config(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
            conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
            feat_extract_norm="group", do_stable_layer_norm=False,
        )
        self.encoder = Wav2Vec2Model(config)
        self.head = nn.Linear(config.hidden_size, SPEAKERS)
        # Energy gate: logit += (energy_db - threshold_db) / 4 per speaker.
        self.register_buffer("threshold_db", torch.tensor([-42.0, -36.0, -30.0]))

    def forward(self, waveform):  # [B, 1, N] -> [B, F, 3] probabilities
        hidden = self.encoder(waveform[:, 0, :]).last_hidden_state
        power = F.avg_pool1d(waveform * waveform, kernel_size=400, stride=320)  # [B, 1, F]
        energy_db = 10.0 * torch.log10(power.transpose(1, 2) + 1e-10)  # [B, F, 1]
        return torch.sigmoid(self.head(hidden) + (energy_db - self.threshold_db) / 4.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("models/wav2vec2-test"))
    args = ap.parse_args()
    torch.manual_seed(0)
    model = Wav2Vec2Segmentation().eval()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "wav2vec2-test.onnx"
    x = torch.randn(2, 1, 48000) * 0.1
    with torch.no_grad():
        ref = model(x).numpy()
        torch.onnx.export(
            model, (x,), str(path), input_names=["waveform"], output_names=["activations"],
            dynamic_axes={"waveform": {0: "batch", 2: "samples"}, "activations": {0: "batch", 1: "frames"}},
            opset_version=17, dynamo=False,
        )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"waveform": x.numpy()})[0]
    print(f"parity: max abs diff {np.abs(got - ref).max():.2e}; {path.stat().st_size / 1e6:.2f} MB")
    counts = []
    for n in (400, 991, 1000, 16000, 48000, 160000):
        frames = sess.run(None, {"waveform": np.zeros((1, 1, n), np.float32)})[0].shape[1]
        assert frames == 1 + (n - 400) // 320, (n, frames)
        counts.append(f"{n}->{frames}")
    print(f"frames = 1 + (N - 400) // 320 holds: {', '.join(counts)}")
    rng = np.random.default_rng(0)
    quiet = np.concatenate([np.zeros(16000), 0.1 * rng.standard_normal(16000)]).astype(np.float32)
    act = sess.run(None, {"waveform": quiet[None, None]})[0][0]
    print(f"activations, silence then noise at -20 dBFS: mean per speaker {act[:45].mean(0).round(3)} then {act[55:].mean(0).round(3)}")
    if Path(AUDIO).exists():
        import soundfile as sf

        a = sf.read(AUDIO, dtype="float32")[0][:160000]
        act = sess.run(None, {"waveform": a[None, None]})[0][0]
        print(f"activations on 10 s of AMI: mean {act.mean(0).round(3)}, fraction > 0.5 {(act > 0.5).mean(0).round(3)}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (args.out / "manifest.toml").write_text(f'''# A random-weight Wav2Vec2-architecture segmentation model for tests (tools/make_wav2vec2_test_model.py)
[model]
name = "wav2vec2-test"
task = "segmentation"
file = "{path.name}"
sha256 = "{digest}"
licence = "MIT"
licence_file = "LICENSE"
source = "random weights (seed 0), transformers Wav2Vec2Config; tools/make_wav2vec2_test_model.py"
produced_by = "tools/make_wav2vec2_test_model.py"
sample_rate = 16000

[input]
waveform = "waveform"
layout = "batch_channel_samples"
min_samples = 400
front_end = "waveform"

[output]
name = "activations"
kind = "multilabel"
activation = "sigmoid"
frame_step = 320
frame_length = 400
max_speakers = {SPEAKERS}
''')
    print(f"sha256 {digest}")


if __name__ == "__main__":
    main()
