"""Offline and live diarization: :class:`Pipeline`, its results and its streams."""

from __future__ import annotations

import json
import operator
import os
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _native
from ._install import native_args
from ._samples import as_samples
from .errors import InputError

if TYPE_CHECKING:
    from pyannote.core import Annotation


class Turn(NamedTuple):
    """A speaker's turn: from ``start`` to ``end`` seconds, ``speaker`` a label such as
    ``SPEAKER_00`` (offline) or ``S1`` (streams)."""

    start: float
    end: float
    speaker: str


def _count(name: str, value: int | None) -> int | None:
    """A speaker count argument, checked: ``None`` or a positive integer (NumPy's too)."""
    if value is None:
        return None
    try:
        count = operator.index(value)
    except TypeError:
        count = 0
    if isinstance(value, bool) or count < 1:
        raise ValueError(f"{name} must be a positive integer or None, not {value!r}")
    return count


class Diarization:
    """Who spoke when in one recording.

    ``turns`` are overlap-aware (several speakers may talk at once), ``exclusive_turns`` hold
    at most one speaker at a time (for aligning transcripts); both in order of start.
    """

    def __init__(self, native: _native.Diarization) -> None:
        self._native = native
        #: Overlap-aware turns.
        self.turns: list[Turn] = [Turn(*t) for t in native.turns()]
        #: Turns with at most one speaker at a time.
        self.exclusive_turns: list[Turn] = [Turn(*t) for t in native.exclusive_turns()]
        #: The speakers' labels, in order.
        self.speakers: list[str] = native.speakers()
        #: Seconds of audio diarized.
        self.duration: float = native.duration()

    def __repr__(self) -> str:
        return (
            f"<Diarization: {len(self.speakers)} speakers, {len(self.turns)} turns in "
            f"{self.duration:.2f} s>"
        )

    def to_rttm(self, file_id: str | None = None) -> str:
        """The turns as RTTM text, exactly as ``diarist diarize --format rttm`` writes them.

        ``file_id`` defaults to the file's name without its extension (as the command line
        names it), or ``audio`` for an array."""
        return self._native.rttm(self._native.file_id() if file_id is None else file_id)

    def to_json(self, file_id: str | None = None) -> str:
        """The diarization as JSON text (``file_id``, ``duration``, ``speakers``, ``turns`` and
        ``exclusive_turns``, seconds rounded to the millisecond), exactly as ``diarist diarize
        --format json`` writes it. ``file_id`` defaults as for :meth:`to_rttm`."""
        return self._native.json(self._native.file_id() if file_id is None else file_id)

    def to_annotation(self, uri: str | None = None) -> Annotation:
        """The overlap-aware turns as a ``pyannote.core.Annotation`` (``uri`` defaults to the
        RTTM file id). Needs ``pyannote.core`` (``pip install pyannote.core``)."""
        try:
            from pyannote.core import Annotation, Segment
        except ImportError as e:
            raise ImportError(
                "Diarization.to_annotation() needs pyannote.core, which is not installed: "
                "pip install pyannote.core"
            ) from e
        annotation = Annotation(uri=self._native.file_id() if uri is None else uri)
        for i, t in enumerate(self.turns):
            annotation[Segment(t.start, t.end), i] = t.speaker
        return annotation


class Stream:
    """A live stream: push audio as it comes, read events as they become available.

    Events are dicts, the JSON objects ``diarist stream`` prints (``docs/PROTOCOL.md``):
    ``{"type": "speaker", ...}``, ``turn`` (``status`` started / updated / ended, ``start`` and
    ``end`` in samples at 16 kHz, always final), ``tentative`` (the current guess for the last
    seconds), and ``summary`` at the end. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, native: _native.Stream) -> None:
        self._native = native

    def push(self, samples: Any) -> list[dict[str, Any]]:
        """Adds samples (a 1-D array, or 2-D frames by channels; float32, float64 or int16) at
        the stream's sample rate and returns the events available so far. Waits while the
        engine is behind (the GIL released): no audio is ever lost."""
        data, fmt, channels = as_samples(samples)
        return [json.loads(e) for e in self._native.push(data, fmt, channels)]

    def close(self) -> list[dict[str, Any]]:
        """Ends the stream and returns the remaining events, the summary last, once all audio
        pushed is diarized. Closing again returns nothing."""
        return [json.loads(e) for e in self._native.close()]

    @property
    def turns(self) -> list[Turn]:
        """The final turns that have ended so far (all of them after :meth:`close`), in order
        of start, in seconds."""
        return [Turn(*t) for t in self._native.turns()]

    def to_rttm(self, file_id: str = "stream") -> str:
        """The final turns that have ended, as RTTM text."""
        return self._native.rttm(file_id)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Pipeline:
    """Speaker diarization with the models one configuration names.

    ``config`` is a TOML file like ``configs/diarist.toml`` holding only the keys it changes
    (merged over the defaults; model names resolve to the models bundled in this package), or
    ``None`` for the bundled defaults. Loading takes a moment: make one pipeline and reuse it.
    It may be used from several threads at once: each call runs with the GIL released, on a
    set of models of its own (loaded when all are busy).
    """

    def __init__(self, config: str | os.PathLike[str] | None = None) -> None:
        self._native = _native.Pipeline(*native_args(config))

    @property
    def config(self) -> str:
        """The effective configuration, as TOML."""
        return self._native.config_toml()

    def diarize(
        self,
        audio: str | os.PathLike[str] | Any,
        sample_rate: int | None = None,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
    ) -> Diarization:
        """Diarizes an audio file (WAV, FLAC, MP3, OGG/Vorbis, AAC in MP4/M4A) or an array of
        samples: 1-D, or 2-D frames by channels (up to 64, averaged), float32, float64 or int16,
        at ``sample_rate`` Hz (required for arrays; resampled to 16 kHz as files are).

        ``num_speakers`` fixes the number of speakers; ``min_speakers`` and ``max_speakers``
        bound it. ``None`` keeps the configuration's.
        """
        counts = {
            "num_speakers": _count("num_speakers", num_speakers),
            "min_speakers": _count("min_speakers", min_speakers),
            "max_speakers": _count("max_speakers", max_speakers),
        }
        if isinstance(audio, (str, os.PathLike)):
            if sample_rate is not None:
                raise ValueError("sample_rate goes with an array: a file gives its own")
            return Diarization(self._native.diarize_file(os.fspath(audio), **counts))
        if isinstance(audio, bytes):
            raise TypeError("pass a path or an array of samples, not bytes")
        data, fmt, channels = as_samples(audio)
        if sample_rate is None:
            raise ValueError("an array of samples needs its sample_rate")
        if not data:
            raise InputError("the array holds no samples")
        return Diarization(
            self._native.diarize_samples(data, fmt, channels, sample_rate, **counts)
        )

    def stream(
        self,
        sample_rate: int = 16000,
        max_speakers: int | None = None,
        latency: float | None = None,
        hop: float | None = None,
    ) -> Stream:
        """Opens a live stream of audio at ``sample_rate`` Hz (resampled to 16 kHz).

        ``max_speakers`` bounds the speakers, ``latency`` is the delay in seconds after which
        audio is final, ``hop`` the step between analysis windows; ``None`` keeps the
        configuration's ``[streaming]`` settings. The first stream starts the streaming engine
        (``[streaming] workers`` inference threads), which every later stream shares.
        """
        native = self._native.stream(
            sample_rate, _count("max_speakers", max_speakers), latency, hop
        )
        return Stream(native)
