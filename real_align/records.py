"""Turn a list of dicts, a pandas DataFrame or a `datasets.Dataset` into ingest items, and batch them.

Neither pandas nor datasets is imported here: a DataFrame or Dataset is recognised by its type's module.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Columns:
    """Where each ingest field comes from. `responses` may name one list column or several text columns."""

    prompt: str = "prompt"
    responses: str | Sequence[str] = "responses"
    external_id: str = "external_id"
    metadata: str = "metadata"


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def jsonable(value: Any) -> Any:
    """Plain JSON values from what pandas, numpy and pyarrow hand out (arrays, numpy scalars, NaN)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return jsonable(value.tolist())
    if hasattr(value, "isoformat"):  # datetime, date, pandas Timestamp
        return value.isoformat()
    if hasattr(value, "item"):
        return jsonable(value.item())
    return str(value)


def _response(value: Any) -> str | dict[str, Any]:
    value = jsonable(value)
    if isinstance(value, dict):
        # Columnar formats fill absent struct fields with None; the server wants them left out.
        return {k: v for k, v in value.items() if v is not None}
    if isinstance(value, str):
        return value
    raise TypeError(f"a response must be a string or a dict with `text`, not {type(value).__name__}")


def auto_external_id(prompt: Any, responses: list[Any]) -> str:
    """A stable id from the content: sending the same record twice is a duplicate, not a second prompt."""
    blob = json.dumps({"prompt": prompt, "responses": responses}, sort_keys=True, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


def to_item(row: Mapping[str, Any], columns: Columns) -> dict[str, Any]:
    """One ingest item ``{external_id, prompt, responses, metadata?}`` from a row or a record."""
    if columns.prompt not in row:
        raise KeyError(f"no {columns.prompt!r} column or key in the record (set prompt_column=)")
    prompt = jsonable(row[columns.prompt])
    if isinstance(columns.responses, str):
        if columns.responses not in row:
            raise KeyError(f"no {columns.responses!r} column or key in the record (set responses_column=)")
        raw = row[columns.responses]
        values = list(raw) if not isinstance(raw, str | Mapping) and raw is not None else [raw]
        responses = [_response(r) for r in values if not _is_missing(r)]
    else:
        responses = [_response(row[c]) for c in columns.responses if not _is_missing(row.get(c))]
    external_id = row.get(columns.external_id)
    item: dict[str, Any] = {
        "external_id": (
            str(jsonable(external_id))
            if not _is_missing(external_id)
            else auto_external_id(prompt, responses)
        ),
        "prompt": prompt,
        "responses": responses,
    }
    metadata = row.get(columns.metadata)
    if not _is_missing(metadata):
        item["metadata"] = jsonable(metadata)
    return item


def rows_of(records: Any) -> Iterator[Mapping[str, Any]]:
    """The rows of a pandas DataFrame, a `datasets.Dataset`, or any iterable of mappings."""
    module = type(records).__module__.split(".")[0]
    if module == "pandas" and hasattr(records, "to_dict"):
        columns = [str(c) for c in records.columns]
        for values in records.itertuples(index=False, name=None):
            yield dict(zip(columns, values, strict=True))
        return
    if module == "datasets" and hasattr(records, "column_names"):
        yield from iter(records)
        return
    if isinstance(records, Mapping | str | bytes):
        raise TypeError("records must be a list of dicts, a pandas DataFrame or a datasets.Dataset")
    for record in records:
        if not isinstance(record, Mapping):
            raise TypeError(f"each record must be a dict, not {type(record).__name__}")
        yield record


def batches(
    items: Iterable[dict[str, Any]], *, max_items: int, max_bytes: int
) -> Iterator[tuple[list[dict[str, Any]], bytes]]:
    """Consecutive batches of at most max_items items and (unless one item alone is larger) max_bytes bytes.

    Yields each batch with its JSON body, encoded once.
    """
    batch: list[dict[str, Any]] = []
    encoded: list[bytes] = []
    size = len(b'{"items":[]}')
    for item in items:
        data = json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if batch and (len(batch) >= max_items or size + len(data) + 1 > max_bytes):
            yield batch, b'{"items":[' + b",".join(encoded) + b"]}"
            batch, encoded, size = [], [], len(b'{"items":[]}')
        batch.append(item)
        encoded.append(data)
        size += len(data) + 1
    if batch:
        yield batch, b'{"items":[' + b",".join(encoded) + b"]}"
