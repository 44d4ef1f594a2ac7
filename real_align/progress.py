"""Progress bars on stderr (rich, imported only when a bar is shown)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Bar(Protocol):
    def update(self, *, completed: float | None = None, total: float | None = None, status: str = "") -> None:
        """Move the bar; `total` None leaves it unknown (a spinner)."""


class _Silent:
    def update(self, *, completed: float | None = None, total: float | None = None, status: str = "") -> None:
        return None


class _Rich:
    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task

    def update(self, *, completed: float | None = None, total: float | None = None, status: str = "") -> None:
        fields: dict[str, Any] = {"status": status}
        if total is not None:
            fields["total"] = total
        if completed is not None:
            fields["completed"] = completed
        self._progress.update(self._task, **fields)


@contextmanager
def bar(enabled: bool, description: str, *, unit: str = "items") -> Iterator[Bar]:
    """A progress bar while the block runs, or a silent stand-in when not enabled."""
    if not enabled:
        yield _Silent()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    counter = (DownloadColumn(), TransferSpeedColumn()) if unit == "bytes" else (MofNCompleteColumn(),)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        *counter,
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=Console(stderr=True),
        transient=False,
    )
    with progress:
        yield _Rich(progress, progress.add_task(description, total=None, status=""))
