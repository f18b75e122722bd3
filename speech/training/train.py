"""Training as a library call: :func:`train` runs LightningCLI ``fit`` and returns the run folder it wrote.

::

    import speech

    run = speech.train("configs/quickstart.yaml", {"data.root": "data/mine", "trainer.max_epochs": 5})
    best = next((run / "checkpoints").glob("best-*.ckpt"))

Every run writes to ``<trainer.default_root_dir>/<run_name>/version_<N>/`` (a new N each time): the resolved
``config.yaml``, CSV and TensorBoard logs, ``checkpoints/`` with the best (highest validation accuracy) and the
last checkpoint, and ``learning_curve.png``. ``ckpt_path: last`` resumes from the newest ``last.ckpt`` of the same run name, writing to a new
version folder. ``speech train`` (:mod:`speech.cli.train`) is this with a terminal's progress bars, ``--threads``
applied by default, and a printed summary.

Bad input is found before training starts and raised as a :class:`~speech.errors.SpeechError` (a
:class:`TrainSetupError`, or the data's :class:`~speech.data.errors.DatasetError`): a missing or unusable data
folder, ``ckpt_path: last`` with no earlier run, a checkpoint that is not one, a run folder path that is a file, a
config whose ``base:`` is missing, an unknown or ill-typed setting.

A config file may start from another one: a top-level ``base: FILE`` (a path relative to the config's own folder)
makes ``--config CONFIG`` read as ``--config FILE --config CONFIG``, so the config states only what differs from
its base (``configs/cpu-small.yaml`` and ``configs/sc-v2-35.yaml`` build on ``configs/default.yaml``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentError
from lightning.pytorch.callbacks import (
    Callback,
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    RichProgressBar,
)
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from speech.classifiers import ClassifierSettingsError, classifier_settings, settings_dict
from speech.data.datamodule import SpeechCommandsDataModule
from speech.data.errors import DatasetError
from speech.data.labels import rejection_warning
from speech.errors import SettingError, SpeechError
from speech.frontend.mfcc import FrontEndConfig
from speech.model.model_file import CheckpointError, read_checkpoint
from speech.training.module import KeywordModule
from speech.utils.threads import apply_threads, threads_value
from speech.utils.timing import Stopwatch

log = logging.getLogger(__name__)

VERSION_ENV = "SPEECH_RUN_VERSION"


class TrainSetupError(SpeechError, ValueError):
    """Bad input found before training starts; the message names the option and what was expected."""



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


def window_samples(frontend) -> int:
    """``--model.frontend`` as parsed (None for the defaults, or a namespace of ``class_path`` and ``init_args``)
    -> the window in samples that the data module decodes every clip to."""
    values = getattr(frontend, "init_args", frontend)
    values = {} if values is None else dict(values.items()) if hasattr(values, "items") else dict(vars(values))
    return FrontEndConfig.from_dict(values).window_samples


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
    from speech.model.model_file import META_KEY

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
    one after another: the composition is jsonargparse's own (several ``--config``), only the chain is read here.
    jsonargparse (4.53) cannot state a base inside a file: it has no ``__base__``/include key (its maintainers
    declined one, jsonargparse issues #117, #221, #861), and a ``config: FILE`` key inside a config file applies
    FILE but the file's own sections then replace FILE's whole top-level sections (``trainer:`` in cpu-small.yaml
    dropped default.yaml's ``gradient_clip_val: 5.0``); a custom loader (``set_loader``) would merge the YAML by
    hand. ``base`` itself never reaches the parser. Options and values that are not config files with a base pass
    through unchanged.

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
    """LightningCLI ``fit`` for :class:`KeywordModule` and :class:`SpeechCommandsDataModule` with run folders that
    are never overwritten, input checked before anything is built, and the default callbacks (best and last
    checkpoints, learning-rate log, one log line per epoch). ``run_dir`` is the run's folder.

    :mod:`speech.cli.train` subclasses it for the terminal (progress bars, ``--threads`` by default)."""

    run_dir: Path

    def progress_bars(self) -> bool:
        """Whether the trainer draws a progress bar; the library logs one line per epoch instead."""
        return False

    def summary_callback(self) -> Callback | None:
        """The model summary: the library logs it (Lightning's default, with rich installed, prints a table on
        stdout); None: Lightning's default."""
        return ModelSummary()

    def setup_parser(self, add_subcommands: bool, main_kwargs: dict, subparser_kwargs: dict) -> None:
        super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)
        # Private: jsonargparse's add_subcommand names the parser '<prog> [options] fit' after any prog given in
        # parser_kwargs, and LightningCLI keeps the subcommand parsers only in this attribute.
        fit = getattr(self, "_subcommand_parsers", {}).get("fit")
        if fit is not None:  # 'speech train --help' shows 'speech train', not 'speech [options] fit'
            fit.prog = "speech train"
            fit.description = (
                "Train a keyword model (Lightning's 'fit'). Each run writes runs/<run_name>/version_<N>/ (never "
                "overwritten): config.yaml, metrics.csv, checkpoints/best-*.ckpt and last.ckpt, "
                "learning_curve.png. Data options: --data.root, --data.labels (auto: the folder's own labels), "
                "--data.split_rule, --data.validation_percent, --data.testing_percent, --data.split_seed."
            )

    def parse_arguments(self, parser, args) -> None:
        """Parse ``args`` (always given: :func:`run_cli` never reads ``sys.argv``, so without LightningCLI's warning
        about both), then check ``ckpt_path`` is a checkpoint before Lightning reads its hyperparameters (right
        after parsing): a text file made its unpickler fail with ``IndexError: pop from empty list``."""
        self.config = parser.parse_args(args)
        ckpt_path = self.config.get(self.config.get("subcommand") or "fit", {}).get("ckpt_path")
        if ckpt_path and ckpt_path != "last":
            check_resumable(ckpt_path)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--run_name", type=str, default="speech", help="run folder name below default_root_dir")
        parser.add_argument(
            "--threads", type=threads_value, default=None,
            help="CPU threads for PyTorch: a number or auto (the idle CPUs, at least 1); unset: leave PyTorch's own",
        )  # fmt: skip
        parser.link_arguments("data.labels", "model.labels", apply_on="instantiate")
        # the clips are decoded to the model's window: one setting, --model.frontend.window_ms
        parser.link_arguments("model.frontend", "data.window_samples", compute_fn=window_samples, apply_on="parse")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        if config.get("threads") is not None:
            threads = apply_threads(config.threads)
            log.info("%d CPU thread(s) for PyTorch (threads %s)", threads, config.threads)
        trainer = config.trainer
        if str(trainer.precision).startswith("bf16") and not torch.cuda.is_available():
            log.warning("no CUDA device: training in 32-bit instead of %s", trainer.precision)
            trainer.precision = "32-true"
        try:  # the classifier's kind and every setting, read and completed once: the run's config.yaml holds them all
            config.model.classifier = settings_dict(classifier_settings(config.model.get("classifier")))
        except ClassifierSettingsError as exc:
            raise SettingError(str(exc), param="classifier") from None
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
        self.run_dir = root / f"version_{version}"

    def instantiate_classes(self) -> None:
        """Build model, data and trainer. A settings dataclass that refuses a value (``RecurrentConfig``'s checks)
        reaches us from jsonargparse as "Does not validate against any of the Union subtypes", its own message as
        the cause: that message is the one-line error."""
        try:
            super().instantiate_classes()
        except SpeechError:
            raise
        except ValueError as exc:
            if not isinstance(exc.__cause__, ValueError):
                raise
            raise TrainSetupError(" ".join(str(exc.__cause__).split())) from None

    def before_fit(self) -> None:
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        if ckpt_path:  # before any run folder is made: a checkpoint of other classes cannot be resumed here
            check_same_labels(ckpt_path, self.datamodule.labels)
        self.model.check_held_out(self.datamodule.record())  # a leaking teacher or encoder: no run folder either
        warning = rejection_warning(self.datamodule.labels)
        if warning and self.trainer.is_global_zero:
            log.warning("%s", warning)

    def after_fit(self) -> None:
        if self.trainer.is_global_zero:
            draw_learning_curve(self.run_dir)

    def instantiate_trainer(self, **kwargs):
        """Add the default callbacks the config does not already have: best/last checkpoints, progress, the model
        summary and the learning-rate log."""
        trainer_config = self.config_init[self.subcommand].trainer
        callbacks = list(trainer_config.get("callbacks") or [])
        if not any(isinstance(c, ModelCheckpoint) for c in callbacks):
            callbacks += default_checkpoint_callbacks()
        if not self.progress_bars():  # a log file, a pipe or the library: plain lines per epoch instead of a bar
            callbacks.append(EpochLines())
            kwargs["enable_progress_bar"] = False
        elif trainer_config.get("enable_progress_bar") is not False and not any(
            isinstance(c, RichProgressBar) for c in callbacks
        ):
            callbacks.append(RichProgressBar())
        summary = self.summary_callback()
        if summary is not None and trainer_config.get("enable_model_summary") is not False and not any(
            isinstance(c, ModelSummary) for c in callbacks
        ):
            callbacks.append(summary)
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


def draw_learning_curve(run_dir: Path) -> Path | None:
    """The run's ``learning_curve.png`` from its ``metrics.csv`` (None, and a warning, when it cannot be drawn)."""
    from speech.training.runs import CURVE_FILE, RunFolderError, plot_learning_curve

    if not (run_dir / "metrics.csv").is_file():
        return None
    try:
        return plot_learning_curve([run_dir], run_dir / CURVE_FILE, [run_dir.parent.name], overwrite=True)
    except (RunFolderError, OSError, ValueError) as exc:
        log.warning("no learning curve: %s", exc)
        return None


def run_cli(args: list[str], cli_class: type[SpeechCLI] = SpeechCLI, callbacks: Sequence[Callback] = ()) -> SpeechCLI:
    """Run ``speech train ARGS`` (``fit`` with ``cli_class``); returns the finished CLI object.

    ``callbacks``: kept in every run whatever the config says. A bad option raises :class:`TrainSetupError`
    (``param`` "usage"), one line, instead of printing the usage (``--help`` and ``--print_config`` still exit)."""
    kwargs = {"exit_on_error": False}
    try:
        return cli_class(
            KeywordModule,
            SpeechCommandsDataModule,
            args=["fit", *expand_config_bases(list(args))],
            save_config_kwargs={"overwrite": False},
            parser_kwargs={**kwargs, "fit": {"default_config_files": [], **kwargs}},
            trainer_defaults={"callbacks": list(callbacks)},
        )
    except ArgumentError as exc:
        raise TrainSetupError(" ".join(str(exc).split()), param="usage") from None


def override_args(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """``speech train`` arguments for :func:`train`'s ``overrides``: a mapping becomes one YAML ``--config`` (dotted
    keys nest: ``{"model.lr": 0.01}`` is ``{"model": {"lr": 0.01}}``), command-line arguments pass as they are."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        raise TrainSetupError(f"overrides {overrides!r}: expected a mapping of settings or a list of arguments",
                              param="overrides")
    if not isinstance(overrides, Mapping):
        return [str(arg) for arg in overrides]
    if not overrides:
        return []
    nested = nested_settings(
        ((str(key), _plain(value)) for key, value in overrides.items()),
        lambda key, node: TrainSetupError(f"overrides: {key!r} sets a value inside a setting given as {node!r}",
                                          param="overrides"))
    return ["--config", yaml.safe_dump(nested, sort_keys=False)]


def nested_settings(items: Iterable[tuple[str, Any]], fail: Callable[[str, Any], Exception]) -> dict[str, Any]:
    """Settings with dotted keys as nested mappings: ``("model.lr", 0.01)`` is ``{"model": {"lr": 0.01}}``.
    ``fail(key, value)`` is the error raised for a key that sets a value inside a setting given as a plain value."""
    nested: dict[str, Any] = {}
    for key, value in items:
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise fail(key, node)
        node[leaf] = value
    return nested


def _plain(value: Any) -> Any:
    """``value`` as YAML can state it: paths as text, tuples as lists, mappings with text keys."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def train(
    config: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
) -> Path:
    """Train a keyword model as ``speech train`` does; returns the run folder (``runs/<run_name>/version_<N>``).

    ``config``: a config file (or several, later ones over earlier ones), e.g. ``configs/cpu-small.yaml``; none:
    the code's defaults. ``overrides``: settings over the config, as a mapping with dotted or nested keys
    (``{"data.root": "data/mine", "trainer.max_epochs": 5, "model": {"lr": 0.01}}``) or as ``speech train``
    arguments (``["--data.root", "data/mine"]``). ``ckpt_path`` (a checkpoint, or ``"last"``) resumes;
    ``threads`` sets PyTorch's threads (unset: left as they are). Progress goes to :mod:`logging` (one line per
    epoch, logger ``speech.training.train``); nothing is printed.

    Raises:
        SpeechError: bad input, before training starts (:class:`TrainSetupError`, ``DatasetError``, ...).
        KeyboardInterrupt: Ctrl-C; the last finished epoch is in the run's ``checkpoints/last.ckpt``.
    """
    configs = [] if config is None else [config] if isinstance(config, str | os.PathLike) else list(config)
    args = [arg for path in configs for arg in ("--config", os.fspath(path))] + override_args(overrides)
    watcher = RunWatcher()
    try:
        cli = run_cli(args, callbacks=[watcher])
    except SystemExit:  # Lightning ends a Ctrl-C'd fit with sys.exit(1) after its clean shutdown
        if watcher.interrupted:
            raise KeyboardInterrupt from None
        raise
    return cli.run_dir
