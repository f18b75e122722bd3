"""``speech train``: LightningCLI ``fit`` with run folders that are never overwritten.

Every run writes to ``<trainer.default_root_dir>/<run_name>/version_<N>/`` (a new N each time): the
resolved ``config.yaml``, CSV and TensorBoard logs, ``checkpoints/`` with the best and the last
checkpoint, and ``learning_curve.png``. ``--ckpt_path last`` resumes from the newest ``last.ckpt`` of the
same run name, writing to a new version folder. At the end it prints the best checkpoint, its validation
accuracy and the next commands.

Bad input is found before training starts and reported in one line (exit 2): a missing or unusable data
folder, ``--ckpt_path last`` with no earlier run, a checkpoint that is not one, a run folder path that is a
file, a config whose ``base:`` is missing. Ctrl-C stops after Lightning's clean shutdown with exit 130.

A config file may start from another one: a top-level ``base: FILE`` (a path relative to the config's own folder)
makes ``--config CONFIG`` read as ``--config FILE --config CONFIG``, so the config states only what differs from
its base (``configs/cpu-small.yaml`` and ``configs/sc-v2-35.yaml`` build on ``configs/default.yaml``).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import sys
import warnings
from pathlib import Path

import torch
import yaml
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from speech.cli import failure
from speech.cli.progress import ProgressBars, on_terminal
from speech.cli.threads import AUTO, apply_threads, threads_value
from speech.data.datamodule import SpeechCommandsDataModule
from speech.data.errors import DatasetError
from speech.data.labels import rejection_warning
from speech.errors import SpeechError
from speech.model_file import CheckpointError, read_checkpoint
from speech.module import KeywordModule
from speech.timing import Stopwatch

log = logging.getLogger(__name__)

VERSION_ENV = "SPEECH_RUN_VERSION"
INTERRUPTED = 130


class TrainSetupError(SpeechError, ValueError):
    """Bad input found before training starts; the message names the option and what was expected."""


# the option to change when the library blames one of its parameters (``exc.param``)
FLAG_HINTS = {"labels": "--data.labels / --data.root", "threads": "--threads", "split": "--data.split_rule",
              "teachers": "--model.teachers"}


def next_version(run_root: Path) -> int:
    """The first unused ``version_<N>`` number below ``run_root``."""
    taken = [int(m.group(1)) for p in run_root.glob("version_*") if (m := re.fullmatch(r"version_(\d+)", p.name))]
    return max(taken, default=-1) + 1


def newest_last_checkpoint(run_root: Path) -> Path:
    """``last.ckpt`` of the newest version below ``run_root`` that has one."""
    found = sorted(run_root.glob("version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise TrainSetupError(
            f"--ckpt_path last: there is no earlier run named {run_root.name!r} to resume (no "
            f"{run_root}/version_*/checkpoints/last.ckpt); start without --ckpt_path, check --run_name and "
            "--trainer.default_root_dir, or give a checkpoint file"
        )
    return found[-1]


def check_run_root(root_dir: Path) -> None:
    """``--trainer.default_root_dir`` must be a folder (or creatable as one) we may write into."""
    for path in (root_dir, *root_dir.parents):
        if path.exists():
            if not path.is_dir():
                raise TrainSetupError(
                    f"--trainer.default_root_dir {root_dir}: {path} is a file; expected a folder for the run folders"
                )
            if not os.access(path, os.W_OK | os.X_OK):
                raise TrainSetupError(f"--trainer.default_root_dir {root_dir}: cannot write into {path}")
            return


def check_data_root(root: str | Path) -> None:
    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetError(
            f"--data.root {root}: no such folder; expected a data folder with one subfolder per label "
            "(speech data download, or speech synth, makes one)"
        )
    if not path.is_dir():
        raise DatasetError(f"--data.root {root}: is a file; expected a data folder with one subfolder per label")


def check_resumable(ckpt_path: str | Path) -> dict:
    """``--ckpt_path`` must be a training checkpoint (an ONNX export cannot be trained on); returns it."""
    if Path(ckpt_path).suffix.lower() == ".onnx":
        raise TrainSetupError(
            f"--ckpt_path {ckpt_path}: an ONNX export holds no training state; give a training checkpoint (.ckpt, "
            "e.g. runs/<run_name>/version_<N>/checkpoints/last.ckpt) or 'last'"
        )
    try:
        return read_checkpoint(ckpt_path)
    except CheckpointError as exc:  # its message may offer an .onnx export, which training cannot take
        raise TrainSetupError(str(exc).replace(", or an .onnx export", "")) from None


def check_same_labels(ckpt_path: str | Path, labels: list[str]) -> None:
    """Resuming needs the checkpoint's classes: the data's labels (``--data.labels``) must be the same list."""
    from speech.model_file import META_KEY

    stored = (read_checkpoint(ckpt_path).get(META_KEY) or {}).get("labels")
    if stored is not None and list(stored) != list(labels):
        raise TrainSetupError(
            f"--ckpt_path {ckpt_path}: the checkpoint has {len(stored)} classes {list(stored)}, the data gives "
            f"{len(labels)} {list(labels)}; resume with the same --data.labels and --data.root, or train anew "
            "without --ckpt_path"
        )


CONFIG_OPTIONS = ("--config", "-c")
BASE_KEY = "base"
_BASE_LINE = re.compile(rf"^{BASE_KEY}:[^\n]*(\n|$)", re.MULTILINE)


def expand_config_bases(argv: list[str]) -> list[str]:
    """``argv`` with every ``--config FILE`` whose FILE names a ``base:`` config replaced by the chain of configs.

    ``--config FILE`` becomes ``--config BASE --config <FILE's text without its base line>``, recursively when
    BASE has a base of its own, so LightningCLI merges FILE over its base exactly as for ``--config`` options given
    one after another. jsonargparse has no deep-merging include of its own (a ``config: FILE`` key inside a config
    file replaces whole top-level sections such as ``model``), and ``base`` itself never reaches the parser.
    Options and values that are not config files with a base pass through unchanged.

    Raises:
        TrainSetupError: a base that is not a file, not a one-line ``base: FILE`` entry, or a cycle of bases.
    """
    expanded: list[str] = []
    args = iter(argv)
    for arg in args:
        option, sep, value = arg.partition("=")
        if option in CONFIG_OPTIONS and sep:
            expanded += _config_chain(option, value, ())
        elif arg in CONFIG_OPTIONS:
            value = next(args, None)
            expanded += [arg] if value is None else _config_chain(arg, value, ())
        else:
            expanded.append(arg)
    return expanded


def _config_chain(option: str, value: str, seen: tuple[Path, ...]) -> list[str]:
    """``[option, value]`` for a config without a base, else its base's chain followed by the config's own text."""
    path = Path(value).expanduser()
    if not path.is_file():
        return [option, value]  # a YAML string, or a missing file that LightningCLI reports itself
    text = path.read_text()
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError:
        return [option, value]  # LightningCLI reports the file's syntax error itself
    if not isinstance(content, dict) or BASE_KEY not in content:
        return [option, value]
    base = content[BASE_KEY]
    own_text = _BASE_LINE.sub("", text, count=1)
    own = yaml.safe_load(own_text)
    if not isinstance(base, str) or (isinstance(own, dict) and BASE_KEY in own):
        raise TrainSetupError(f"--config {value}: expected a one-line '{BASE_KEY}: FILE' naming its base config")
    base_path = path.parent / base
    if not base_path.is_file():
        raise TrainSetupError(
            f"--config {value}: its base config {base_path} is not a file ({BASE_KEY}: is relative to {path.parent})"
        )
    if base_path.resolve() in seen or base_path.resolve() == path.resolve():
        raise TrainSetupError(f"--config {value}: the base configs form a cycle through {base_path}")
    chain = _config_chain(option, str(base_path), (*seen, path.resolve()))
    return chain + [option, own_text] if own else chain


class RunWatcher(Callback):
    """Remembers the trainer and whether the fit was interrupted (Lightning exits with status 1 on Ctrl-C)."""

    def __init__(self) -> None:
        self.trainer = None
        self.interrupted = False
        self.watch = Stopwatch().start()

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.trainer = trainer

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.trainer = trainer
        self.interrupted = isinstance(exception, KeyboardInterrupt)


class EpochLines(Callback):
    """One plain log line per epoch (and when the fit starts), for output that is not a terminal: a log file or a
    pipe gets no progress bar, and without this it got nothing for the whole fit."""

    def __init__(self) -> None:
        self.watch = Stopwatch()

    def on_fit_start(self, trainer, pl_module) -> None:
        self.watch.start()
        if trainer.is_global_zero:
            log.info("training: %s epoch(s) of %s batches", trainer.max_epochs, trainer.num_training_batches)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        for key, name, scale, unit in (("train/loss_epoch", "train loss", 1.0, ""), ("val/acc", "val acc", 100.0, " %"),
                                       ("val/loss", "val loss", 1.0, "")):
            if key in metrics:
                parts.append(f"{name} {scale * float(metrics[key]):.{2 if unit else 4}f}{unit}")
        parts.append(f"{self.watch.elapsed:.0f} s")
        log.info("%s", ", ".join(parts))


class SpeechCLI(LightningCLI):
    def setup_parser(self, add_subcommands: bool, main_kwargs: dict, subparser_kwargs: dict) -> None:
        super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)
        fit = getattr(self, "_subcommand_parsers", {}).get("fit")
        if fit is not None:  # 'speech train --help' shows 'speech train', not 'speech [options] fit'
            fit.prog = "speech train"
            fit.description = (
                "Train a keyword model (Lightning's 'fit'). Each run writes runs/<run_name>/version_<N>/ (never "
                "overwritten): config.yaml, metrics.csv, checkpoints/best-*.ckpt and last.ckpt, "
                "learning_curve.png. Data options: --data.root, --data.labels (auto: the folder's own labels), "
                "--data.split_rule, --data.validation_percent, --data.testing_percent, --data.split_seed."
            )

    def _parse_ckpt_path(self) -> None:
        """Lightning reads ``--ckpt_path``'s hyperparameters before anything else: check the file is a
        checkpoint first (a text file made its unpickler fail with ``IndexError: pop from empty list``)."""
        ckpt_path = self.config.get(self.config.get("subcommand") or "fit", {}).get("ckpt_path")
        if ckpt_path and ckpt_path != "last":
            check_resumable(ckpt_path)
        super()._parse_ckpt_path()

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--run_name", type=str, default="speech", help="run folder name below default_root_dir")
        parser.add_argument(
            "--threads", type=threads_value, default=AUTO,
            help="CPU threads for PyTorch (default auto: the idle CPUs, at least 1; README, 'Threads')",
        )  # fmt: skip
        parser.link_arguments("data.labels", "model.labels", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        threads = apply_threads(config.get("threads"))
        log.info("%d CPU thread(s) for PyTorch (--threads %s)", threads, config.get("threads") or AUTO)
        trainer = config.trainer
        if str(trainer.precision).startswith("bf16") and not torch.cuda.is_available():
            log.warning("no CUDA device: training in 32-bit instead of %s", trainer.precision)
            trainer.precision = "32-true"
        root_dir = Path(trainer.default_root_dir or "runs")
        check_run_root(root_dir)
        check_data_root(config.data.root)
        root = root_dir / config.run_name
        if config.get("ckpt_path") == "last":
            config.ckpt_path = str(newest_last_checkpoint(root))
            log.info("resuming from %s", config.ckpt_path)
        elif config.get("ckpt_path") and not Path(config.ckpt_path).is_file():
            check_resumable(config.ckpt_path)  # a missing file: one clear line, before anything
        # A new version folder per run: loggers and checkpoints never overwrite an earlier run. DDP worker
        # processes (started later by Lightning with LOCAL_RANK set) inherit the number the launcher chose.
        if os.environ.get("LOCAL_RANK", "0") != "0" and VERSION_ENV in os.environ:
            version = int(os.environ[VERSION_ENV])
        else:
            version = next_version(root)
            os.environ[VERSION_ENV] = str(version)
        self.run_root, self.run_version = root, version

    def before_fit(self) -> None:
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        if ckpt_path:  # before any run folder is made: a checkpoint of other classes cannot be resumed here
            check_same_labels(ckpt_path, self.datamodule.labels)
        if self.trainer.progress_bar_callback is not None:  # the cache build draws bars like the training's
            self.datamodule.progress = ProgressBars()
        warning = rejection_warning(self.datamodule.labels)
        if warning and self.trainer.is_global_zero:
            log.warning("%s", warning)

    def instantiate_trainer(self, **kwargs):
        """Add the default callbacks the config does not already have: best/last checkpoints and a rich bar."""
        trainer_config = self._get(self.config_init, "trainer")
        callbacks = list(trainer_config.get("callbacks") or [])
        if not any(isinstance(c, ModelCheckpoint) for c in callbacks):
            callbacks += default_checkpoint_callbacks()
        if not on_terminal():  # a log file or a pipe: plain lines per epoch instead of a bar
            callbacks.append(EpochLines())
            kwargs["enable_progress_bar"] = False
        elif trainer_config.get("enable_progress_bar") is not False and not any(
            isinstance(c, RichProgressBar) for c in callbacks
        ):
            callbacks.append(RichProgressBar())
        if trainer_config.get("logger") is not False and not any(isinstance(c, LearningRateMonitor) for c in callbacks):
            callbacks.append(LearningRateMonitor(logging_interval="epoch"))
        if trainer_config.get("logger") in (None, True):
            save_dir, name = str(self.run_root.parent), self.run_root.name
            kwargs["logger"] = [
                CSVLogger(save_dir, name=name, version=self.run_version),
                TensorBoardLogger(save_dir, name=name, version=self.run_version, default_hp_metric=False),
            ]
        return super().instantiate_trainer(**{**kwargs, "callbacks": callbacks})


def default_checkpoint_callbacks() -> list[ModelCheckpoint]:
    """``best-*.ckpt`` (highest validation accuracy) and ``last.ckpt`` (rewritten after every epoch) in
    ``<run>/version_<N>/checkpoints/``. Lightning's own ``save_last`` only refreshes ``last.ckpt`` when a
    top-k checkpoint is written, which would make resuming lose the epochs that did not improve."""
    best = ModelCheckpoint(
        filename="best-epoch{epoch:02d}-acc{val/acc:.4f}",
        auto_insert_metric_name=False,
        monitor="val/acc",
        mode="max",
        save_top_k=1,
    )
    last = ModelCheckpoint(filename="last", monitor=None, save_top_k=1, enable_version_counter=False)
    return [best, last]


# Lightning messages that say nothing actionable about this run (the GPU line stays).
LIGHTNING_NOISE = (
    "💡 Tip",
    "Loading `train_dataloader` to estimate",
    "`Trainer.fit` stopped",
    "TPU available",
    "HPU available",
    "Seed set to",
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


def main(argv: list[str] | None = None) -> int:
    """Run ``speech train ARGS``; returns the exit code (0, 1 runtime failure, 2 bad input, 130 Ctrl-C)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    quiet_lightning()
    # `speech train ARGS` hands ARGS to LightningCLI explicitly; silence its warning about sys.argv, and
    # jsonargparse deprecations raised inside Lightning's own code (not actionable for a user).
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter.*")
    warnings.filterwarnings("ignore", message=".*(skip_none|instantiate_classes).*deprecated.*")
    watcher = RunWatcher()
    try:
        SpeechCLI(
            KeywordModule,
            SpeechCommandsDataModule,
            args=["fit", *expand_config_bases(list(argv or []))],
            save_config_kwargs={"overwrite": False},
            parser_kwargs={"fit": {"default_config_files": []}},
            trainer_defaults={"callbacks": [watcher]},
        )
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
    from speech.runs import CURVE_FILE, RunFolderError, plot_learning_curve

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
    if run_dir is not None and (run_dir / "metrics.csv").is_file():
        try:
            curve = plot_learning_curve([run_dir], run_dir / CURVE_FILE, [run_dir.parent.name], overwrite=True)
            lines.append(f"  learning curve       {curve}")
        except (RunFolderError, OSError, ValueError) as exc:
            log.warning("no learning curve: %s", exc)
    warning = rejection_warning(trainer.lightning_module.recogniser.labels)
    data = getattr(trainer, "datamodule", None)
    root = getattr(data, "root", None) or "DATA"
    onnx = (run_dir or ckpt.parent) / "model.onnx"
    q = shlex.quote  # every printed command can be pasted into a shell as it is
    lines += [
        "",
        "Next:",
        f"  speech evaluate {q(str(ckpt))} --data {q(str(root))}   # held-out figures (the split comes from the checkpoint)",
        f"  speech export {q(str(ckpt))} --onnx {q(str(onnx))}",
        f"  speech live {q(str(onnx))}",
    ]
    if run_dir is not None:  # the curve is drawn again into a new file (learning_curve-1.png, ...)
        lines.append(f"  speech plot {q(str(run_dir))}                        # the learning curve again")
    if warning:
        lines += ["", f"WARNING: {warning}"]
    return "\n".join(lines)
