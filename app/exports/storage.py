"""Where export files live: a local directory (default) or any fsspec URL (s3://bucket/prefix, memory://...).

Layout: ``<root>/<project_id>/<export_id>/`` holding the data file and ``manifest.json``. Files are written
under a temporary name and renamed into place once complete (fsynced first, and atomic, on a local disk), so
a reader never sees a partial file. Readers stream from the same URL.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any, BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from app.config import Settings

CHUNK_BYTES = 1024 * 1024


def root(settings: Settings) -> str:
    """export_url when set, else the absolute export_dir."""
    if settings.export_url:
        return settings.export_url.rstrip("/")
    return str(settings.export_dir.resolve())


def location_for(settings: Settings, project_id: uuid.UUID, export_id: uuid.UUID) -> str:
    """The folder (path or URL) of one export."""
    return f"{root(settings)}/{project_id}/{export_id}"


def _fs(location: str) -> tuple[Any, str]:
    fs, path = fsspec.core.url_to_fs(location)
    return fs, path.rstrip("/")


def is_local(location: str) -> bool:
    return isinstance(_fs(location)[0], LocalFileSystem)


def local_path(location: str, name: str) -> str | None:
    """The file's local path when the location is a local directory, else None."""
    fs, path = _fs(location)
    return f"{path}/{name}" if isinstance(fs, LocalFileSystem) else None


@contextlib.contextmanager
def write(location: str, name: str) -> Iterator[BinaryIO]:
    """A binary file to fill; it appears under its name only if the block finishes without error.

    Written under a temporary name in the same folder, then renamed: a local rename is atomic; an object
    store's "rename" is a server-side copy of the finished object, so the final name never holds a partial
    upload either. Another run of the same export may publish the same name concurrently; both write the
    same bytes, so whichever rename lands last changes nothing.
    """
    fs, folder = _fs(location)
    target = f"{folder}/{name}"
    temporary = f"{folder}/.{name}.{uuid.uuid4().hex}.part"
    local = isinstance(fs, LocalFileSystem)
    if local:
        fs.makedirs(folder, exist_ok=True)
    handle = fs.open(temporary, "wb")
    try:
        yield handle
        if local:
            handle.flush()
            os.fsync(handle.fileno())
        handle.close()
        fs.mv(temporary, target)
    except BaseException:
        with contextlib.suppress(Exception):
            if hasattr(handle, "discard"):
                handle.discard()  # an unfinished multipart upload is aborted
            handle.close()
        with contextlib.suppress(Exception):
            if fs.exists(temporary):
                fs.rm(temporary)
        raise


def exists(location: str, name: str) -> bool:
    fs, folder = _fs(location)
    return bool(fs.exists(f"{folder}/{name}"))


def read_bytes(location: str, name: str) -> bytes:
    fs, folder = _fs(location)
    with fs.open(f"{folder}/{name}", "rb") as handle:
        return bytes(handle.read())


def iter_bytes(location: str, name: str, chunk: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The file in chunks, opened lazily (for a streaming HTTP response)."""
    fs, folder = _fs(location)
    with fs.open(f"{folder}/{name}", "rb") as handle:
        while True:
            data = handle.read(chunk)
            if not data:
                return
            yield bytes(data)
