"""``--threads`` on the command line (the values and their meaning: :mod:`speech.utils.threads`)."""

from __future__ import annotations

from speech.utils.threads import (
    AUTO,
    apply_threads,
    default_threads,
    limit_blas_threads,
    resolve_threads,
    threads_value,
)

__all__ = ["AUTO", "add_threads_argument", "apply_threads", "default_threads", "limit_blas_threads", "resolve_threads",
           "threads_value"]


def add_threads_argument(parser, what: str = "PyTorch and ONNX Runtime", default: int | str = AUTO) -> None:
    shown = "auto: the idle CPUs, at least 1" if default == AUTO else f"{default}"
    parser.add_argument(
        "--threads", type=threads_value, default=default, metavar="N|auto",
        help=f"CPU threads for {what} (default {shown}; 'auto' takes the idle CPUs; README, 'Threads')",
    )  # fmt: skip
