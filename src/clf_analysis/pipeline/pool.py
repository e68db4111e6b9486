"""The processes of one run: file passes and image tasks spread over the cores.

One pool (spawn context) serves every stage of a run, because starting a Python process
that imports numpy, shapely, OpenCV and matplotlib costs about a second.
With `processes <= 1` everything runs inline in the calling process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from multiprocessing.sharedctypes import Synchronized
from types import TracebackType
from typing import Any, TypeVar

from clf_analysis.pipeline.errors import AnalysisCancelled, AnalysisError
from clf_analysis.pipeline.file_pass import (
    TICKS_PER_FILE,
    FilePassResult,
    FilePassTask,
    run_file_pass,
)
from clf_analysis.process_guard import exit_with_parent

T = TypeVar("T")

# Set in each pool process by `_init`: module globals are how a spawned process
# receives shared primitives.
_counter: Synchronized[int] | None = None
_cancel: Any = None
_TICK_BATCH = 20


def _init(counter: Synchronized[int], cancel: Any) -> None:
    global _counter, _cancel
    _counter, _cancel = counter, cancel
    # A run killed hard (job timeout, lost worker) cannot shut its pool down.
    exit_with_parent(os.getppid())


def _pooled_pass(task: FilePassTask) -> FilePassResult:
    assert _counter is not None and _cancel is not None
    counter = _counter
    pending = 0

    def tick(n: int) -> None:
        nonlocal pending
        pending += n
        if pending >= _TICK_BATCH:
            with counter.get_lock():
                counter.value += pending
            pending = 0

    return run_file_pass(task, tick, _cancel.is_set)


class RunPool:
    """Context manager owning the run's worker processes (none when processes <= 1)."""

    def __init__(self, processes: int, poll_seconds: float = 0.2) -> None:
        self.processes = max(1, processes)
        self.poll_seconds = poll_seconds
        self._executor: ProcessPoolExecutor | None = None
        self._counter: Synchronized[int] | None = None
        self._cancel: Any = None

    def __enter__(self) -> RunPool:
        if self.processes > 1:
            ctx = mp.get_context("spawn")
            self._counter = ctx.Value("q", 0)  # type: ignore[assignment]
            self._cancel = ctx.Event()
            self._executor = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=ctx,
                initializer=_init,
                initargs=(self._counter, self._cancel),
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._executor is not None:
            if exc is not None and self._cancel is not None:
                self._cancel.set()  # running file passes stop within a layer
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def file_passes(
        self,
        tasks: Sequence[FilePassTask],
        *,
        on_progress: Callable[[int], None],
        is_cancelled: Callable[[], bool],
    ) -> list[FilePassResult]:
        """Results in the order of `tasks`; the largest files start first to balance cores."""
        if self._executor is None:
            done = 0

            def tick(n: int) -> None:
                nonlocal done
                done += n
                on_progress(done)

            return [run_file_pass(t, tick, is_cancelled) for t in tasks]
        assert self._counter is not None
        counter = self._counter
        order = sorted(range(len(tasks)), key=lambda i: -tasks[i].part.size)
        futures = {self._executor.submit(_pooled_pass, tasks[i]): i for i in order}
        self._wait(futures, lambda: on_progress(counter.value), is_cancelled, "layers")
        on_progress(TICKS_PER_FILE * len(tasks))
        # Back in task order, whatever order they were started in.
        return [f.result() for f, _ in sorted(futures.items(), key=lambda item: item[1])]

    def map(
        self,
        fn: Callable[[Any], T],
        items: Sequence[Any],
        *,
        stage: str,
        on_progress: Callable[[float], None],
        is_cancelled: Callable[[], bool],
    ) -> list[T]:
        """`[fn(item) for item in items]`, over the pool; cancellation checked between items."""
        if self._executor is None:
            out = []
            for i, item in enumerate(items):
                if is_cancelled():
                    raise AnalysisCancelled()
                out.append(fn(item))
                on_progress((i + 1) / max(len(items), 1))
            return out
        futures = {self._executor.submit(fn, item): i for i, item in enumerate(items)}

        def report() -> None:
            done = sum(f.done() for f in futures)
            on_progress(done / max(len(items), 1))

        self._wait(futures, report, is_cancelled, stage)
        return [f.result() for f in futures]

    def _wait(
        self,
        futures: dict[Future[Any], int],
        report: Callable[[], None],
        is_cancelled: Callable[[], bool],
        stage: str,
    ) -> None:
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(
                    pending, timeout=self.poll_seconds, return_when=FIRST_EXCEPTION
                )
                report()
                for f in finished:
                    error = f.exception()
                    if isinstance(error, AnalysisError | AnalysisCancelled):
                        raise error
                    if error is not None:
                        # A pool process that died (killed for memory, crashed) or a
                        # result that could not travel back: still one clear error.
                        raise AnalysisError(
                            f"{type(error).__name__}: {error}", stage=stage
                        ) from error
                if is_cancelled():
                    raise AnalysisCancelled()
        except BaseException:
            if self._cancel is not None:
                self._cancel.set()
            for f in futures:
                f.cancel()
            raise
