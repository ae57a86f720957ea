"""Native thread pools of the worker processes the application layer starts (``serve``'s gunicorn workers,
``transform``'s and ``migrate``'s pools), sized so that N workers together use the cores instead of each starting a
thread per core.

Facts this relies on:

- OpenMP runtimes (libgomp/libomp under XGBoost, LightGBM, scikit-learn, PyTorch) read ``OMP_NUM_THREADS`` when they
  start, OpenBLAS ``OPENBLAS_NUM_THREADS``, MKL ``MKL_NUM_THREADS``, Accelerate ``VECLIB_MAXIMUM_THREADS``, numexpr
  ``NUMEXPR_NUM_THREADS`` and TensorFlow ``TF_NUM_INTRAOP_THREADS``; a variable set after its library started is
  ignored.
- A pool that started already (numpy's BLAS, loaded before the fork) is capped at run time with ``threadpoolctl``;
  OpenMP's thread count is a per-thread setting, so a process that predicts on another thread applies the limit
  on that thread.

The variables are set only in a process the application started for the job and that ends with it, never in the
caller's process; a value the user set is kept.
"""

from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity on Linux, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """Native threads for each of ``workers`` processes: ``$OMP_NUM_THREADS`` when the user set it, else the usable
    cores shared among the workers (at least 1)."""
    raw = os.environ.get("OMP_NUM_THREADS", "")
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return max(1, usable_cores() // max(1, workers))


def size_worker_process(threads: int) -> None:
    """In a worker process of our own, before any framework loads: every pool's variable (unless the user set it)
    to ``threads``, and the pools already started capped with :func:`limit_pools`."""
    for var in THREAD_VARIABLES:
        os.environ.setdefault(var, str(threads))
    limit_pools(threads)


def limit_pools(threads: int) -> None:
    """Cap the native pools already loaded in this process (for the calling thread, as far as OpenMP goes) with
    ``threadpoolctl``; nothing without it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=threads)
