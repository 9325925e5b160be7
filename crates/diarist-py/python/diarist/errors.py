"""The exceptions diarist raises; each carries the message of the Rust error behind it."""


class DiaristError(Exception):
    """Base of every diarist error (and, alone, a failure inside the engine)."""


class ConfigError(DiaristError):
    """A configuration file or setting that cannot be used."""


class InputError(DiaristError, ValueError):
    """Audio or text that cannot be diarized or tagged: an unreadable or unsupported file, an
    array of the wrong type, shape or values, a text over the length limit."""


class ModelError(DiaristError):
    """A model or the ONNX Runtime library that did not load or run."""


__all__ = ["DiaristError", "ConfigError", "InputError", "ModelError"]
