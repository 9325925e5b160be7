"""Offline diarization: the same turns as the command line, from files and from arrays."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import diarist

from conftest import SAMPLE, cli, read_wav, write_wav


@pytest.fixture(scope="module")
def sample(pipeline) -> diarist.Diarization:
    return pipeline.diarize(SAMPLE)


def test_a_file_gives_the_command_lines_rttm(sample):
    expected = cli("diarize", "--format", "rttm", SAMPLE)
    assert expected.startswith("SPEAKER pyannote_sample 1 ")
    assert sample.to_rttm() == expected
    assert sample.to_rttm("x").split()[1] == "x"


def test_a_file_gives_the_command_lines_json(sample):
    assert sample.to_json() == cli("diarize", "--format", "json", SAMPLE)
    parsed = json.loads(sample.to_json("x"))
    assert parsed["file_id"] == "x" and parsed["speakers"] == sample.speakers
    assert len(parsed["turns"]) == len(sample.turns)
    assert len(parsed["exclusive_turns"]) == len(sample.exclusive_turns)


def test_the_result_holds_turns_in_seconds(sample):
    assert sample.speakers == ["SPEAKER_00", "SPEAKER_01"]
    assert 29.9 < sample.duration <= 30.0
    assert sample.turns and sample.exclusive_turns
    for t in sample.turns:
        assert 0 <= t.start < t.end <= sample.duration and t.speaker in sample.speakers
    assert sample.turns == sorted(sample.turns, key=lambda t: (t.start, t.end))
    for a, b in zip(sample.exclusive_turns, sample.exclusive_turns[1:]):
        assert a.end <= b.start, "exclusive turns never overlap"
    assert repr(sample).startswith("<Diarization: 2 speakers")


@pytest.mark.parametrize("dtype", ["int16", "float32", "float64"])
def test_an_array_gives_what_its_file_gives(pipeline, sample, dtype):
    pcm, rate = read_wav(SAMPLE)
    audio = pcm[:, 0] if dtype == "int16" else pcm[:, 0].astype(dtype) / 32768
    d = pipeline.diarize(audio, sample_rate=rate)
    assert d.to_rttm("pyannote_sample") == sample.to_rttm()
    assert d.to_rttm().split()[1] == "audio"


def test_channels_are_mixed_and_rates_resampled_as_the_command_line_does(pipeline, tmp_path):
    pcm, rate = read_wav(SAMPLE)
    mono = pcm[:, 0].astype(np.float64)
    t = np.arange(int(len(mono) * 44100 / rate)) * rate / 44100
    left = np.interp(t, np.arange(len(mono)), mono)
    stereo = np.stack([left, left * 0.5], axis=1).round().astype(np.int16)
    path = tmp_path / "stereo44k.wav"
    write_wav(path, stereo, 44100)
    d = pipeline.diarize(stereo, sample_rate=44100)
    assert d.to_rttm("stereo44k") == cli("diarize", "--format", "rttm", path)
    # an array in Fortran order is read as frames by channels like any other
    fortran = np.asfortranarray(stereo)
    assert not fortran.flags.c_contiguous
    assert pipeline.diarize(fortran, sample_rate=44100).turns == d.turns


def test_speaker_counts_are_passed_on(pipeline):
    assert len(pipeline.diarize(SAMPLE, num_speakers=3).speakers) == 3
    assert len(pipeline.diarize(SAMPLE, max_speakers=1).speakers) == 1
    assert len(pipeline.diarize(SAMPLE, min_speakers=3, max_speakers=4).speakers) >= 3


def test_a_configuration_file_changes_only_its_keys(tmp_path):
    config = tmp_path / "two.toml"
    config.write_text("[offline]\nnum_speakers = 3\n")
    p = diarist.Pipeline(config)
    assert "num_speakers = 3" in p.config
    assert len(p.diarize(SAMPLE).speakers) == 3


def test_an_annotation_for_pyannote(sample):
    annotation = sample.to_annotation()
    assert annotation.uri == "pyannote_sample"
    assert sorted(annotation.labels()) == sample.speakers
    segments = sorted((s.start, s.end) for s, _ in annotation.itertracks())
    assert segments == [(t.start, t.end) for t in sample.turns]


def test_without_pyannote_an_annotation_is_an_import_error_that_says_what_to_install(
    sample, monkeypatch
):
    monkeypatch.setitem(sys.modules, "pyannote.core", None)
    with pytest.raises(ImportError, match="pip install pyannote.core"):
        sample.to_annotation()
