"""Vectors as bytes: little-endian float32, as stored in embedding.vector."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def to_bytes(vector: npt.NDArray[np.floating]) -> bytes:
    """Serialise one vector."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(blob: bytes, dim: int) -> npt.NDArray[np.float32]:
    """Deserialise one vector, checking its length against dim."""
    vector = np.frombuffer(blob, dtype="<f4")
    if vector.shape[0] != dim:
        raise ValueError(f"stored vector has {vector.shape[0]} values, expected {dim}")
    return vector.astype(np.float32)
