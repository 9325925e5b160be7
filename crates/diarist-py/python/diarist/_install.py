"""Where the wheel keeps its models and ONNX Runtime library: beside this file."""

from __future__ import annotations

import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent

#: The models the default configuration names, with their licences.
MODELS = _HERE / "models"
#: The ONNX Runtime shared library, with its licence and third-party notices.
LIB = _HERE / "lib"


def native_args(config: str | os.PathLike[str] | None) -> tuple[str | None, str, str]:
    """The arguments every native class loads its settings from: the configuration file (made
    absolute), the models directory and the ONNX Runtime directory."""
    path = None if config is None else os.path.abspath(os.fspath(config))
    return path, str(MODELS), str(LIB)
