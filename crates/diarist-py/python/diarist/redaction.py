"""Personal data in text: :func:`redact`."""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

from . import _native
from ._install import native_args


class Entity(NamedTuple):
    """A piece of personal data found in a text: characters ``start`` to ``end`` (Python string
    indices), its ``label`` (``PERSON_NAME``, ``PHONE``, ``EMAIL``, ``CREDIT_CARD``, ``DATE``,
    ``SSN``, ``STREET_ADDRESS``, ``CITY``, ``LOCATION``), the tagger's confidence and the text."""

    start: int
    end: int
    label: str
    score: float
    text: str


@functools.lru_cache(maxsize=4)
def _redactor(config: str | None) -> _native.Redactor:
    """The tagger of a configuration, loaded once."""
    return _native.Redactor(*native_args(config))


def redact(
    text: str, config: str | os.PathLike[str] | None = None
) -> tuple[str, list[Entity]]:
    """``text`` with its personal data hidden (``[PERSON_NAME]``, ``[PHONE]``, ... or the mask,
    as the ``[pii]`` section of ``config`` says; the bundled defaults when ``None``), and every
    entity found, hidden or not.

    The tagger reads speech-recogniser text: lower case, numbers and e-mail addresses spoken
    ("four one five", "ana at example dot com"). It loads on the first call for a configuration
    and is kept; calls release the GIL.
    """
    key = None if config is None else os.path.abspath(os.fspath(config))
    redacted, found = _redactor(key).redact(text)
    return redacted, [Entity(s, e, label, score, text[s:e]) for s, e, label, score in found]
