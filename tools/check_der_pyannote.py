#!/usr/bin/env python3
"""Check that `diarist eval` agrees with pyannote.metrics, and pin pyannote's figures for a test.

    python3 -m venv /tmp/venv-metrics && /tmp/venv-metrics/bin/pip install pyannote.metrics
    cargo build --release -p diarist
    /tmp/venv-metrics/bin/python tools/check_der_pyannote.py [--eval ../shared/eval]

For every recording in the eval folders (ami, sample, simulated) it diarizes with diarist, then
scores those hypotheses with pyannote.metrics' DiarizationErrorRate (overlap scored, UEM, collar 0
and 0.25 s) and with `diarist eval --json`, per file and pooled, and prints both and the largest
difference. It copies references, UEMs and hypotheses to audio-fixtures/der/ with pyannote's
numbers in expected.json, so `crates/diarist/tests/eval_pyannote.rs` checks agreement without
Python.
"""

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/diarist"


def read_rttm(path):
    ann = {}
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if not f or f[0] != "SPEAKER":
            continue
        a = ann.setdefault(f[1], Annotation(uri=f[1]))
        start, dur = float(f[3]), float(f[4])
        a[Segment(start, start + dur), len(a)] = f[7]
    return ann


def read_uem(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if len(f) >= 4:
            out.setdefault(f[0], []).append(Segment(float(f[2]), float(f[3])))
    return {k: Timeline(v) for k, v in out.items()}


def pyannote_scores(ref_dir, hyp_dir, collar):
    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    rows = {}
    for ref_path in sorted(Path(ref_dir).glob("*.rttm")):
        uri = ref_path.stem
        ref = read_rttm(ref_path)[uri]
        hyp = read_rttm(Path(hyp_dir) / f"{uri}.rttm").get(uri, Annotation(uri=uri))
        uem = read_uem(Path(ref_dir) / f"{uri}.uem")[uri]
        rows[uri] = 100 * metric(ref, hyp, uem=uem)
    rows["POOLED"] = 100 * abs(metric)
    return rows


def diarist_scores(ref_dir, hyp_dir, collar):
    out = subprocess.run(
        [str(BIN), "eval", "--ref", str(ref_dir), "--hyp", str(hyp_dir), "--uem", str(ref_dir), "--collar", str(collar), "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    report = json.loads(out)
    rows = {r["file_id"]: r["der"] for r in report["files"]}
    rows["POOLED"] = report["pooled"]["der"]
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", type=Path, default=ROOT.parent / "shared/eval")
    args = ap.parse_args()
    fixtures = ROOT / "audio-fixtures/der"
    expected = {}
    worst = 0.0
    for name in ("ami", "sample", "simulated"):
        src = args.eval / name
        with tempfile.TemporaryDirectory() as tmp:
            hyp = Path(tmp)
            subprocess.run([str(BIN), "diarize", str(src), "-o", str(hyp)], check=True, capture_output=True)
            dst = fixtures / name
            if dst.exists():
                shutil.rmtree(dst)
            (dst / "ref").mkdir(parents=True)
            (dst / "hyp").mkdir()
            for f in sorted(src.glob("*.rttm")):
                shutil.copy(f, dst / "ref" / f.name)
                shutil.copy(f.with_suffix(".uem"), dst / "ref" / f.with_suffix(".uem").name)
                shutil.copy(hyp / f.name, dst / "hyp" / f.name)
        for collar in (0.0, 0.25):
            ours = diarist_scores(dst / "ref", dst / "hyp", collar)
            theirs = pyannote_scores(dst / "ref", dst / "hyp", collar)
            expected[f"{name}@{collar}"] = theirs
            for uri, value in theirs.items():
                diff = abs(value - ours[uri])
                worst = max(worst, diff)
                print(f"{name:9} collar {collar:4} {uri:28} pyannote {value:7.2f}  diarist {ours[uri]:7.2f}  diff {diff:.3f}")
    (fixtures / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"largest difference: {worst:.3f} DER points")
    if worst > 0.1:
        raise SystemExit("diarist eval disagrees with pyannote.metrics by more than 0.1 point")


if __name__ == "__main__":
    main()
