"""Response embeddings for the simulator, cached by text hash in one .npz file so reruns embed nothing.

The cache holds ``keys`` (sha256 hex of each UTF-8 text), ``vectors`` (float32, one row per key) and
``model`` (the embedding model's name). A cache written by another model is refused rather than mixed in.
The model itself is loaded only when a text is missing (torch is imported lazily by the embedder).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

Encoder = Callable[[list[str]], npt.NDArray[np.floating]]

# Texts per call to the model; the cache is written after every _SAVE_EVERY new texts, so an interrupted
# run keeps most of its work.
_BATCH = 64
_SAVE_EVERY = 1024


class CacheMismatch(ValueError):
    """The cache file was written for another embedding model."""


def text_key(text: str) -> str:
    """The cache key of a text: sha256 of its UTF-8 bytes (as the service keys embeddings)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_cache(path: Path, model: str) -> dict[str, npt.NDArray[np.float32]]:
    """The cached vectors by key; empty for a missing file, CacheMismatch for another model's cache."""
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as data:
        cached_model = str(data["model"])
        if cached_model != model:
            raise CacheMismatch(
                f"{path} holds embeddings of {cached_model!r}, not {model!r}; pass another --cache file"
            )
        keys = [str(k) for k in data["keys"]]
        vectors = np.asarray(data["vectors"], dtype=np.float32)
    return dict(zip(keys, vectors, strict=True))


def write_cache(path: Path, model: str, cache: dict[str, npt.NDArray[np.float32]]) -> None:
    """Write the cache atomically (a reader never sees half a file), keys sorted so the bytes are stable."""
    keys = sorted(cache)
    vectors = np.stack([cache[k] for k in keys]).astype(np.float32) if keys else np.zeros((0, 0), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        np.savez(handle, keys=np.asarray(keys, dtype=str), vectors=vectors, model=np.asarray(model))
    os.replace(partial, path)


def embed(
    texts: Sequence[str],
    model: str,
    cache_path: Path,
    encoder: Callable[[], Encoder],
    progress: Callable[[int, int], None] | None = None,
) -> npt.NDArray[np.float32]:
    """(len(texts), d) float32 vectors, from the cache where present and from ``encoder()`` otherwise.

    ``encoder`` is called only if some text is missing, so a warm cache never loads the model.
    ``progress(done, missing)`` is called after each batch of new texts.
    """
    cache = read_cache(cache_path, model)
    keys = [text_key(t) for t in texts]
    missing: dict[str, str] = {}
    for key, text in zip(keys, texts, strict=True):
        if key not in cache:
            missing.setdefault(key, text)
    if missing:
        encode = encoder()
        todo = list(missing.items())
        unsaved = 0
        for start in range(0, len(todo), _BATCH):
            batch = todo[start : start + _BATCH]
            vectors = np.asarray(encode([t for _, t in batch]), dtype=np.float32)
            for (key, _), vector in zip(batch, vectors, strict=True):
                cache[key] = vector
            unsaved += len(batch)
            if unsaved >= _SAVE_EVERY:
                write_cache(cache_path, model, cache)
                unsaved = 0
            if progress is not None:
                progress(start + len(batch), len(todo))
        write_cache(cache_path, model, cache)
    return np.stack([cache[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)
