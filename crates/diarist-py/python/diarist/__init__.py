"""diarist: who spoke when in a recording, offline or live, and personal data hidden in text.

>>> import diarist
>>> pipeline = diarist.Pipeline()
>>> result = pipeline.diarize("meeting.wav")
>>> for turn in result.turns:
...     print(f"{turn.start:.2f} {turn.end:.2f} {turn.speaker}")
>>> diarist.redact("call me on five five five one two three four")

The models and ONNX Runtime ship inside this package; nothing is downloaded.
"""

from ._native import __version__
from .errors import ConfigError, DiaristError, InputError, ModelError
from .pipeline import Diarization, Pipeline, Stream, Turn
from .redaction import Entity, redact

__all__ = [
    "ConfigError",
    "Diarization",
    "DiaristError",
    "Entity",
    "InputError",
    "ModelError",
    "Pipeline",
    "Stream",
    "Turn",
    "redact",
    "__version__",
]
