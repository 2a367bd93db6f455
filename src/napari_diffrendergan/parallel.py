"""The one Dask helper: run tasks on a local cluster of worker processes or an existing
scheduler, with progress, cancellation and clear errors."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import Cancelled, InputError
from .progress import Monitor, ensure

CONNECT_TIMEOUT_S = 5


def check_workers(workers: int | None, scheduler: str | None = None) -> None:
    """A worker count of 1 or more; local workers (no ``scheduler``) at most the CPU cores."""
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise InputError(f"workers must be a whole number >= 1, got {workers!r}")
    cores = os.cpu_count() or 1
    if not scheduler and workers is not None and workers > cores:
        raise InputError(
            f"{workers} local workers for {cores} CPU cores: use at most {cores} (more worker "
            "processes only compete for the cores, each holding its own model or scene)"
        )


@contextmanager
def dask_client(workers: int = 1, scheduler: str | None = None, env: dict | None = None):
    """A Dask client: connected to ``scheduler`` (failing fast with a clear message), else to a
    local cluster of ``workers`` single-threaded processes (``env`` set in each)."""
    import dask
    from dask.distributed import Client, LocalCluster

    check_workers(workers, scheduler)
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError, ValueError) as err:
            raise InputError(
                f"cannot reach the Dask scheduler at {scheduler!r} ({type(err).__name__}: {err}); "
                "check the address (e.g. tcp://host:8786) or leave --scheduler out"
            ) from err
    else:
        # Dask's default MALLOC_TRIM_THRESHOLD_=65536 makes glibc hand every large buffer
        # back to the system and fault it in again: rendering a pair costs 27 % more CPU
        # with it (measured). Any value switches off glibc's adaptive thresholds, so the
        # workers start without the variable: not from Dask's config, nor from os.environ,
        # where another cluster of this process may have left it
        trim = "MALLOC_TRIM_THRESHOLD_"
        leaked = os.environ.pop(trim, None)
        try:
            with dask.config.set({f"distributed.nanny.pre-spawn-environ.{trim}": None}):
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    env=env or {},
                )
        finally:
            if leaked is not None:
                os.environ[trim] = leaked
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def map_on_dask(
    function: Callable,
    tasks: list[tuple],
    workers: int = 1,
    scheduler: str | None = None,
    monitor: Monitor | None = None,
    env: dict | None = None,
    poll_s: float = 0.2,
) -> Iterator:
    """Yield ``function(*task)`` for every task as results arrive (any order). Cancelling
    ``monitor`` cancels the tasks not yet finished and raises
    :class:`~napari_diffrendergan.errors.Cancelled`; a task's exception is re-raised here."""
    from dask.distributed import as_completed

    monitor = ensure(monitor)
    with dask_client(workers, scheduler, env) as client:
        futures = [client.submit(function, *task, pure=False) for task in tasks]
        pending = as_completed(futures)
        while not pending.is_empty():
            if monitor.cancelled:
                client.cancel(futures)
                raise Cancelled("cancelled; finished results are kept")
            if not pending.has_ready():
                time.sleep(poll_s)
                continue
            for future in pending.next_batch(block=False):
                yield future.result()
