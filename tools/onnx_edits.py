"""Edits applied to exported ONNX graphs after export (by tools/export_models.py, or by hand:
`python tools/onnx_edits.py models/campplus/*.onnx`). Needs only `onnx`.

batch_invariant_time_mean: CAM++'s in-graph fbank subtracts its mean over time, exported as
ReduceMean over axis 1 of [batch, frames, 80]. ONNX Runtime reduces that middle axis in an order
that depends on the batch size, so a window's features changed (by ~1e-5, enough to move INT8
activations by one step, up to 0.67 in the backbone's output) with the other windows in its
batch. The edit computes the same mean as GlobalAveragePool over the transposed features, which
reduces each row on its own. Idempotent: a graph without the fbank ReduceMean is left alone.
"""

import sys

import onnx
from onnx import helper


def batch_invariant_time_mean(path):
    """Rewrites the ONNX file at `path` in place; returns whether it changed."""
    m = onnx.load(str(path))
    g = m.graph
    found = [(i, n) for i, n in enumerate(g.node) if n.op_type == "ReduceMean" and n.name.startswith("/fbank/")]
    if not found:
        return False
    (i, n), = found
    axes = [list(a.ints) for a in n.attribute if a.name == "axes"]
    keep = [a.i for a in n.attribute if a.name == "keepdims"]
    if axes != [[1]] or keep not in ([], [1]) or len(n.input) != 1:
        raise ValueError(f"{path}: unexpected fbank mean {n}")
    x, y = n.input[0], n.output[0]
    t, r = y + "/by_row", y + "/row_mean"
    edit = [
        helper.make_node("Transpose", [x], [t], perm=[0, 2, 1], name=n.name + "/transpose"),
        helper.make_node("GlobalAveragePool", [t], [r], name=n.name + "/row_mean"),
        helper.make_node("Transpose", [r], [y], perm=[0, 2, 1], name=n.name + "/transpose_back"),
    ]
    del g.node[i]
    for k, node in enumerate(edit):
        g.node.insert(i + k, node)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return True


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(p, "edited" if batch_invariant_time_mean(p) else "unchanged")
