"""Errors are Python exceptions of their kind, with the Rust error's message."""

from __future__ import annotations

import numpy as np
import pytest

import diarist

from conftest import FIXTURES


def test_the_kinds_share_a_base_and_bad_input_is_a_value_error():
    for kind in (diarist.ConfigError, diarist.InputError, diarist.ModelError):
        assert issubclass(kind, diarist.DiaristError)
    assert issubclass(diarist.InputError, ValueError)


def test_files_that_cannot_be_diarized(pipeline, tmp_path):
    with pytest.raises(diarist.InputError, match="cannot read .*missing.wav"):
        pipeline.diarize(tmp_path / "missing.wav")
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    with pytest.raises(diarist.InputError, match="unsupported or unrecognised audio format"):
        pipeline.diarize(text)


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros(16000, dtype=np.int32), "samples of type int32"),
        (np.zeros(16000, dtype=">f4"), "samples of type >f4"),
        (np.array([0.1, np.nan, 0.2], dtype=np.float32), "sample 1 of channel 0 is NaN"),
        (np.array([[0.0, np.inf]] * 4), "sample 0 of channel 1 is inf"),
        (np.zeros(0, dtype=np.float32), "no samples"),
        (np.zeros((2, 48000), dtype=np.float32), "48000 channels.*transpose"),
        (np.zeros((10, 2, 2), dtype=np.float32), "3 dimensions"),
    ],
)
def test_bad_arrays_are_refused_with_their_reason(pipeline, audio, message):
    with pytest.raises(diarist.InputError, match=message):
        pipeline.diarize(audio, sample_rate=16000)


def test_bad_arguments(pipeline):
    with pytest.raises(TypeError, match="not list"):
        pipeline.diarize([0.0] * 16000, sample_rate=16000)
    with pytest.raises(TypeError, match="not bytes"):
        pipeline.diarize(b"RIFF")
    with pytest.raises(ValueError, match="sample_rate"):
        pipeline.diarize(np.zeros(16000, dtype=np.float32))
    with pytest.raises(ValueError, match="sample_rate goes with an array"):
        pipeline.diarize(FIXTURES / "pyannote_sample.wav", sample_rate=16000)
    with pytest.raises(diarist.InputError, match="sample rate 0 Hz"):
        pipeline.diarize(np.zeros(16000, dtype=np.float32), sample_rate=0)
    with pytest.raises(ValueError, match="num_speakers must be a positive integer"):
        pipeline.diarize(FIXTURES / "pyannote_sample.wav", num_speakers=0)
    with pytest.raises(diarist.ConfigError, match="min_speakers must not exceed max_speakers"):
        pipeline.diarize(FIXTURES / "pyannote_sample.wav", min_speakers=3, max_speakers=2)


def test_configuration_errors(tmp_path):
    with pytest.raises(diarist.ConfigError, match="cannot read .*nowhere.toml"):
        diarist.Pipeline(tmp_path / "nowhere.toml")
    typo = tmp_path / "typo.toml"
    typo.write_text("[offline]\nwindw_secs = 3.0\n")
    with pytest.raises(diarist.ConfigError, match="typo.toml.*windw_secs"):
        diarist.Pipeline(typo)


def test_model_errors(tmp_path):
    missing = tmp_path / "missing-model.toml"
    missing.write_text('[models]\nsegmentation = "/nonexistent/model"\n')
    with pytest.raises(diarist.ModelError, match="/nonexistent/model"):
        diarist.Pipeline(missing)
    no_ort = tmp_path / "no-ort.toml"
    no_ort.write_text('[runtime]\nonnxruntime = "/nonexistent/libonnxruntime.so"\n')
    with pytest.raises(diarist.ModelError, match="cannot load the ONNX Runtime library"):
        diarist.Pipeline(no_ort)


def test_texts_over_the_limit(tmp_path):
    config = tmp_path / "short.toml"
    config.write_text("[pii]\nmax_chars = 10\n")
    with pytest.raises(diarist.InputError, match="longer than the limit of 10"):
        diarist.redact("a text of more than ten characters", config)
