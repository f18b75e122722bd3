"""``speech train``: LightningCLI ``fit`` with run folders that are never overwritten.

Every run writes to ``<trainer.default_root_dir>/<run_name>/version_<N>/`` (a new N each time): the
resolved ``config.yaml``, CSV and TensorBoard logs, and ``checkpoints/`` with the best and the last
checkpoint. ``--ckpt_path last`` resumes from the newest ``last.ckpt`` of the same run name, writing to
a new version folder.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path

import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from speech.data.datamodule import SpeechCommandsDataModule
from speech.module import KeywordModule

log = logging.getLogger(__name__)

VERSION_ENV = "SPEECH_RUN_VERSION"


def next_version(run_root: Path) -> int:
    """The first unused ``version_<N>`` number below ``run_root``."""
    taken = [int(m.group(1)) for p in run_root.glob("version_*") if (m := re.fullmatch(r"version_(\d+)", p.name))]
    return max(taken, default=-1) + 1


def newest_last_checkpoint(run_root: Path) -> Path:
    """``last.ckpt`` of the newest version below ``run_root`` that has one."""
    found = sorted(run_root.glob("version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"--ckpt_path last: no {run_root}/version_*/checkpoints/last.ckpt to resume from")
    return found[-1]


class SpeechCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--run_name", type=str, default="speech", help="run folder name below default_root_dir")
        parser.link_arguments("data.labels", "model.labels", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        trainer = config.trainer
        if str(trainer.precision).startswith("bf16") and not torch.cuda.is_available():
            log.warning("no CUDA device: training in 32-bit instead of %s", trainer.precision)
            trainer.precision = "32-true"
        root = Path(trainer.default_root_dir or "runs") / config.run_name
        if config.get("ckpt_path") == "last":
            config.ckpt_path = str(newest_last_checkpoint(root))
            log.info("resuming from %s", config.ckpt_path)
        # A new version folder per run: loggers and checkpoints never overwrite an earlier run. DDP worker
        # processes (started later by Lightning with LOCAL_RANK set) inherit the number the launcher chose.
        if os.environ.get("LOCAL_RANK", "0") != "0" and VERSION_ENV in os.environ:
            version = int(os.environ[VERSION_ENV])
        else:
            version = next_version(root)
            os.environ[VERSION_ENV] = str(version)
        self.run_root, self.run_version = root, version

    def instantiate_trainer(self, **kwargs):
        """Add the default callbacks the config does not already have: best/last checkpoints and a rich bar."""
        trainer_config = self._get(self.config_init, "trainer")
        callbacks = list(trainer_config.get("callbacks") or [])
        if not any(isinstance(c, ModelCheckpoint) for c in callbacks):
            callbacks += default_checkpoint_callbacks()
        if trainer_config.get("enable_progress_bar") is not False and not any(
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


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    # `speech train ARGS` hands ARGS to LightningCLI explicitly; silence its warning about sys.argv, and
    # jsonargparse deprecations raised inside Lightning's own code (not actionable for a user).
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter.*")
    warnings.filterwarnings("ignore", message=".*(skip_none|instantiate_classes).*deprecated.*")
    SpeechCLI(
        KeywordModule,
        SpeechCommandsDataModule,
        args=["fit", *(argv or [])],
        save_config_kwargs={"overwrite": False},
        parser_kwargs={"fit": {"default_config_files": []}},
    )
    return 0

