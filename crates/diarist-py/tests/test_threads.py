"""Models run with the GIL released: Python threads go on, and diarize at the same time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import FIXTURES, SAMPLE

LONG = FIXTURES / "sim_ls_testother_3spk_04.wav"  # 95 s; SAMPLE is 30 s


def test_python_runs_while_a_recording_is_diarized(pipeline):
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(pipeline.diarize, LONG)
        ticks = []
        while not result.done():
            ticks.append(time.perf_counter())
        assert result.result().turns
    longest_pause = max(b - a for a, b in zip(ticks, ticks[1:]))
    assert ticks[-1] - ticks[0] > 0.5
    assert longest_pause < 0.25 * (ticks[-1] - ticks[0]), longest_pause


def test_two_threads_diarize_two_recordings_at_once(pipeline):
    with ThreadPoolExecutor(2) as pool:  # two sets of models, both loaded
        list(pool.map(pipeline.diarize, [LONG, SAMPLE]))
    times = {}
    started = threading.Event()

    def diarize(name, path, wait):
        if wait:
            started.wait()
            time.sleep(0.2)
        times[name] = [time.perf_counter()]
        started.set()
        result = pipeline.diarize(path)
        times[name].append(time.perf_counter())
        return result

    with ThreadPoolExecutor(2) as pool:
        long = pool.submit(diarize, "long", LONG, False)
        short = pool.submit(diarize, "short", SAMPLE, True)
        assert long.result().turns == pipeline.diarize(LONG).turns
        assert short.result().turns == pipeline.diarize(SAMPLE).turns
    # The short recording, started after the long one, is done before it: the two ran at once
    # (with the GIL held, or one set of models, the short one would wait for the long one).
    assert times["long"][0] < times["short"][0] < times["short"][1] < times["long"][1], times
