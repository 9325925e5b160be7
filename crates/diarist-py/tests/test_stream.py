"""Live streams: audio pushed in chunks, events as they become final, final turns at the end."""

from __future__ import annotations

import numpy as np
import pytest

import diarist

from conftest import SAMPLE, read_wav


def pushed(stream: diarist.Stream, audio: np.ndarray, chunk: int) -> list[dict]:
    """Every event of `audio` pushed in chunks of `chunk` frames, then closed."""
    events = []
    for at in range(0, len(audio), chunk):
        events += stream.push(audio[at : at + chunk])
    return events + stream.close()


def test_a_stream_gives_final_turns_of_both_speakers(pipeline):
    pcm, rate = read_wav(SAMPLE)
    with pipeline.stream(sample_rate=rate) as stream:
        events = pushed(stream, pcm[:, 0].astype(np.float32) / 32768, rate // 2)
    summary = events[-1]
    assert summary["type"] == "summary"
    assert summary["samples_in"] == summary["samples_final"] == len(pcm)
    assert summary["samples_lost"] == 0
    assert summary["speakers"] == ["S1", "S2"]
    turns = [e for e in events if e["type"] == "turn"]
    assert turns and all(e["final"] for e in turns)
    ended = [e for e in turns if e["status"] == "ended"]
    assert [(e["start"] / 16000, e["end"] / 16000, e["speaker"]) for e in
            sorted(ended, key=lambda e: (e["start"], e["end"]))] == stream.turns
    assert {t.speaker for t in stream.turns} == {"S1", "S2"}
    speech = sum(t.end - t.start for t in stream.turns)
    assert 15 < speech < 30, speech
    assert stream.to_rttm("live").count("SPEAKER live 1 ") == len(stream.turns)
    assert stream.close() == [], "closing again returns nothing"


def test_events_arrive_while_audio_is_pushed(pipeline):
    pcm, rate = read_wav(SAMPLE)
    stream = pipeline.stream(sample_rate=rate, latency=2.0)
    early = []
    for at in range(0, len(pcm), rate):
        early += stream.push(pcm[at : at + rate, 0])
    # pushing waits while the engine's 10 s buffer is full, so by the last push it has diarized
    # at least the first 20 s
    assert any(e["type"] == "turn" and e["start"] < 20 * 16000 for e in early)
    assert stream.close()[-1]["type"] == "summary"


def test_other_rates_and_channels_are_converted(pipeline):
    pcm, rate = read_wav(SAMPLE)
    stereo8k = np.repeat(pcm[::2], 2, axis=1)  # every other sample: 8 kHz, two channels
    with pipeline.stream(sample_rate=8000) as stream:
        events = pushed(stream, stereo8k, 4000)
    assert abs(events[-1]["samples_in"] - len(pcm)) <= 1
    assert len(stream.turns) > 2


def test_a_closed_stream_refuses_audio(pipeline):
    stream = pipeline.stream()
    stream.close()
    with pytest.raises(diarist.InputError, match="closed"):
        stream.push(np.zeros(1600, dtype=np.float32))


def test_bad_stream_settings_are_refused(pipeline):
    with pytest.raises(diarist.InputError, match="sample rate"):
        pipeline.stream(sample_rate=100)
    with pytest.raises(diarist.ConfigError, match="latency"):
        pipeline.stream(latency=60.0)
