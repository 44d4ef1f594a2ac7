"""The faster CPU backends of a sentence-transformers model, built once from the local model folder.

- ``onnx``: the model's transformer exported to ONNX (``torch.onnx.export``) and run by ONNX Runtime;
  pooling and normalisation stay the model's own modules. Same vectors as torch (cosine 1.0).
- ``onnx-int8``: that export with its weights quantized to int8 (ONNX Runtime dynamic quantization).
- ``static``: a model2vec static model distilled from the model (each vocabulary token embedded once, PCA to
  256 dimensions): a text's vector is the mean of its tokens' vectors, no transformer at run time.

sentence-transformers' own ``backend="onnx"`` needs optimum-onnx, which requires transformers < 5 and so
cannot be installed beside this stack; the export here needs only torch, onnx and onnxruntime, all offline.
Builds go to ``REAL_EMBEDDING_CACHE_DIR`` under a key of the model folder's weights, written to a temporary
name and renamed, under a file lock, so concurrent workers build once and never read half a file.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.config import get_settings

if TYPE_CHECKING:
    from app.embeddings.embedder import ModelSpec

log = logging.getLogger(__name__)

STATIC_PCA_DIMS = 256
ONNX_OPSET = 17


@dataclass
class OnnxModel:
    session: Any
    input_names: frozenset[str]


def model_key(path: str) -> str:
    """A short key of a model folder's contents: its files' names, sizes and modification times."""
    digest = hashlib.sha256(str(Path(path).resolve()).encode())
    for file in sorted(Path(path).rglob("*")):
        if file.is_file():
            stat = file.stat()
            digest.update(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build_once(folder: Path, build: Callable[[Path], None]) -> Path:
    """``folder``, built by ``build(tmp)`` into a temporary sibling and renamed, unless it exists."""
    with _locked(folder):
        if not folder.is_dir():
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
            try:
                build(tmp)
                os.replace(tmp, folder)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            log.info("embeddings.backend_built", extra={"path": str(folder)})
    return folder


def export_onnx(transformer: Any, uses_token_types: bool, out: Path, *, int8: bool) -> None:
    """Write the transformer of a sentence-transformers model as ``out/model.onnx`` (fp32), and with int8
    weights as ``out/model-int8.onnx`` when asked."""
    import torch

    class LastHidden(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            names = ["input_ids", "attention_mask", "token_type_ids"][: len(inputs)]
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_token_types else [])
    example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in names)
    fp32 = out / "model.onnx"
    with warnings.catch_warnings():  # the tracer's notes on shape checks that are constant for an encoder
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHidden(transformer).eval(),
            example,
            str(fp32),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
            opset_version=ONNX_OPSET,
            dynamo=False,  # the TorchScript exporter: no onnxscript graph rewrites, a BERT exports as is
        )
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]

        quantize_dynamic(str(fp32), str(out / "model-int8.onnx"), weight_type=QuantType.QInt8)


def onnx_session(spec: ModelSpec, path: str, st_model: Any) -> OnnxModel:
    """An ONNX Runtime session for the model's transformer, exported on first use."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    settings = get_settings()
    tokenizer = st_model.tokenizer
    uses_token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", [])
    int8 = spec.backend == "onnx-int8"
    folder = Path(settings.embedding_cache_dir) / f"onnx-{model_key(path)}{'-int8' if int8 else ''}"
    _build_once(folder, lambda tmp: export_onnx(st_model[0].auto_model, uses_token_types, tmp, int8=int8))
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.embedding_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(
        str(folder / ("model-int8.onnx" if int8 else "model.onnx")),
        options,
        providers=["CPUExecutionProvider"],
    )
    return OnnxModel(session, frozenset(i.name for i in session.get_inputs()))


def static_model(spec: ModelSpec, path: str) -> Any:
    """The model2vec static model distilled from the model folder, distilled on first use (minutes)."""
    from model2vec import StaticModel

    settings = get_settings()
    folder = Path(settings.embedding_cache_dir) / f"static-{model_key(path)}-pca{STATIC_PCA_DIMS}"

    def distill(tmp: Path) -> None:
        from model2vec.distill import distill as run

        run(model_name=path, pca_dims=STATIC_PCA_DIMS, device="cpu").save_pretrained(str(tmp))

    _build_once(folder, distill)
    return StaticModel.from_pretrained(str(folder))
