"""Shared fixtures. The tests import `diarist` from the installed wheel (tools/test_python.sh
installs it into a fresh virtual environment), never from the source tree."""

from __future__ import annotations

import os
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

import diarist

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "audio-fixtures"
SAMPLE = FIXTURES / "pyannote_sample.wav"
#: The command line the Python results must agree with (`cargo build --release -p diarist`).
CLI = Path(os.environ.get("DIARIST_CLI", REPO / "target/release/diarist"))


@pytest.fixture(scope="session")
def pipeline() -> diarist.Pipeline:
    return diarist.Pipeline()


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV file's samples (frames by channels) and sample rate."""
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data.reshape(-1, w.getnchannels()), w.getframerate()


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """Writes int16 samples (frames by channels) as a WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def cli(*args: str | Path) -> str:
    """The command line's standard output for `args`; it must succeed."""
    assert CLI.is_file(), f"{CLI} is missing: cargo build --release -p diarist"
    done = subprocess.run(
        [str(CLI), *map(str, args)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
