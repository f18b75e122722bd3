"""``threads``: how many CPU threads a command's PyTorch (and ONNX Runtime) work may use.

PyTorch's own default is one thread per physical core. On a machine another job already keeps busy that
oversubscribes the cores, and its threads wait on each other at every parallel section: measured on the 2-core VM
beside a 2-thread job, ``speech quickstart`` took 12.2 min against 1.5 min on one thread (README, "Threads").
The default here, ``auto``, takes the CPUs this process may run on minus the ones other work keeps busy (the 1-minute
load average), at least 1: all cores on an idle machine, one thread on a busy one. A number fixes it.
Only the command line sets it, and :func:`speech.train` when its ``threads`` setting is given (the library never
changes process-wide state unasked).
"""

from __future__ import annotations

import argparse
import os

from speech.errors import SettingError

AUTO = "auto"
MAX_AUTO_THREADS = 8  # beyond this a small GRU gains nothing


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads(cpus: int | None = None, load: float | None = None) -> int:
    """``auto``: the usable CPUs minus the ones other processes keep busy (the 1-minute load average, rounded),
    at least 1 and at most :data:`MAX_AUTO_THREADS`."""
    cpus = usable_cpus() if cpus is None else cpus
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    return max(1, min(MAX_AUTO_THREADS, cpus - int(round(load))))


def threads_value(text: str | int | None) -> int | str | None:
    """The parser type of ``--threads``: a whole number >= 1, or ``auto``."""
    if text is None or isinstance(text, int) and not isinstance(text, bool):
        value = text
    elif str(text).strip().lower() == AUTO:
        return AUTO
    else:
        try:
            value = int(str(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of threads >= 1 or 'auto', got {text!r}") from None
    if value is not None and value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of threads >= 1 or 'auto', got {value}")
    return value


def resolve_threads(value: int | str | None) -> int:
    """The number of threads ``--threads VALUE`` asks for (``auto``/None: :func:`default_threads`)."""
    if value is None or value == AUTO:
        return default_threads()
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingError(f"--threads {value!r}: expected a number of threads >= 1 or 'auto'", param="threads")
    return value


def limit_blas_threads(threads: int) -> bool:
    """Set NumPy's BLAS threads to ``threads`` where :mod:`threadpoolctl` is installed (it comes with the training
    extra); returns whether it could. Without it (the base install) the pool keeps its own default.

    NumPy's BLAS (OpenBLAS) keeps a pool of one thread per core of its own, which ``torch.set_num_threads`` does not
    touch. On a busy machine its threads wait on each other in the NumPy front end's matrix products: beside a
    training run, ``speech evaluate`` of an ``.onnx`` on 1,833 clips took 23.1 s (20.9 s of CPU) and a 3-minute
    ``speech stream-test`` 15.7 s, against 8.4 and 7.9 s with one BLAS thread. A live hop's products are small enough
    for one thread either way (1.50 against 1.52 ms)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(limits=threads, user_api="blas")
    return True


def apply_threads(value: int | str | None) -> int:
    """Set PyTorch's intra-op threads and NumPy's BLAS threads (:func:`limit_blas_threads`) for ``--threads
    VALUE``; returns the number (for ONNX Runtime sessions)."""
    import torch

    threads = resolve_threads(value)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    limit_blas_threads(threads)
    return threads
