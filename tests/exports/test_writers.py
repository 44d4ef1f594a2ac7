"""The writers' bytes: the same as the row-by-row encodings they replaced (exports stay byte-identical)."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest

from app.exports.rows import Side, build_row
from app.exports.writers import HashingSink, JsonlWriter, ParquetWriter, parquet_schema
from app.labels.outcome import decide


def rows(style: str) -> list[dict[str, Any]]:
    """Rows with what a file meets: missing models and ids, chat prompts, non-ASCII, quotes, newlines."""
    out = []
    for n in range(40):
        prompt: Any = f'Q{n} é "q"\n' if n % 3 else [{"role": "user", "content": f"Hi {n}"}]
        out.append(
            build_row(
                style=style,
                pair_id=uuid.UUID(int=n),
                prompt=prompt,
                prompt_external_id=f"p{n}",
                side_a=Side(f"r{n}" if n % 2 else None, None if n % 5 == 0 else "m1", f"first {n} ✓"),
                side_b=Side(None, "m2", f"second\t{n}"),
                similarity=n / 7,
                strategy="dissimilar",
                decided=decide((2 + n % 3, n % 2, 0, 0), "b" if n % 4 == 0 else None, 2),
                ds_posterior=None if n % 6 == 0 else round(1 / (n + 1), 6),
                completed_at=f"2026-01-01T00:00:{n % 60:02d}.000000Z",
            )
        )
    return out


@pytest.mark.parametrize("style", ["standard", "conversational"])
def test_jsonl_is_json_dumps_per_row(style: str) -> None:
    raw = io.BytesIO()
    writer = JsonlWriter(HashingSink(raw), "none")
    writer.write(rows(style))
    writer.close()
    expected = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in rows(style))
    assert raw.getvalue() == expected.encode("utf-8")


@pytest.mark.parametrize("style", ["standard", "conversational"])
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_parquet_is_what_from_pylist_wrote(style: str, compression: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = io.BytesIO()
    writer = ParquetWriter(HashingSink(raw), style, compression)
    batch = rows(style)
    writer.write(batch[:25])
    writer.write(batch[25:])
    writer.close()

    reference = io.BytesIO()
    schema = parquet_schema(style)
    stream = pa.PythonFile(reference, mode="w")
    with pq.ParquetWriter(
        stream,
        schema,
        compression="GZIP" if compression == "gzip" else "NONE",
        version="2.6",
        use_dictionary=True,
        write_statistics=True,
        store_schema=True,
    ) as old:
        for part in (batch[:25], batch[25:]):
            old.write_table(pa.Table.from_pylist(part, schema=schema), row_group_size=len(part))
    stream.flush()
    assert raw.getvalue() == reference.getvalue()
