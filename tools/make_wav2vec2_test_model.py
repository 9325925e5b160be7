#!/usr/bin/env python3
"""Build a small Wav2Vec2-architecture speaker segmentation model with random weights.

    pip install torch numpy onnx onnxruntime==1.32.0 transformers
    python tools/make_wav2vec2_test_model.py --out models/wav2vec2-test

It proves that the segmentation slot is generic: a transformers Wav2Vec2 encoder (conv feature
extractor, 320-sample frame step, 400-sample receptive field) with a multilabel (sigmoid) head
over 3 speakers, exported to ONNX and described by a manifest. The weights are random (seed 0):
it is a test model for plumbing, not for accuracy.
"""

import argparse
import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn
from transformers import Wav2Vec2Config, Wav2Vec2Model

SPEAKERS = 3


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

    def forward(self, waveform):  # [B, 1, N] -> [B, F, 3] probabilities
        hidden = self.encoder(waveform[:, 0, :]).last_hidden_state
        return torch.sigmoid(self.head(hidden))


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
    for n in (400, 991, 16000, 48000, 160000):
        frames = sess.run(None, {"waveform": np.zeros((1, 1, n), np.float32)})[0].shape[1]
        assert frames == 1 + (n - 400) // 320, (n, frames)
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
