"""Evaluation that cannot leak: checkpoints record their training data, evaluate defaults to the held-out
speakers, refuses training speakers, and reproduces the metrics training logged."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import LABELS_12, REPO, linked_tree

from speech.cli import main as speech_main
from speech.cli.train import main as train_main
from speech.data import build_index
from speech.data.datamodule import SpeechCommandsDataModule
from speech.data.record import DataRecord, SpeakerLeakError, check_held_out
from speech.evaluation import confusion_matrix, metrics_from_confusion
from speech.model.model_file import read_checkpoint
from speech.runtime.export import export_onnx
from speech.runtime.scorers import load_scorer


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """The official test-set layout with 20 clips per label (symlinks into the shared data)."""
    return linked_tree(tmp_path_factory.mktemp("sc-tree"), 20)


@pytest.fixture(scope="module")
def run(tree, tmp_path_factory) -> Path:
    """A tiny model trained 3 epochs with weight averaging on; returns its version folder."""
    runs = tmp_path_factory.mktemp("runs")
    train_main(
        [
            "--config", str(REPO / "configs" / "cpu-small.yaml"),
            "--data.root", str(tree),
            "--data.cache_dir", str(tmp_path_factory.mktemp("cache")),
            "--data.batch_size", "32",
            "--data.extra_roots", "null",  # cpu-small.yaml's four-word folder: not for this tiny tree
            "--data.validation_percent", "20",  # this test scores the held-out validation split (no test part)
            "--data.testing_percent", "0",
            "--data.running_speech_windows", "120",  # cpu-small.yaml's 1,500: the record, not the count, is tested
            "--trainer.default_root_dir", str(runs),
            "--trainer.enable_progress_bar", "false",
            "--trainer.max_epochs", "3",
            "--run_name", "leak",
            "--model.classifier.hidden_size", "32",
            "--model.classifier.num_layers", "1",
            "--model.classifier.input_channels", "32",
            "--model.ema_decay", "0.9",
            "--model.lr", "0.01",
        ]
    )
    return runs / "leak" / "version_0"


def best_checkpoint(run: Path) -> Path:
    return next((run / "checkpoints").glob("best-*.ckpt"))


def logged_validation(run: Path, epoch: int) -> dict[str, float]:
    with open(run / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/acc") and int(r["epoch"]) == epoch]
    return {"acc": float(rows[-1]["val/acc"]), "f1": float(rows[-1]["val/f1"])}


def test_checkpoint_and_onnx_record_the_split_and_training_speakers(run, tree, tmp_path):
    meta = read_checkpoint(best_checkpoint(run))["speech"]
    record = DataRecord.from_dict(meta["data"])
    assert record is not None and record.folder(tree) is not None
    assert (record.split.rule, record.split.validation_percent, record.split.testing_percent) == ("speaker", 20.0, 0.0)
    index = build_index(tree, LABELS_12, record.split)
    assert set(record.training_speakers) == index.speakers("training")
    assert not set(record.training_speakers) & index.speakers("validation")
    assert record.speakers["training"] == len(record.training_speakers) > 0
    assert record.training_files and all(name.startswith("_silence_/") for name in record.training_files)
    # cpu-small.yaml adds the running speech of librispeech-mini's train readers (issue #18): recorded
    assert len(record.training_readers()) == 8 and record.running_speech["windows"] == 120
    onnx_path = export_onnx(best_checkpoint(run), tmp_path / "m.onnx")
    assert load_scorer(onnx_path).metadata["data"] == meta["data"]


def test_check_held_out_flags_training_speakers_and_training_silence_files(run, tree):
    record = DataRecord.from_dict(read_checkpoint(best_checkpoint(run))["speech"]["data"])
    index = build_index(tree, LABELS_12, record.split)
    assert check_held_out(record, index.splits["validation"], tree) == []
    with pytest.raises(SpeakerLeakError, match="trained on"):
        check_held_out(record, index.splits["training"], tree)
    leaked = check_held_out(record, index.splits["training"], tree, allow=True)
    assert len(leaked) == len(index.splits["training"])  # speakers and the speakerless _silence_ files
    assert check_held_out(None, index.splits["training"], tree) == []


def test_training_noise_comes_only_from_training_silence_clips(tree, tmp_path):
    data = SpeechCommandsDataModule(str(tree), split_rule="speaker", validation_percent=20.0, testing_percent=0.0,
                                    cache_dir=str(tmp_path))
    kept = {str(p) for p in data.training_noise_index().silence_files}
    training = {ex.path for ex in data.index.splits["training"] if ex.word == "_silence_"}
    held_out = {ex.path for ex in data.index.splits["validation"] if ex.word == "_silence_"}
    assert kept == training and held_out and not kept & held_out


def test_evaluate_defaults_to_the_held_out_split_and_reproduces_the_logged_metrics(run, tree, tmp_path, capsys):
    ckpt = best_checkpoint(run)
    epoch = int(re.search(r"epoch(\d+)", ckpt.name).group(1))
    out = tmp_path / "report.json"
    assert speech_main(["evaluate", str(ckpt), "--data", str(tree), "--json", str(out), "--latency-clips", "0"]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    model = report["models"][0] if "models" in report else report
    data = model["data"]
    assert data["split"] == "validation" and data["split_settings"]["source"] == "model record"
    assert data["clips_of_training_speakers"] == 0
    assert re.search(r"scored the validation split .*\(\d+ clips, \d+ speakers", printed)
    logged = logged_validation(run, epoch)
    assert model["accuracy"] == pytest.approx(logged["acc"], abs=1e-6)
    assert model["macro_f1"] == pytest.approx(logged["f1"], abs=1e-6)


def test_evaluate_refuses_training_speakers_unless_allowed(run, tree, capsys):
    ckpt = str(best_checkpoint(run))
    assert speech_main(["evaluate", ckpt, "--data", str(tree), "--split", "train", "--latency-clips", "0"]) == 2
    assert "trained on" in capsys.readouterr().err
    assert speech_main(["evaluate", ckpt, "--data", str(tree), "--split", "all", "--latency-clips", "0"]) == 2
    code = speech_main(
        ["evaluate", ckpt, "--data", str(tree), "--split", "train", "--latency-clips", "0", "--allow-trained-speakers"]
    )
    assert code == 0
    assert "WARNING" in capsys.readouterr().out


def test_macro_f1_is_torchmetrics_definition():
    """The issue's example: targets [0,0,1,1], predictions [0,2,1,1] -> torchmetrics' macro F1 0.556."""
    metrics = metrics_from_confusion(confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1]), 3), ["a", "b", "c"])
    assert metrics.accuracy == pytest.approx(0.75)
    assert metrics.macro_f1 == pytest.approx(5 / 9, abs=1e-6)
    assert metrics.macro_f1_present == pytest.approx((2 / 3 + 1) / 2, abs=1e-6)  # 'c' has no clips
