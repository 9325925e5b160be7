"""diarist.ray.diarize_dataset on a real three-node Ray cluster (conftest.py) with the real
models: the command line's outputs, a worker node lost mid-run, failures recorded, resuming."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from diarist.ray import FAILURES_FILE, diarize_dataset

from conftest import FIXTURES, WAIT, cli

#: The fixtures the inputs are copies of (four 30 s recordings and one of 95 s).
SOURCES = ["ami_dev00", "ami_trn05", "ami_trn09", "pyannote_sample", "sim_ls_testother_3spk_04"]
#: Copies of each, under distinct names.
COPIES = 4


def make_inputs(directory: Path) -> list[Path]:
    """COPIES copies of each source recording in `directory`, and a garbage file; returns the
    copies (each a distinct file id)."""
    directory.mkdir(parents=True)
    copies = []
    for i in range(COPIES):
        for name in SOURCES:
            copies.append(directory / f"{name}_{i}.wav")
            shutil.copyfile(FIXTURES / f"{name}.wav", copies[-1])
    shutil.copyfile(FIXTURES / "formats/garbage.wav", directory / "garbage.wav")
    return copies


def outputs(directory: Path, ext: str) -> set[str]:
    """The names of the files in `directory` ending in `.ext`."""
    return (
        {p.name for p in directory.iterdir() if p.suffix == f".{ext}"}
        if directory.is_dir()
        else set()
    )


def wait_for(predicate, what: str) -> None:
    """Waits until `predicate()` holds, at most WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def in_background(fn) -> tuple[threading.Thread, dict]:
    """Starts `fn()` on a daemon thread; its result or exception lands in the dict returned."""
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def actor_nodes(cluster) -> dict[str, int]:
    """The node ids hosting the diarizing actors alive now (Ray Data's map workers: this
    cluster runs nothing else), with their restart counts."""
    table = cluster.global_state.actor_table(None)
    return {
        a["Address"]["NodeID"]: a["NumRestarts"]
        for a in table.values()
        if "MapWorker" in a["ActorClassName"] and a["State"] == "ALIVE"
    }


def restarts(cluster) -> int:
    """How many times the diarizing actors were restarted, all told."""
    table = cluster.global_state.actor_table(None)
    return sum(a["NumRestarts"] for a in table.values() if "MapWorker" in a["ActorClassName"])


def cli_outputs(files: list[Path], directory: Path, fmt: str) -> None:
    """The command line's outputs of `files` in `fmt`, into `directory`."""
    cli("diarize", "--format", fmt, "-o", directory, *files)


def test_inputs_sharing_a_file_id_are_refused_before_any_work(tmp_path):
    for sub, name in [("a", "x.wav"), ("b", "x.wav"), ("c", "x.flac"), ("c", "y.wav")]:
        (tmp_path / sub).mkdir(exist_ok=True)
        shutil.copyfile(FIXTURES / "pyannote_sample.wav", tmp_path / sub / name)
    with pytest.raises(ValueError, match="share a file id") as e:
        diarize_dataset([tmp_path / "a", tmp_path / "b", tmp_path / "c"], tmp_path / "out")
    assert "`x`" in str(e.value) and "y.wav" not in str(e.value)
    for sub, name in [("a", "x.wav"), ("b", "x.wav"), ("c", "x.flac")]:
        assert str(tmp_path / sub / name) in str(e.value)
    assert not (tmp_path / "out").exists(), "nothing is written"
    with pytest.raises(ValueError, match="formats"):
        diarize_dataset(tmp_path / "c", tmp_path / "out", formats=("txt",))
    with pytest.raises(ValueError, match="num_actors must be a positive integer"):
        diarize_dataset(tmp_path / "c", tmp_path / "out", num_actors=0)


def test_another_filesystem_a_configuration_and_a_missing_input(cluster, tmp_path):
    # a pyarrow filesystem other than the local one: the actors copy each input out of it
    (tmp_path / "in").mkdir()
    sample = tmp_path / "in/pyannote_sample.wav"
    shutil.copyfile(FIXTURES / "pyannote_sample.wav", sample)
    config = tmp_path / "three.toml"
    config.write_text("[offline]\nnum_speakers = 3\n")
    fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    summary = diarize_dataset(
        ["in/pyannote_sample.wav", "in/missing.wav"],
        "out",
        filesystem=fs,
        config=config,
        formats=("rttm",),
        num_actors=1,
    )
    assert summary["done"] == ["in/pyannote_sample.wav"]
    assert summary["failed"] == [
        {"input": "in/missing.wav", "file_id": "missing", "error": "no such file or directory"}
    ]
    assert sum(summary["nodes"].values()) == 1
    cli("diarize", "--config", config, "--format", "rttm", "-o", tmp_path / "cli", sample)
    rttm = (tmp_path / "out/pyannote_sample.rttm").read_text()
    assert rttm == (tmp_path / "cli/pyannote_sample.rttm").read_text()
    assert len({line.split()[7] for line in rttm.splitlines()}) == 3, "the configuration is used"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        FAILURES_FILE,
        "pyannote_sample.rttm",
    ]


def test_a_worker_node_lost_mid_run_costs_nothing(cluster, tmp_path):
    copies = make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    thread, box = in_background(lambda: diarize_dataset(tmp_path / "in", out, num_actors=3))

    # once some outputs exist, and while the others are being diarized, a worker node hosting
    # an actor goes away with everything on it
    wait_for(lambda: len(outputs(out, "rttm")) >= 3 or not thread.is_alive(), "first outputs")
    wait_for(lambda: not thread.is_alive() or len(actor_nodes(cluster)) == 3, "three actors")
    assert thread.is_alive() and len(outputs(out, "rttm")) < len(copies), "the run goes on"
    hosts = actor_nodes(cluster)
    lost = next(n for n in cluster.worker_nodes if n.node_id in hosts)
    cluster.remove_node(lost)
    written_before = len(outputs(out, "rttm"))

    thread.join(WAIT)
    assert not thread.is_alive(), f"the run did not end within {WAIT} s"
    assert "error" not in box, box.get("error")
    summary = box["result"]
    assert written_before < len(copies)

    # every input done exactly once, the garbage file failed with its reason
    assert sorted(summary["done"]) == sorted(map(str, copies))
    assert summary["skipped"] == []
    [failure] = summary["failed"]
    assert failure["input"] == str(tmp_path / "in/garbage.wav")
    assert failure["file_id"] == "garbage"
    assert failure["error"].startswith("InputError: ") and "audio format" in failure["error"]
    assert sum(summary["nodes"].values()) == len(copies) and len(summary["nodes"]) >= 2
    failures = [json.loads(line) for line in (out / FAILURES_FILE).read_text().splitlines()]
    assert failures == [failure]
    names = {p.stem for p in copies}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [FAILURES_FILE] + [f"{n}.{ext}" for n in names for ext in ("rttm", "json")]
    ), "one RTTM and one JSON per input, and nothing else (no temporary file)"
    assert restarts(cluster) > 0, "the lost node's actor was restarted on another node"

    # the command line's outputs, byte for byte
    for fmt in ("rttm", "json"):
        cli_outputs(copies, tmp_path / f"cli-{fmt}", fmt)
        for n in names:
            ours, theirs = out / f"{n}.{fmt}", tmp_path / f"cli-{fmt}/{n}.{fmt}"
            assert ours.read_bytes() == theirs.read_bytes(), f"{n}.{fmt} differs"

    # a second run finds every output and writes none; the garbage file fails again
    times = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != FAILURES_FILE}
    again = diarize_dataset(tmp_path / "in", out, num_actors=2)
    assert sorted(again["skipped"]) == sorted(map(str, copies))
    assert again["done"] == [] and again["failed"] == [failure]
    assert times == {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != FAILURES_FILE}
