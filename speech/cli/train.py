"""``speech train``: LightningCLI ``fit`` through :func:`speech.training.train.run_cli`, for a terminal.

The run itself (run folders never overwritten, input checked before training, ``base:`` configs) is
:mod:`speech.training.train`'s, the same as :func:`speech.train`'s. This layer adds what a command line shows: rich
progress bars on a terminal (one log line per epoch in a log file or pipe), ``--threads auto`` by default, one
line and exit 2 for bad input, exit 130 after Lightning's clean shutdown on Ctrl-C, and at the end the best
checkpoint, its validation accuracy, the learning curve and the next commands.
"""

from __future__ import annotations

import logging
import shlex
import sys
import warnings
from pathlib import Path

from speech.cli import failure
from speech.cli.program import program
from speech.cli.progress import ProgressBars, on_terminal
from speech.data.labels import rejection_warning
from speech.training.train import RunWatcher, SpeechCLI, TrainSetupError, run_cli
from speech.utils.threads import AUTO

log = logging.getLogger(__name__)

__all__ = ["FLAG_HINTS", "TrainSetupError", "main", "training_summary"]

# the option to change when the library blames one of its parameters (``exc.param``)
INTERRUPTED = 130
FLAG_HINTS = {"labels": "--data.labels / --data.root", "threads": "--threads", "split": "--data.split_rule",
              "teachers": "--model.teachers", "encoder": "--model.encoder", "usage": "see 'speech train --help'"}


class CommandCLI(SpeechCLI):
    """:class:`~speech.training.train.SpeechCLI` as the command line shows it: bars on a terminal, ``--threads auto``."""

    def progress_bars(self) -> bool:
        return on_terminal()

    def summary_callback(self) -> None:
        return None  # Lightning's own table, as it always was

    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        parser.set_defaults(threads=AUTO)

    def before_fit(self) -> None:
        super().before_fit()
        if self.trainer.progress_bar_callback is not None:  # the cache build draws bars like the training's
            self.datamodule.progress = ProgressBars()


# Lightning messages that say nothing actionable about this run (the GPU line stays).
LIGHTNING_NOISE = (
    "💡 Tip",
    "Loading `train_dataloader` to estimate",
    "`Trainer.fit` stopped",
    "TPU available",
    "HPU available",
    "Seed set to",
    "Trainer already configured with model summary callbacks",
)


class _LightningNoise(logging.Filter):
    """Drops :data:`LIGHTNING_NOISE` info lines of Lightning's loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not record.name.startswith(("lightning", "pytorch_lightning")):
            return True
        message = record.getMessage()
        return not any(noise in message for noise in LIGHTNING_NOISE)


def quiet_lightning() -> None:
    """One copy of each Lightning log line, without its tips and internal deprecation warnings.

    Lightning gives its ``lightning`` logger a handler of its own; when the root logger has one too (every
    ``speech`` command sets it up, and the quickstart runs several in one process) each line came out twice.
    """
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    for handler in root.handlers:
        if not any(isinstance(f, _LightningNoise) for f in handler.filters):
            handler.addFilter(_LightningNoise())
    # deprecations raised inside Lightning's own code (e.g. its use of torch's pytree): not actionable here
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(lightning|lightning_fabric|pytorch_lightning)\.")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)`? is deprecated.*")
    # jsonargparse deprecations raised inside Lightning's own code
    warnings.filterwarnings("ignore", message=".*(skip_none|instantiate_classes).*deprecated.*")


def main(argv: list[str] | None = None) -> int:
    """Run ``speech train ARGS``; returns the exit code (0, 1 runtime failure, 2 bad input, 130 Ctrl-C)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    quiet_lightning()
    watcher = RunWatcher()
    try:
        run_cli(list(argv or []), CommandCLI, callbacks=[watcher])
    except SystemExit as exc:
        if watcher.interrupted:
            return _interrupted(watcher)
        raise SystemExit(exc.code) from None
    except KeyboardInterrupt:
        return _interrupted(watcher)
    except Exception as exc:  # noqa: BLE001 - one line and the exit code, as for every command
        return failure("train", exc, FLAG_HINTS)
    trainer = watcher.trainer
    if trainer is not None and trainer.is_global_zero:
        print(training_summary(trainer, watcher.watch.elapsed))
    return 0


def _interrupted(watcher: RunWatcher) -> int:
    last = _last_checkpoint(watcher.trainer) if watcher.trainer is not None else None
    hint = f"; the last finished epoch is in {last} (resume with --ckpt_path last)" if last else ""
    print(f"\nspeech train: interrupted{hint}", file=sys.stderr)
    return INTERRUPTED


def _last_checkpoint(trainer) -> Path | None:
    for callback in trainer.checkpoint_callbacks:
        path = Path(callback.best_model_path or callback.last_model_path or "")
        if callback.monitor is None and path.name == "last.ckpt" and path.is_file():
            return path
    return None


def training_summary(trainer, seconds: float) -> str:
    """What a finished run left: best checkpoint and its validation accuracy, the learning curve, next commands."""
    from speech.training.runs import CURVE_FILE

    # the logger's own folder: Trainer.log_dir broadcasts, which only rank 0 reaches here under DDP
    log_dir = trainer.loggers[0].log_dir if trainer.loggers else None
    run_dir = Path(log_dir) if log_dir else None
    best = next((c for c in trainer.checkpoint_callbacks if c.monitor == "val/acc" and c.best_model_path), None)
    lines = ["", f"Training finished: {trainer.current_epoch} epoch(s) in {seconds / 60:.1f} min."]
    if best is None:
        lines.append("  no checkpoint was saved (no validation ran, or checkpointing is off)")
        return "\n".join(lines)
    ckpt = Path(best.best_model_path)
    score = best.best_model_score
    accuracy = f"{100 * float(score):.2f} %" if score is not None else "n/a"
    lines.append(f"  best checkpoint      {ckpt}")
    lines.append(f"  validation accuracy  {accuracy} (the held-out validation split of this run)")
    last = _last_checkpoint(trainer)
    if last:
        lines.append(f"  last checkpoint      {last}")
    if run_dir is not None and (run_dir / CURVE_FILE).is_file():  # drawn when the fit ended (SpeechCLI.after_fit)
        lines.append(f"  learning curve       {run_dir / CURVE_FILE}")
    warning = rejection_warning(trainer.lightning_module.recogniser.labels)
    data = getattr(trainer, "datamodule", None)
    root = getattr(data, "root", None) or "DATA"
    onnx = (run_dir or ckpt.parent) / "model.onnx"
    q = shlex.quote  # every printed command can be pasted into a shell as it is
    s = program()  # ".venv/bin/speech" where the set-up's .venv/bin is not on the PATH
    lines += [
        "",
        "Next:",
        f"  {s} evaluate {q(str(ckpt))} --data {q(str(root))}   # held-out figures (the split comes from the checkpoint)",
        f"  {s} export {q(str(ckpt))} --onnx {q(str(onnx))}",
        f"  {s} live {q(str(onnx))}",
    ]
    if run_dir is not None:  # the curve is drawn again into a new file (learning_curve-1.png, ...)
        lines.append(f"  {s} plot {q(str(run_dir))}                        # the learning curve again")
    if warning:
        lines += ["", f"WARNING: {warning}"]
    return "\n".join(lines)
