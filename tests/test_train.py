"""Training through the real CLI on real clips: loss goes down, run folders, checkpoints, resume, DDP."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import LABELS_12, REPO, SC_V1_SAMPLE, SC_V2_TEST

from speech.audio import load_audio
from speech.checkpoint import load_recogniser, read_checkpoint
from speech.cli.train import main as train_main
from speech.data.datamodule import SpeechCommandsDataModule
from speech.module import KeywordModule

SMALL_MODEL = [
    "--model.classifier.hidden_size", "32",
    "--model.classifier.num_layers", "1",
    "--model.classifier.input_channels", "32",
]


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory) -> Path:
    """The official test-set layout with 24 clips per label from sc-v2-test-fit (symlinks, no copies)."""
    root = tmp_path_factory.mktemp("sc-small")
    for label in LABELS_12:
        (root / label).mkdir()
        for path in sorted((SC_V2_TEST / label).glob("*.wav"))[:24]:
            (root / label / path.name).symlink_to(path)
    return root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def train_args(root: Path, runs: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "--config", str(REPO / "configs" / "cpu-small.yaml"),
        "--data.root", str(root),
        "--data.cache_dir", str(cache),
        "--data.batch_size", "32",
        "--trainer.default_root_dir", str(runs),
        "--trainer.enable_progress_bar", "false",
        "--run_name", "test",
        *SMALL_MODEL,
        *extra,
    ]


def epoch_losses(run_dir: Path) -> list[float]:
    with open(run_dir / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss_epoch")]
    return [float(r["train/loss_epoch"]) for r in rows]


@pytest.fixture(scope="module")
def trained_run(small_tree, cache_dir, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    train_main(train_args(small_tree, runs, cache_dir, "--trainer.max_epochs", "4", "--model.lr", "0.01"))
    return runs / "test" / "version_0"


def test_fit_lowers_the_loss_and_writes_a_complete_run_folder(trained_run):
    losses = epoch_losses(trained_run)
    assert len(losses) == 4
    assert losses[-1] < losses[0] - 0.05, losses
    assert (trained_run / "config.yaml").is_file()
    assert (trained_run / "checkpoints" / "last.ckpt").is_file()
    assert len(list((trained_run / "checkpoints").glob("best-*.ckpt"))) == 1
    assert list(trained_run.glob("events.out.tfevents.*")), "TensorBoard log missing"
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert config["model"]["classifier"]["hidden_size"] == 32


def test_checkpoint_alone_rebuilds_the_trained_model(trained_run, small_tree):
    ckpt_path = trained_run / "checkpoints" / "last.ckpt"
    ckpt = read_checkpoint(ckpt_path)  # the weights-only loader accepts Lightning's own checkpoint
    assert ckpt["speech"]["labels"] == LABELS_12
    recogniser = load_recogniser(ckpt_path)
    assert bool(recogniser.frontend.fitted)
    module = KeywordModule(labels=LABELS_12, classifier=recogniser.classifier.config)
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    waves = torch.from_numpy(np.stack([load_audio(p) for p in sorted((small_tree / "yes").glob("*.wav"))[:4]]))
    with torch.no_grad():
        assert torch.allclose(module(waves), recogniser(waves), atol=1e-6)


def test_training_and_serving_see_identical_features(trained_run, small_tree, cache_dir):
    """The cached int16 batch the trainer sees decodes to the same waveform serving reads from the file,
    and the checkpoint's front end (used by evaluate, export and streaming) gives the training features."""
    data = SpeechCommandsDataModule(
        str(small_tree), split="speaker", validation_percent=20.0, testing_percent=0.0, cache_dir=str(cache_dir)
    )
    data.setup("validate")
    waves, _ = data.on_after_batch_transfer(next(iter(data.val_dataloader())), 0)
    examples = data.data["validation"].examples[: len(waves)]
    served = np.stack([load_audio(ex.path) if ex.path else np.zeros(16000, np.float32) for ex in examples])
    assert np.array_equal(waves.numpy(), served)
    recogniser = load_recogniser(trained_run / "checkpoints" / "last.ckpt")
    module = KeywordModule(labels=LABELS_12, classifier=recogniser.classifier.config)
    module.load_state_dict(read_checkpoint(trained_run / "checkpoints" / "last.ckpt")["state_dict"])
    with torch.no_grad():
        assert torch.equal(module.recogniser.frontend(waves), recogniser.frontend(torch.from_numpy(served)))


def test_runs_never_overwrite_and_resume_continues_from_last(trained_run, small_tree, cache_dir):
    runs = trained_run.parent.parent
    before = (trained_run / "checkpoints" / "last.ckpt").read_bytes()
    train_main(
        train_args(small_tree, runs, cache_dir, "--trainer.max_epochs", "5", "--model.lr", "0.01", "--ckpt_path", "last")
    )
    resumed = runs / "test" / "version_1"
    assert (trained_run / "checkpoints" / "last.ckpt").read_bytes() == before  # the first run is untouched
    ckpt = read_checkpoint(resumed / "checkpoints" / "last.ckpt")
    assert ckpt["epoch"] == 4  # epochs 0-3 came from the first run, epoch 4 was trained here
    assert len(epoch_losses(resumed)) == 1


def test_every_config_parses_and_fast_dev_runs(tmp_path, cache_dir):
    for name in ("default", "sc-v2-35", "cpu-small", "ddp"):
        out = subprocess.run(
            [sys.executable, "-m", "speech", "train", "--config", str(REPO / "configs" / f"{name}.yaml"), "--print_config"],
            capture_output=True, text=True, check=True,
        ).stdout
        assert "classifier:" in out and "trainer:" in out
    # the GPU configs fall back to 32-bit on a CPU-only machine; v0.01 sample = the full-dataset layout
    for name, labels in (("default", 12), ("sc-v2-35", 30)):
        train_main([
            "--config", str(REPO / "configs" / f"{name}.yaml"),
            "--data.root", str(SC_V1_SAMPLE), "--data.cache_dir", str(cache_dir), "--data.num_workers", "0",
            "--data.batch_size", "16", "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
            "--trainer.enable_progress_bar", "false", *SMALL_MODEL,
        ])
        (ckpt,) = (tmp_path / name.replace("default", "sc-v2-12")).glob("version_0/checkpoints/last.ckpt")
        assert len(read_checkpoint(ckpt)["speech"]["labels"]) == labels


@pytest.mark.slow
def test_ddp_fit_with_two_cpu_processes(small_tree, cache_dir, tmp_path):
    env = {**os.environ, "SPEECH_CACHE": str(cache_dir), "PYTHONUNBUFFERED": "1"}
    env.pop("LOCAL_RANK", None)
    result = subprocess.run(
        [sys.executable, "-m", "speech", "train",
         *train_args(small_tree, tmp_path, cache_dir, "--trainer.max_epochs", "2",
                     "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "test" / "version_0"
    assert not (tmp_path / "test" / "version_1").exists(), "DDP workers must share the launcher's run folder"
    ckpt = read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert ckpt["epoch"] == 1
    assert "distributed_backend=gloo" in result.stderr + result.stdout or "gloo" in (result.stderr + result.stdout)


def test_extra_roots_add_synthetic_clips_to_training_only(small_tree, cache_dir, tmp_path):
    from speech.synth import synthesize_dataset

    synth = tmp_path / "synth"
    synthesize_dataset(synth, ["yes", "no"], per_word=3, silence=2, unknown=2, seed=1, progress=False)
    kwargs = dict(split="speaker", validation_percent=20.0, testing_percent=0.0, cache_dir=str(cache_dir))
    plain = SpeechCommandsDataModule(str(small_tree), **kwargs)
    mixed = SpeechCommandsDataModule(str(small_tree), extra_roots=[str(synth)], **kwargs)
    added = mixed.examples("training")[len(plain.examples("training")):]
    assert [LABELS_12[e.label] for e in added].count("yes") == 3
    assert [LABELS_12[e.label] for e in added].count("_silence_") == 2
    assert [LABELS_12[e.label] for e in added].count("_unknown_") == 2
    assert mixed.examples("validation") == plain.examples("validation")
