"""Export files, written row batch by row batch with byte-for-byte reproducible output.

JSONL: one JSON object per line, keys in column order, UTF-8; gzip via ``GzipFile(mtime=0, filename="")`` so
the header carries no time or name. Parquet: pyarrow's ParquetWriter with one fixed, explicit schema and a
row group per batch; no pandas metadata, no timestamps. Every byte goes through ``HashingSink``, so the
sha256 and size are of exactly what was stored.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import queue
import threading
import zlib
from collections.abc import Sequence
from typing import Any, BinaryIO, Protocol

from app.exports.rows import METADATA_COLUMNS

GZIP_LEVEL = 6
JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False)

MEDIA_TYPES = {
    ("jsonl", "none"): "application/x-ndjson",
    ("jsonl", "gzip"): "application/gzip",
    ("parquet", "none"): "application/vnd.apache.parquet",
    ("parquet", "gzip"): "application/vnd.apache.parquet",
}


def data_file_name(fmt: str, compression: str) -> str:
    """data.jsonl, data.jsonl.gz or data.parquet (Parquet compresses inside the file)."""
    if fmt == "parquet":
        return "data.parquet"
    return "data.jsonl.gz" if compression == "gzip" else "data.jsonl"


def media_type(fmt: str, compression: str) -> str:
    return MEDIA_TYPES[(fmt, compression)]


class HashingSink:
    """A write-only binary stream that hashes and counts what passes through to ``raw``."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        self.raw.write(view)
        self.digest.update(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.raw.flush()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:  # the storage closes raw; pyarrow and gzip may call this
        self.closed = True


class Writer(Protocol):
    def write(self, rows: Sequence[Any]) -> None: ...
    def close(self) -> None: ...


class JsonlWriter:
    def __init__(self, sink: HashingSink, compression: str) -> None:
        self._gzip = (
            gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=sink, mtime=0)
            if compression == "gzip"
            else None
        )
        self._out: Any = self._gzip if self._gzip is not None else sink

    def write(self, rows: Sequence[dict[str, Any] | str]) -> None:
        """Rows as dicts (column order), or as their lines already encoded (snapshot.export_rows)."""
        if rows:
            if isinstance(rows[0], str):
                text = "".join(rows)  # type: ignore[arg-type]
            else:
                # json.dumps(r, ensure_ascii=False, allow_nan=False) builds an encoder per call; one does all.
                encode = JSON.encode
                text = "".join([encode(r) + "\n" for r in rows])
            self._out.write(text.encode("utf-8"))

    def close(self) -> None:
        if self._gzip is not None:
            self._gzip.close()  # writes the trailer; leaves the sink open


def parquet_schema(style: str) -> Any:
    """The fixed Arrow schema of a Parquet export (column order = ``rows.columns()``)."""
    import pyarrow as pa

    if style == "conversational":
        message = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])
        text: Any = pa.list_(message)
    else:
        text = pa.string()
    types: dict[str, Any] = {
        "pair_id": pa.string(),
        "prompt_external_id": pa.string(),
        "chosen_response_external_id": pa.string(),
        "rejected_response_external_id": pa.string(),
        "chosen_model": pa.string(),
        "rejected_model": pa.string(),
        "similarity": pa.float64(),
        "strategy": pa.string(),
        "num_labels": pa.int64(),
        "completed": pa.bool_(),
        "agreement": pa.float64(),
        "ds_posterior": pa.float64(),
        "reviewed": pa.bool_(),
        "label_smoothing": pa.float64(),
        "weight": pa.float64(),
        "completed_at": pa.string(),
    }
    assert tuple(types) == METADATA_COLUMNS
    return pa.schema(
        [pa.field("prompt", text), pa.field("chosen", text), pa.field("rejected", text)]
        + [pa.field(name, kind) for name, kind in types.items()]
    )


class ParquetWriter:
    def __init__(self, sink: HashingSink, style: str, compression: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self._schema = parquet_schema(style)
        self._stream = pa.PythonFile(sink, mode="w")
        self._writer = pq.ParquetWriter(
            self._stream,
            self._schema,
            compression="GZIP" if compression == "gzip" else "NONE",
            version="2.6",
            use_dictionary=True,
            write_statistics=True,
            store_schema=True,
        )

    def write(self, rows: Sequence[dict[str, Any] | tuple[Any, ...]]) -> None:
        """Rows as dicts, or as tuples of the values in column order (snapshot.export_rows); a row group."""
        if rows:
            # Column by column (what Table.from_pylist does row by row, at a fraction of the cost).
            names = self._schema.names
            if isinstance(rows[0], tuple):
                columns = dict(zip(names, zip(*rows, strict=True), strict=True))
            else:
                columns = {name: [r[name] for r in rows] for name in names}
            table = self._pa.Table.from_pydict(columns, schema=self._schema)
            self._writer.write_table(table, row_group_size=len(rows))

    def close(self) -> None:
        self._writer.close()
        self._stream.flush()


class Pipelined:
    """A writer whose batches are encoded, compressed, hashed and stored by a thread of their own, in the
    order given (so the bytes are the same), while the caller makes the next batch: zlib, hashlib, pyarrow
    and file writes let go of the GIL. At most ``depth`` batches wait; an error in the thread is raised by
    the next ``write`` or by ``close``."""

    def __init__(self, writer: Writer, depth: int = 2) -> None:
        self._writer = writer
        self._batches: queue.Queue[Sequence[Any] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="export-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._batches.get()) is not None:
            if self._error is None:
                try:
                    self._writer.write(batch)
                except BaseException as exc:  # raised in the caller's thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, rows: Sequence[Any]) -> None:
        self._raise()
        if rows:
            self._batches.put(rows)

    def stop(self) -> None:
        """Let the thread finish what it holds and end (also after an error elsewhere)."""
        if self._thread.is_alive():
            self._batches.put(None)
            self._thread.join()

    def close(self) -> None:
        self.stop()
        self._raise()
        self._writer.close()


def open_writer(fmt: str, style: str, compression: str, sink: HashingSink) -> Writer:
    if fmt == "parquet":
        return ParquetWriter(sink, style, compression)
    return JsonlWriter(sink, compression)


def writer_info(fmt: str, compression: str, row_group_rows: int) -> dict[str, Any]:
    """What, besides the rows, decides the file's bytes (for the manifest)."""
    if fmt == "parquet":
        import pyarrow as pa

        return {
            "library": f"pyarrow {pa.__version__}",
            "codec": "GZIP" if compression == "gzip" else "NONE",
            "row_group_rows": row_group_rows,
        }
    return {
        "library": "json",
        "gzip": {"mtime": 0, "filename": "", "level": GZIP_LEVEL, "zlib": zlib.ZLIB_RUNTIME_VERSION}
        if compression == "gzip"
        else None,
    }
