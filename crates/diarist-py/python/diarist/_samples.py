"""Arrays of samples as the native module takes them: bytes, a sample format, a channel count."""

from __future__ import annotations

from typing import Any

from .errors import InputError

# memoryview formats (native or little-endian: x86-64) and the names the native module takes
_FORMATS = {"f": "f32", "d": "f64", "h": "i16"}


def as_samples(audio: Any) -> tuple[bytes, str, int]:
    """The samples of a 1-D array, or of a 2-D array of frames by channels, as native-endian
    bytes in C order, their format (``f32``, ``f64`` or ``i16``) and the channel count.

    Anything with the buffer protocol works (NumPy arrays, ``array.array``); other types raise
    ``TypeError``, other sample types, shapes and big-endian data :class:`InputError` (and so
    do, from the native module, channel counts outside 1 to 64 and NaN or infinite samples)."""
    try:
        view = memoryview(audio)
    except TypeError:
        raise TypeError(
            "audio must be a path or an array of samples (a NumPy array, say), "
            f"not {type(audio).__name__}"
        ) from None
    dtype = getattr(audio, "dtype", view.format)
    code = view.format[1:] if view.format[:1] in ("@", "=", "<") else view.format
    if code not in _FORMATS:
        raise InputError(
            f"samples of type {dtype}: diarist takes float32, float64 or int16 samples"
        )
    shape = view.shape or ()
    if len(shape) == 1:
        channels = 1
    elif len(shape) == 2:
        channels = shape[1]
    else:
        raise InputError(
            f"an array of {len(shape)} dimensions: diarist takes 1-D samples or a 2-D array "
            "of frames by channels"
        )
    return view.tobytes(), _FORMATS[code], channels
