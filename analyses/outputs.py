"""Output files that are byte-identical on a rerun: arrays in a fixed-timestamp ``.npz``, floats
rounded by the one significant-digit rule (:func:`landscape.results.round_sig`)."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from landscape.results import round_sig

#: significant digits of the floats in saved arrays
ARRAY_DIGITS = 12


def round_array(a: Any, digits: int = ARRAY_DIGITS) -> np.ndarray:
    """An array with its floats rounded to ``digits`` significant digits (LAPACK results can differ
    in the last bits between calls on identical input, e.g. with memory alignment).

    Args:
        a: an array-like.
        digits: significant digits (:func:`landscape.results.round_sig`).

    Returns:
        A float64 array of ``a``'s shape for a float array; any other array unchanged.

    >>> round_array([1 / 3, 2.0], 3).tolist()
    [0.333, 2.0]
    """
    a = np.asanyarray(a)
    if a.dtype.kind != "f" or a.size == 0:
        return a
    flat = round_sig(a.astype(np.float64).ravel().tolist(), digits)
    return np.asarray(flat, dtype=np.float64).reshape(a.shape)


def save_npz(path: Path, **arrays: Any) -> Path:
    """``numpy.savez`` whose bytes depend only on the data: members stamped 1980-01-01 (numpy's own
    savez stamps the current time), stored uncompressed, in name order, floats rounded by
    :func:`round_array`.

    Args:
        path: the ``.npz`` file to write.
        **arrays: name → array-like.

    Returns:
        ``path``.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, round_array(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, buf.getvalue())
    return path
