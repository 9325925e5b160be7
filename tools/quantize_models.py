#!/usr/bin/env python3
"""INT8 variants of diarist's models that give the same numbers on every x86-64 CPU.

    python3 -m venv .venv-quant && . .venv-quant/bin/activate
    pip install numpy onnx onnxruntime==1.32.0 soundfile
    python tools/quantize_models.py            # rewrites every INT8 file and its manifest sha256

Why: ONNX Runtime multiplies unsigned 8-bit activations by signed 8-bit weights. On AVX2 (and
AVX-512 without VNNI) it does so with VPMADDUBSW, which adds two products into a saturating
16-bit lane: 2 x 255 x 127 overflows it. AVX-512 VNNI (VPDPBUSD) and AMX accumulate in 32 bits
and never saturate. A model quantized with full-range 8-bit weights therefore gives different
outputs on different CPUs. With `reduce_range` the weights use 7 bits (-64..63): 2 x 255 x 64
fits, every kernel computes the exact integer result, and the fp32 parts of the graphs are
already bit-identical across these CPUs (checked by tools/golden_outputs.py and the golden test).
Unsigned weights (U8U8) would also be exact, but run 15-80 % slower here (docs/MODELS.md).

- segmentation-3.0: dynamic INT8 of the LSTMs and linear layers, per channel, 7-bit weights.
- CAM++ (the one-graph model and the backbone): static QDQ INT8 of the convolutions, per channel,
  7-bit weights, fbank kept fp32, calibrated on AMI training audio (`--calibration`).
- PII tagger: its fp32 file is not committed (tools/pii/train.py rebuilds it), so the shipped
  INT8 weights are dequantized and quantized again with 7 bits; tools/pii/train.py quantizes its
  fp32 export with `quantize_pii` here.

Paths default to the checkout this script lies in, and to `../shared/eval` beside it.
"""

import argparse
import hashlib
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import soundfile as sf
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_edits import batch_invariant_time_mean  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
SR = 16000
FRAME_LEN, FRAME_SHIFT = 400, 160


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def quantize_segmentation(src, dst):
    """Dynamic INT8 (LSTM, MatMul, Gemm), per channel, 7-bit weights."""
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                     op_types_to_quantize=["MatMul", "Gemm", "LSTM"])
    return dst


def quantize_pii(src, dst):
    """Dynamic INT8 of a BERT token classifier (every op the quantizer knows: MatMul and the
    embedding Gathers), per channel, 7-bit weights."""
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    return dst


def dequantize_pii(src, dst):
    """The fp32 graph an INT8 PII model stands for: each MatMulInteger on a constant weight
    becomes a MatMul on the dequantized weight, each DequantizeLinear of a constant a constant.
    The dynamic activation quantization nodes go with them."""
    m = onnx.load(str(src))
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    value = {name: numpy_helper.to_array(t) for name, t in inits.items()}
    producers = {o: n for n in g.node for o in n.output}

    def dequantized(q, scale, zp, axis):
        q, s = value[q].astype(np.float32), value[scale]
        z = value[zp].astype(np.float32) if zp else np.zeros_like(s)
        if s.ndim == 1 and s.size > 1:
            shape = [1] * q.ndim
            shape[axis] = -1
            s, z = s.reshape(shape), z.reshape(shape)
        return ((q - z) * s).astype(np.float32)

    keep, new_inits = [], []
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            zp = n.input[2] if len(n.input) > 2 else None
            new_inits.append(numpy_helper.from_array(dequantized(n.input[0], n.input[1], zp, axis), n.output[0]))
        elif n.op_type == "MatMulInteger" and n.input[1] in inits:
            # B [K, N] is quantized per output column N: scale and zero point of length N.
            act = producers[n.input[0]]
            assert act.op_type == "DynamicQuantizeLinear", act.op_type
            b = n.input[1]
            scale = b[: -len("_quantized")] + "_scale"
            w = dequantized(b, scale, n.input[3] if len(n.input) > 3 else None, 1)
            name = b[: -len("_quantized")] + "_dequantized"
            new_inits.append(numpy_helper.from_array(w, name))
            keep.append(onnx.helper.make_node("MatMul", [act.input[0], name], [n.output[0] + "_float"], name=n.name + "_float"))
            # The graph rescales the integer product: Cast -> Mul(scale a * scale b). Route the
            # float product around it by rewriting the Mul that consumes the Cast below.
        else:
            keep.append(n)
    # Replace Cast(MatMulInteger) -> Mul(x, scales) chains: the Mul's output is the float MatMul.
    float_of = {n.output[0][: -len("_float")]: n.output[0] for n in keep if n.op_type == "MatMul" and n.output[0].endswith("_float")}
    cast_of = {n.output[0]: float_of[n.input[0]] for n in keep if n.op_type == "Cast" and n.input[0] in float_of}
    out = []
    for n in keep:
        if n.op_type == "Cast" and n.input[0] in float_of:
            continue
        if n.op_type == "Mul" and n.input[0] in cast_of:
            out.append(onnx.helper.make_node("Identity", [cast_of[n.input[0]]], [n.output[0]], name=n.name))
            continue
        out.append(n)
    del g.node[:]
    g.node.extend(out)
    used = {i for n in g.node for i in n.input}
    rest = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(rest + [t for t in new_inits if t.name in used])
    onnx.checker.check_model(m)
    # Drop nodes left without consumers (the activation quantizers and their scale products).
    m = prune(m)
    onnx.save(m, str(dst))
    return dst


def prune(m):
    """Removes nodes whose outputs nothing uses, until none is left."""
    g = m.graph
    outputs = {o.name for o in g.output}
    while True:
        used = {i for n in g.node for i in n.input} | outputs
        dead = [n for n in g.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    used = {i for n in g.node for i in n.input}
    rest = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(rest)
    return m


def quantize_campplus(src, dst, calib_wavs, with_weights=True):
    """Static (QDQ) INT8 of CAM++'s convolutions, per channel, 7-bit weights, calibrated on
    `calib_wavs` (3 s windows, 8 per file). The fbank nodes stay fp32."""
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        fbank_nodes = [n.name for n in onnx.load(str(pre)).graph.node if n.name.startswith("/fbank/")]
        n = 3 * SR
        t = 1 + (n - FRAME_LEN) // FRAME_SHIFT
        feeds = []
        for f in calib_wavs:
            a = sf.read(f, dtype="float32")[0]
            for off in np.linspace(0, len(a) - n, 8).astype(int):
                feed = {"waveform": a[None, off: off + n]}
                if with_weights:
                    feed["weights"] = np.ones((1, 1, t), np.float32)
                feeds.append(feed)

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter(feeds)

            def get_next(self):
                return next(self.it, None)

        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        op_types_to_quantize=["Conv"], nodes_to_exclude=fbank_nodes)
    batch_invariant_time_mean(dst)
    return dst


def preoptimize(path):
    """Rewrites an ONNX file with ONNX Runtime's portable (extended-level) graph optimisations
    already applied: a QDQ model otherwise spends ~250 ms fusing at every load. Layout and
    hardware-specific optimisations still happen at load time."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "optimized.onnx"
        opts.optimized_model_filepath = str(out)
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        Path(path).write_bytes(out.read_bytes())


def set_sha256(manifest, file_name, digest):
    """Rewrites the sha256 that follows `file = "<file_name>"` (or `frames_file = ...`) in a
    manifest, keeping everything else of the file as it is."""
    text = Path(manifest).read_text()
    pattern = re.compile(r'((?:file|frames_file) = "' + re.escape(file_name) + r'"\s*,\s*(?:frames_)?sha256 = ")[0-9a-f]{64}(")')
    new, count = pattern.subn(lambda m: m.group(1) + digest + m.group(2), text)
    if count != 1:
        raise ValueError(f"{manifest}: expected one sha256 for {file_name}, found {count}")
    Path(manifest).write_text(new)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--calibration", type=Path, nargs="*",
                    default=[EVAL / "ami/ami_trn00.wav", EVAL / "ami/ami_trn02.wav"],
                    help="16 kHz wav files for CAM++ INT8 calibration")
    args = ap.parse_args()
    seg, cam, pii = args.models / "segmentation-3.0", args.models / "campplus", args.models / "pii-minilm-l3"

    out = quantize_segmentation(seg / "segmentation-3.0.onnx", seg / "segmentation-3.0.int8.onnx")
    set_sha256(seg / "manifest.toml", out.name, sha256(out))
    out = quantize_campplus(cam / "campplus.onnx", cam / "campplus.int8.onnx", args.calibration)
    set_sha256(cam / "manifest.toml", out.name, sha256(out))
    out = quantize_campplus(cam / "campplus-frames.onnx", cam / "campplus-frames.int8.onnx", args.calibration,
                            with_weights=False)
    preoptimize(out)
    set_sha256(cam / "manifest.toml", out.name, sha256(out))
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = dequantize_pii(pii / "model.int8.onnx", Path(tmp) / "model.fp32.onnx")
        out = quantize_pii(fp32, pii / "model.int8.onnx")
    set_sha256(pii / "manifest.toml", out.name, sha256(out))
    for p in sorted(args.models.glob("*/*.int8.onnx")):
        print(f"{p.relative_to(args.models)}: {p.stat().st_size / 1e6:.2f} MB sha256 {sha256(p)}")


if __name__ == "__main__":
    main()
