"""Training through the real CLI on real clips: loss goes down, run folders, checkpoints, resume, DDP."""

from __future__ import annotations

import csv
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import LABELS_12, REPO, SC_V1_SAMPLE, SC_V2_TEST, SHARED_DATA, SMALL_MODEL, train_args

import speech
from speech.audio.io import load_audio
from speech.cli.train import main as train_main
from speech.data.datamodule import SpeechCommandsDataModule
from speech.model.checkpoint import load_recogniser
from speech.model.model_file import read_checkpoint
from speech.training.module import KeywordModule


def epoch_losses(run_dir: Path) -> list[float]:
    with open(run_dir / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss_epoch")]
    return [float(r["train/loss_epoch"]) for r in rows]


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
    # the run averages its weights (cpu-small sets ema_decay): the file's recogniser is the average, as served
    module = KeywordModule(labels=LABELS_12, classifier=recogniser.classifier.config,
                           ema_decay=ckpt["hyper_parameters"]["ema_decay"])
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    waves = torch.from_numpy(np.stack([load_audio(p) for p in sorted((small_tree / "yes").glob("*.wav"))[:4]]))
    with torch.no_grad():
        assert torch.allclose(module(waves), recogniser(waves), atol=1e-6)


def test_training_and_serving_see_identical_features(trained_run, small_tree, cache_dir):
    """The cached int16 batch the trainer sees decodes to the same waveform serving reads from the file,
    and the checkpoint's front end (used by evaluate, export and streaming) gives the training features."""
    data = SpeechCommandsDataModule(
        str(small_tree), split_rule="speaker", validation_percent=20.0, testing_percent=0.0, cache_dir=str(cache_dir)
    )
    data.setup("validate")
    waves, _ = data.on_after_batch_transfer(next(iter(data.val_dataloader())), 0)
    examples = data.data["validation"].examples[: len(waves)]
    served = np.stack([load_audio(ex.path) if ex.path else np.zeros(16000, np.float32) for ex in examples])
    assert np.array_equal(waves.numpy(), served)
    recogniser = load_recogniser(trained_run / "checkpoints" / "last.ckpt")
    ckpt = read_checkpoint(trained_run / "checkpoints" / "last.ckpt")
    module = KeywordModule(labels=LABELS_12, classifier=recogniser.classifier.config,
                           ema_decay=ckpt["hyper_parameters"]["ema_decay"])
    module.load_state_dict(ckpt["state_dict"])
    with torch.no_grad():
        assert torch.equal(module.recogniser.frontend(waves), recogniser.frontend(torch.from_numpy(served)))


def test_runs_never_overwrite_and_resume_continues_from_last(trained_run, small_tree, cache_dir, capsys):
    """Resuming through the Python API, ``speech.train``, with the settings as a mapping: it returns the new run."""
    runs = trained_run.parent.parent
    before = (trained_run / "checkpoints" / "last.ckpt").read_bytes()
    capsys.readouterr()
    resumed = speech.train(REPO / "configs" / "cpu-small.yaml", {
        "data.root": small_tree, "data.cache_dir": cache_dir, "data.batch_size": 32, "trainer.default_root_dir": runs,
        "data.extra_roots": None, "run_name": "test", "model.classifier": {"hidden_size": 32, "num_layers": 1, "input_channels": 32},
        "trainer.max_epochs": 5, "model.lr": 0.01, "ckpt_path": "last",
    })  # fmt: skip
    assert resumed == runs / "test" / "version_1"
    assert capsys.readouterr().out == ""  # the library prints nothing (Lightning's lines go to logging)
    config = yaml.safe_load((resumed / "config.yaml").read_text())  # the run's config: the config file + overrides
    assert config["model"]["lr"] == 0.01 and config["model"]["ema_decay"] == 0.995
    assert config["model"]["classifier"]["hidden_size"] == 32 and config["model"]["classifier"]["attention_heads"] == 4
    assert (trained_run / "checkpoints" / "last.ckpt").read_bytes() == before  # the first run is untouched
    ckpt = read_checkpoint(resumed / "checkpoints" / "last.ckpt")
    assert ckpt["epoch"] == 4  # epochs 0-3 came from the first run, epoch 4 was trained here
    assert len(epoch_losses(resumed)) == 1


def test_every_config_parses_and_fast_dev_runs(tmp_path, cache_dir, capsys):
    for name in ("default", "sc-v2-35", "cpu-small", "ddp", "live"):
        resolved = resolved_config(capsys, REPO / "configs" / f"{name}.yaml")
        assert "classifier" in resolved["model"] and "max_epochs" in resolved["trainer"], name
    # the GPU configs fall back to 32-bit on a CPU-only machine; v0.01 sample = the full-dataset layout; live.yaml
    # with a few windows of the shared running speech in place of LibriSpeech's train-clean-100
    running = ["--data.running_speech", str(SHARED_DATA / "librispeech-mini"), "--data.running_speech_windows", "64"]
    for name, run_name, labels, extra in (("default", "sc-v2-12", 12, []), ("sc-v2-35", "sc-v2-35", 30, []),
                                          ("live", "sc-v2-12-live", 12, running)):
        assert train_main([
            "--config", str(REPO / "configs" / f"{name}.yaml"),
            "--data.root", str(SC_V1_SAMPLE), "--data.cache_dir", str(cache_dir), "--data.num_workers", "0",
            "--data.batch_size", "16", "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
            "--trainer.enable_progress_bar", "false", *SMALL_MODEL, *extra,
        ]) in (0, None)
        (ckpt,) = (tmp_path / run_name).glob("version_0/checkpoints/last.ckpt")
        meta = read_checkpoint(ckpt)["speech"]
        assert len(meta["labels"]) == labels
    assert meta["frontend"]["window_ms"] == 1500.0 and meta["data"]["running_speech"]["windows"] == 64


def resolved_config(capsys, *configs: Path) -> dict:
    """``speech train --config C1 --config C2 ... --print_config``, parsed."""
    with pytest.raises(SystemExit) as stop:
        train_main([*(arg for config in configs for arg in ("--config", str(config))), "--print_config"])
    assert stop.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


def leaves(tree: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_override_config_is_its_base_plus_what_it_states(tmp_path, capsys):
    configs = REPO / "configs"
    base = leaves(resolved_config(capsys, configs / "default.yaml"))
    small = leaves(resolved_config(capsys, configs / "cpu-small.yaml"))
    stated = yaml.safe_load((configs / "cpu-small.yaml").read_text())
    assert stated.pop("base") == "default.yaml"
    stated = leaves(stated)
    assert set(stated) < set(base) and set(small) == set(base)
    assert small == {key: stated.get(key, value) for key, value in base.items()}
    assert small["model.lr"] != base["model.lr"] and small["trainer.gradient_clip_val"] == base["trainer.gradient_clip_val"]
    # the same as naming the base by hand
    assert leaves(resolved_config(capsys, configs / "default.yaml", configs / "cpu-small.yaml")) == small
    # a base of a base: the packaged model's config is cpu-small plus its run name, teachers' run folders and the
    # word placement it was built with (before cpu-small.yaml placed more words off-centre)
    packaged = leaves(resolved_config(capsys, configs / "packaged.yaml"))
    assert {key for key in packaged if packaged[key] != small[key]} == {"run_name", "model.teachers",
                                                                        "data.augment.place_probability"}
    assert packaged["data.augment.place_probability"] == base["data.augment.place_probability"] == 0.5
    assert packaged["model.teachers"] == ["runs/teacher-0", "runs/teacher-1"] and packaged["seed_everything"] == 0

    override = tmp_path / "override.yaml"
    override.write_text("base: missing.yaml\nrun_name: x\n")
    assert train_main(["--config", str(override), "--print_config"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(override) in err and str(tmp_path / "missing.yaml") in err


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
    err = result.stderr
    # two processes joined one gloo group ...
    for line in ("Initializing distributed: GLOBAL_RANK: 0, MEMBER: 1/2",
                 "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2",
                 "distributed_backend=gloo", "All distributed processes registered. Starting with 2 processes"):
        assert line in err, line
    # ... and shared the training set: each took half of the N clips, in batches of 32 (one process: ceil(N / 32))
    (clips,) = set(re.findall(r"fitted the feature normaliser on (\d+) training clips", err))
    per_rank = math.ceil(math.ceil(int(clips) / 2) / 32)
    assert ckpt["global_step"] == 2 * per_rank < 2 * math.ceil(int(clips) / 32), (ckpt["global_step"], clips)


def test_extra_roots_add_synthetic_clips_to_training_only(small_tree, cache_dir, tmp_path):
    from speech.synth import synthesize_dataset

    synth = tmp_path / "synth"
    synthesize_dataset(synth, ["yes", "no"], per_word=3, silence=2, unknown=2, seed=1, progress=False)
    kwargs = dict(split_rule="speaker", validation_percent=20.0, testing_percent=0.0, cache_dir=str(cache_dir))
    plain = SpeechCommandsDataModule(str(small_tree), **kwargs)
    mixed = SpeechCommandsDataModule(str(small_tree), extra_roots=[str(synth)], **kwargs)
    added = mixed.examples("training")[len(plain.examples("training")):]
    assert [LABELS_12[e.label] for e in added].count("yes") == 3
    assert [LABELS_12[e.label] for e in added].count("_silence_") == 2
    assert [LABELS_12[e.label] for e in added].count("_unknown_") == 2
    assert mixed.examples("validation") == plain.examples("validation")


def test_bad_input_is_one_line_before_training(small_tree, cache_dir, tmp_path, capsys):
    """Each of these used to end in a traceback (some only after the model was built): now one line, exit 2."""
    runs = tmp_path / "runs"
    (tmp_path / "notes" / "docs").mkdir(parents=True)
    (tmp_path / "notes" / "docs" / "readme.txt").write_text("no audio here")
    (tmp_path / "junk" / "yes").mkdir(parents=True)
    (tmp_path / "junk" / "yes" / "a_nohash_0.wav").write_text("a text file with an audio name")
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "notes.ckpt").write_text("epoch: 3\n")
    (tmp_path / "one-word" / "yes").mkdir(parents=True)
    for path in sorted((SC_V2_TEST / "yes").glob("*.wav"))[:8]:
        (tmp_path / "one-word" / "yes" / path.name).symlink_to(path)
    (tmp_path / "model.onnx").write_bytes(b"\x08\x08\x12\x06 an onnx export")
    fresh = tmp_path / "fresh-cache"
    cases = {
        "missing root": (["--data.root", str(tmp_path / "missing")], ["missing: no such folder"]),
        "non-audio files": (["--data.root", str(tmp_path / "notes")], ["hold 1 non-audio file(s) and no audio"]),
        "broken audio": (["--data.root", str(tmp_path / "junk")], ["a_nohash_0.wav: not a readable audio file"]),
        "empty folder": (["--data.root", str(tmp_path / "empty")], ["empty: the folder is empty"]),
        "resume without a run": (["--ckpt_path", "last"], ["no earlier run named 'test' to resume"]),
        "root dir is a file": (["--trainer.default_root_dir", str(tmp_path / "a-file")], ["a-file is a file"]),
        "text checkpoint": (["--ckpt_path", str(tmp_path / "notes.ckpt")], ["notes.ckpt: not a PyTorch checkpoint"]),
        # issue #21 rows 4 and 13: one word cannot be a classifier; an ONNX export cannot be resumed, and the
        # message must not suggest that it could
        "one word": (["--data.root", str(tmp_path / "one-word"), "--data.labels", "all"],
                     ["needs at least 2 classes, got ['yes']", "(--data.labels / --data.root)"]),
        "onnx checkpoint": (["--ckpt_path", str(tmp_path / "model.onnx")], ["an ONNX export holds no training state"]),
        "labels a folder lacks": (["--data.labels", "12", "--data.root", str(tmp_path / "one-word")],
                                  ["the 12 Speech Commands classes: word(s) ['no', 'up'"]),
        # model settings out of range: were "internal error ... a bug"
        "negative mixup": (["--model.mixup_alpha", "-1"], ["mixup_alpha must be >= 0 (0: off), got -1.0"]),
        "whole-band warp": (["--model.spec_augment.vtlp", "1.5"], ["spec_augment.vtlp must be in [0, 1)"]),
        "averaging decay 1": (["--model.ema_decay", "1"], ["ema_decay must be in [0, 1), got 1.0"]),
        "window under one FFT frame": (["--model.frontend.window_ms", "10"], ["window_ms=10 is shorter than one FFT"]),
        "unknown pooling": (["--model.classifier.pooling", "foo"], ["pooling must be one of", "got 'foo'"]),
        "stale words without a recent part": (["--data.augment.stale_probability", "0.2"],
                                              ["stale_probability needs recent_ms"]),
        "gain range upside down": (["--data.augment.gain_db", "[6, -6]"], ["gain_db must be a range [low, high]"]),
        # a mistyped running-speech path: refused before the clip caches are built (hours on the full data set)
        "missing running speech": (["--data.running_speech", str(tmp_path / "libri"), "--data.cache_dir", str(fresh)],
                                   ["libri: running-speech folder does not exist"]),
        "missing hard negatives": (["--data.running_speech", str(SHARED_DATA / "librispeech-mini"),
                                    "--data.running_speech_hard_negatives", str(tmp_path / "hard.npy"),
                                    "--data.cache_dir", str(fresh)], ["hard.npy: no such hard-negatives file"]),
    }
    for what, (extra, expected) in cases.items():
        code = train_main([*train_args(small_tree, runs, cache_dir), "--trainer.max_epochs", "1", *extra])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("speech train: error:")]
        assert code == 2 and len(lines) == 1, (what, err[-2000:])
        assert all(text in lines[0] for text in expected), (what, lines[0])
        assert "Traceback" not in err and "split_rule speaker" not in lines[0], what
        assert not runs.exists() or not list(runs.rglob("*.ckpt")), what
        assert "'auto'" not in lines[0] and ".onnx export" not in lines[0], what
    assert not fresh.exists() or not list(fresh.iterdir())  # nothing decoded before the running-speech refusals


def test_train_as_a_function_raises_typed_errors_before_training(small_tree, cache_dir, tmp_path, capsys):
    from speech.data.errors import DatasetError
    from speech.training.train import TrainSetupError

    config = REPO / "configs" / "cpu-small.yaml"
    runs = tmp_path / "runs"
    given = {"data.root": small_tree, "data.cache_dir": cache_dir, "trainer.default_root_dir": runs}
    with pytest.raises(DatasetError, match="missing: no such folder"):
        speech.train(config, {**given, "data.root": tmp_path / "missing"})
    with pytest.raises(TrainSetupError, match="model.no_such_setting"):
        speech.train(config, {**given, "model.no_such_setting": 1})
    with pytest.raises(TrainSetupError, match="trainer.max_epochs"):
        speech.train(config, [f"--data.root={small_tree}", "--trainer.max_epochs", "many"])
    with pytest.raises(TrainSetupError, match="no earlier run named 'speech'"):
        speech.train(None, {**given, "ckpt_path": "last"})
    with pytest.raises(TrainSetupError, match="File does not exist"):
        speech.train(tmp_path / "no-config.yaml")
    printed = capsys.readouterr()
    assert printed.out == "" and "usage:" not in printed.err
    assert not runs.exists()


def test_resuming_a_checkpoint_of_other_classes_is_refused_before_any_run_folder(trained_run, small_tree, cache_dir,
                                                                                 tmp_path, capsys):
    """Issue #21 row 3: --data.labels all orders the 12 classes otherwise than the checkpoint's; this was a
    traceback (size mismatch ... head) after an empty run folder was made."""
    runs = tmp_path / "runs"
    code = train_main([*train_args(small_tree, runs, cache_dir), "--trainer.max_epochs", "5", "--data.labels", "all",
                       "--ckpt_path", str(trained_run / "checkpoints" / "last.ckpt")])  # fmt: skip
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("speech train: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert "the checkpoint has 12 classes" in lines[0] and "resume with the same --data.labels" in lines[0]
    assert not (runs / "test").exists()


def test_help_names_the_command(capsys):
    with pytest.raises(SystemExit) as info:
        train_main(["--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and out.startswith("usage: speech train") and "[options] fit" not in out
    assert "--data.split_rule" in out and "--data.split_seed" in out and "--data.labels" in out


def test_a_run_ends_with_its_summary_and_learning_curve_and_no_lightning_noise(small_tree, cache_dir, tmp_path):
    """The real command as a user runs it. Labels without _unknown_/_silence_ also get the rejection warning."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # a data folder and a run folder with spaces in their names (issue #21 row 10), and one broken file (row 13)
    data = tmp_path / "my data"
    for label in ("yes", "no", "up"):
        (data / label).mkdir(parents=True)
        for path in sorted((small_tree / label).iterdir()):
            (data / label / path.name).symlink_to(path.resolve())
    (data / "up" / "zz_nohash_0.wav").write_text("not audio")
    runs = tmp_path / "my runs"
    result = subprocess.run(
        [sys.executable, "-m", "speech", "train",
         *train_args(data, runs, cache_dir, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2",
                     "--trainer.limit_val_batches", "1", "--data.labels", "yes,no", "--data.split_rule", "speaker")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = runs / "test" / "version_0"
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    out = result.stdout
    assert f"best checkpoint      {best}" in out and "validation accuracy  " in out
    assert f"learning curve       {run / 'learning_curve.png'}" in out and (run / "learning_curve.png").stat().st_size > 10_000
    # the Next: commands paste into a shell as they are, calling speech as it runs from here (issue #36 row 7:
    # .venv/bin/speech where the set-up's .venv/bin is not on the PATH)
    from speech.cli.program import program

    evaluate = next(line for line in out.splitlines() if line.strip().startswith(f"{program()} evaluate"))
    assert shlex.split(evaluate.split("#")[0]) == [*shlex.split(program()), "evaluate", str(best), "--data", str(data)]
    plot = next(line for line in out.splitlines() if line.strip().startswith(f"{program()} plot"))
    # ... and the suggested 'speech plot RUN' works as printed (row 9: it used to refuse, the curve being there)
    again = subprocess.run(shlex.split(plot.split("#")[0]), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"wrote {run / 'learning_curve-1.png'}" in again.stdout, again.stderr
    err = result.stderr
    # progress reaches a log file: one plain line per epoch (row 16); the broken file is named once (row 13)
    assert [line.split(",")[0] for line in err.splitlines() if line.startswith("INFO epoch ")] == ["INFO epoch 1/2",
                                                                                                  "INFO epoch 2/2"]
    assert len([line for line in err.splitlines() if "zz_nohash_0.wav" in line]) == 1, err
    warning = [line for line in (out + err).splitlines() if "has no _unknown_ or _silence_ class" in line]
    assert len(warning) == 2, out + err  # once when training starts (log), once in the summary
    lines = [line.strip() for line in err.splitlines() if line.strip() and "━" not in line]
    assert not [line for line in set(lines) if lines.count(line) > 1 and "it/s" not in line], err
    assert "INFO: " not in err and "💡" not in err and "deprecated" not in err, err
    assert "GPU available" in err  # the useful Lightning line stays, once


def test_speech_plot_draws_the_learning_curve_of_runs(trained_run, tmp_path, capsys, monkeypatch):
    import speech.training.runs
    from speech.cli import main as speech_main

    figures = []  # the figures 'speech plot' draws (each kept as it is made; nothing else changes)
    make = speech.training.runs.new_figure
    monkeypatch.setattr(speech.training.runs, "new_figure", lambda *a, **k: figures.append(make(*a, **k)) or figures[-1])
    out = tmp_path / "curve.png"
    assert speech_main(["plot", str(trained_run), str(trained_run), "--label", "a", "--label", "b", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {out}" in capsys.readouterr().out
    # the plotted series are metrics.csv's: validation accuracy (%) and training loss per epoch, once per run
    with open(trained_run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    acc = [(int(r["epoch"]), 100 * float(r["val/acc"])) for r in rows if r.get("val/acc")]
    loss = [(int(r["epoch"]), float(r["train/loss_epoch"])) for r in rows if r.get("train/loss_epoch")]
    assert len(acc) == len(loss) == 4
    (figure,) = figures
    acc_ax, loss_ax = figure.axes
    best = max(v for _, v in acc)
    assert [line.get_label() for line in acc_ax.get_lines()] == [f"{n} (best {best:.1f}%)" for n in ("a", "b")]
    assert [line.get_label() for line in loss_ax.get_lines()] == ["a", "b"]
    for ax, series in ((acc_ax, acc), (loss_ax, loss)):
        for line in ax.get_lines():
            np.testing.assert_allclose(line.get_xydata(), np.array(series), rtol=1e-9)
    assert speech_main(["plot", str(trained_run), "--out", str(out)]) == 2  # never replaced silently
    assert "exists; refusing to overwrite" in capsys.readouterr().err
    assert speech_main(["plot", str(tmp_path)]) == 2
    assert "not a training run folder (no metrics.csv" in capsys.readouterr().err
    script = subprocess.run([sys.executable, str(REPO / "scripts" / "plot_run.py"), str(trained_run), "--out",
                             str(tmp_path / "script.png")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert script.returncode == 0 and (tmp_path / "script.png").is_file(), script.stderr
