"""Progress bars for long work (listing, extraction, export, repack, batch...), on stderr, through rich.

Bars show only when stderr is a terminal and the caller did not ask for quiet: ``quiet()`` (the CLI's
``--quiet``) turns them off for the current context only (a ``contextvars.ContextVar``, so threads, asyncio tasks
and other libraries in the same process are not affected). Nothing here changes process-wide state.

>>> with task("extracting model.tar.gz", total=size_in_bytes, unit="bytes") as advance:
...     for chunk in chunks:
...         advance(len(chunk))
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import time
from typing import Callable, Iterator

log = logging.getLogger(__name__)

_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("artifact_tools_quiet", default=False)
MIN_SECONDS = 0.5  # a bar appears only for work that is still running after this long


@contextlib.contextmanager
def quiet(on: bool = True) -> Iterator[None]:
    """No progress bars inside this block (this context only)."""
    token = _QUIET.set(on)
    try:
        yield
    finally:
        _QUIET.reset(token)


def enabled() -> bool:
    return not _QUIET.get() and sys.stderr is not None and sys.stderr.isatty()


def _no_progress(n: float = 1) -> None:
    """``advance`` when progress bars are off."""


@contextlib.contextmanager
def task(description: str, total: float | None = None, unit: str = "items") -> Iterator[Callable[[float], None]]:
    """A progress bar for one piece of work; yields ``advance(n)``. Logs the start and the time taken."""
    log.info("%s ...", description)
    start = time.perf_counter()
    if not enabled():
        yield _no_progress
        log.info("%s: done in %.2f s", description, time.perf_counter() - start)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):  # "12,345 records/s": what a long count-based job wants to see
        def render(self, task) -> Text:
            elapsed = task.elapsed or 0.0
            return Text(f"{task.completed / elapsed:,.0f} {unit}/s" if elapsed > 0 else f"- {unit}/s")

    columns: list = [TextColumn("{task.description}")]
    if unit == "bytes":
        columns += [BarColumn(), DownloadColumn(), TransferSpeedColumn()]
    elif total is None:  # no end known (records streamed from inputs): the count and the rate
        columns += [TextColumn("{task.completed:,.0f} " + unit), Rate()]
    else:
        columns += [BarColumn(), MofNCompleteColumn(), Rate()]
    columns.append(TimeElapsedColumn())
    progress = Progress(*columns, console=Console(stderr=True), transient=True)
    ident = progress.add_task(description, total=total)
    shown = False

    def advance(n: float = 1) -> None:
        nonlocal shown
        progress.update(ident, advance=n)
        if not shown and time.perf_counter() - start >= MIN_SECONDS:
            progress.start()
            shown = True

    try:
        yield advance
    finally:
        if shown:
            progress.stop()
        log.info("%s: done in %.2f s", description, time.perf_counter() - start)
