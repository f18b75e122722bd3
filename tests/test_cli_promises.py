"""The README's promise for every command (issue #21): exit 0 ok, 2 bad input with one line naming what and why,
1 a failure while running, 130 Ctrl-C; no tracebacks, no silent wrong results, outputs checked before work."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SC_V2_TEST

from speech.cli import main

SPEECH = [sys.executable, "-m", "speech"]


def one_line_error(capsys, command: str, *expected: str) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"speech {command}: error: ") and "Traceback" not in err, err
    assert all(text in err for text in expected), err
    return err


def test_version(capsys):
    import speech

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"speech {speech.__version__}"
    assert "--version" in subprocess.run([*SPEECH, "--help"], capture_output=True, text=True, timeout=120).stdout


def test_every_library_error_about_its_input_is_a_speech_error():
    """One base, with the parameter and the exit code; importable without torch."""
    import speech
    from speech.audio.io import AudioError
    from speech.cli.train import TrainSetupError
    from speech.data.download import DownloadError
    from speech.data.errors import CacheError, DatasetError
    from speech.data.record import SpeakerLeakError
    from speech.evaluation.errors import EvaluationError, OutputExistsError
    from speech.model.ensemble import EnsembleError
    from speech.model.model_file import CheckpointError, ModelFileError, OnnxModelError
    from speech.streaming.sources import SourceError
    from speech.synth import EspeakError, EspeakNotFoundError
    from speech.training.runs import RunFolderError

    bad_input = [AudioError, CheckpointError, DatasetError, SpeakerLeakError, EnsembleError, EvaluationError,
                 OutputExistsError, RunFolderError, ModelFileError, OnnxModelError, TrainSetupError, EspeakNotFoundError]
    failures = [CacheError, DownloadError, EspeakError, SourceError]
    assert all(issubclass(c, speech.SpeechError) and c.exit_code == 2 for c in bad_input)
    assert all(issubclass(c, speech.SpeechError) and c.exit_code == 1 for c in failures)
    assert issubclass(AudioError, ValueError) and issubclass(OutputExistsError, FileExistsError)  # as before
    assert SpeakerLeakError("x").param == "allow_trained_speakers"
    probe = "import sys, speech.errors; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", probe], timeout=60).returncode == 0


def test_an_unexpected_exception_is_one_line_and_exit_1_with_the_traceback_under_verbose(tmp_path, monkeypatch, capsys):
    """A bug is not "bad input": exit 1, one line that says so, the traceback only with -v."""
    import speech.cli.plot as plot

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("epoch,step,val/acc,train/loss_epoch\n0,10,0.5,\n0,10,,1.2\n")

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(plot, "plot_learning_curve", broken)
    assert main(["plot", str(run), "--out", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("speech plot: internal error: ZeroDivisionError: division by zero (a bug; run with -v or "
                           "SPEECH_DEBUG=1 for the traceback)")  # fmt: skip
    assert main(["plot", str(run), "--out", str(tmp_path / "c.png"), "-v"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "raise ZeroDivisionError" in err


def test_bad_settings_are_exit_2_with_one_line(tiny_checkpoint, tmp_path, capsys):
    """Issue #21 rows 7, 12 and 13: each used to be a traceback, a wrong result with exit 0, or a wrong message."""
    # --opset outside what the exporter writes (was a traceback from deep inside torch.onnx)
    for opset in ("5", "25"):
        assert main(["export", str(tiny_checkpoint), "--onnx", str(tmp_path / "m.onnx"), "--opset", opset]) == 2
        one_line_error(capsys, "export", f"opset {opset}: the exporter writes ONNX opsets 14 to 20", "(--opset)")
    # one model twice is no ensemble (was a two-member "ensemble" of one model, exit 0)
    assert main(["export", str(tiny_checkpoint), str(tiny_checkpoint), "--onnx", str(tmp_path / "e.onnx")]) == 2
    one_line_error(capsys, "export", "is given twice")
    assert not (tmp_path / "e.onnx").exists() and not (tmp_path / "m.onnx").exists()
    # a learning curve in a format the plot cannot write (was a traceback from matplotlib)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("epoch,step,val/acc,train/loss_epoch\n0,10,0.5,\n0,10,,1.2\n")
    assert main(["plot", str(run), "--out", str(tmp_path / "x.txt")]) == 2
    one_line_error(capsys, "plot", "x.txt: the learning curve is written as .png, .svg, .pdf", "(--out)")
    assert main(["plot", str(run), "--out", str(run)]) == 2  # a folder: told to name a file in it
    one_line_error(capsys, "plot", f"is a folder; the learning curve needs a file name (e.g. {run / 'learning_curve.png'})",
                   "(--out)")
    # evaluate --threads -1 (was a traceback from torch.set_num_threads): the parser refuses it
    with pytest.raises(SystemExit) as info:
        main(["evaluate", str(tiny_checkpoint), "--data", str(SC_V2_TEST), "--threads", "-1"])
    assert info.value.code == 2 and "expected a number of threads >= 1 or 'auto', got -1" in capsys.readouterr().err
    # a file given as the data folder: said as it is (was "no such folder")
    assert main(["evaluate", str(tiny_checkpoint), "--data", str(REPO / "README.md")]) == 2
    one_line_error(capsys, "evaluate", "README.md: is a file, not a folder")


def test_synth_refuses_an_empty_set_and_says_which_letters_it_takes(tmp_path, capsys):
    assert main(["synth", "--words", "yes", "--per-word", "0", "--out", str(tmp_path / "none"), "--no-progress"]) == 2
    one_line_error(capsys, "synth", "nothing to synthesise", "(--per-word / --silence / --unknown)")
    assert not (tmp_path / "none").exists()
    assert main(["synth", "--words", "café", "--out", str(tmp_path / "cafe"), "--no-progress"]) == 2
    one_line_error(capsys, "synth", "'café' is not a usable word (the ASCII letters a-z")


def test_unwritable_output_places_are_refused_before_any_work(tiny_checkpoint, other_user):
    """Issue #21 rows 5 and 6, in a folder the command may not write into (tests/other_user.py): each command
    stops at once with exit 2 and one line naming the place and the option, and writes nothing."""
    model = other_user.readable(tiny_checkpoint)
    ro = other_user.readonly()
    w = other_user.folder("w")  # writable by anyone: outputs that are fine, beside the one that is not
    run = other_user.folder("run", 0o755)
    (run / "metrics.csv").write_text("epoch,step,val/acc,train/loss_epoch\n0,10,0.5,\n0,10,,1.2\n")
    (run / "metrics.csv").chmod(0o644)
    stream = ["--data", str(SC_V2_TEST), "--minutes", "0.25", "--noise-minutes", "0.25"]
    cases = [
        (("synth", "--words", "yes", "--per-word", "1", "--out", str(ro / "x"), "--no-progress"), "x: cannot write the output folder", "(--out)"),
        (("plot", str(run), "--out", str(ro / "p.png")), "p.png: cannot write the learning curve", "(--out)"),
        (("data", "download", "--root", str(ro / "dl"), "--url-base", "http://127.0.0.1:9/none/", "--no-progress"),
         "dl: cannot write the download folder", "(--root)"),
        (("stream-test", str(model), *stream, "--out", str(ro / "st")), "st: cannot write the output folder", "(--out)"),
        (("stream-test", str(model), *stream, "--out", str(w / "st"), "--json", str(ro / "x.json")),
         "x.json: cannot write the JSON file", "(--json)"),
        (("calibrate", str(model), *stream, "--out", str(ro / "c.ckpt"), "--report", str(w / "r")),
         "c.ckpt: cannot write the calibrated model", "(--out)"),
        (("calibrate", str(model), *stream, "--report", str(ro / "r")), "r: cannot write the output folder", "(--report)"),
    ]  # fmt: skip
    for args, *expected in cases:
        result = other_user.run(*args)
        err = result.stderr
        assert result.returncode == 2, (args, err[-2000:])
        lines = err.strip().splitlines()
        command = " ".join(args[:2]) if args[0] == "data" else args[0]
        assert len(lines) == 1 and lines[0].startswith(f"speech {command}: error: "), (args, err)
        assert all(text in lines[0] for text in expected) and "is not writable" in lines[0], (args, err)
        assert "Traceback" not in err and "Errno" not in err
        # before any work: no stream was built, no calibration ran, nothing was written anywhere
        assert not list(ro.iterdir()) and not list(w.iterdir()), args


def test_default_report_folders_go_under_speech_runs_and_paths_print_as_typed(tiny_checkpoint, tmp_path):
    """Issue #21 row 14: without --out, stream-test writes below speech-runs/ (git-ignored), not loose in the
    working folder; and the data folder is printed as the user typed it, not resolved."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "data").symlink_to(SC_V2_TEST)
    result = subprocess.run(
        [*SPEECH, "stream-test", str(tiny_checkpoint), "--data", "data", "--minutes", "0.25", "--noise-minutes", "0.25",
         "--threads", "1"], capture_output=True, text=True, timeout=600, cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in work.iterdir()) == ["data", "speech-runs"]
    (folder,) = (work / "speech-runs").iterdir()
    assert folder.name.startswith("stream-test-") and (folder / "streaming_test.wav").is_file()
    assert "partition of data (split rule" in result.stdout and str(SC_V2_TEST) not in result.stdout
    assert f"files in speech-runs/{folder.name}" in result.stdout
    assert "speech-runs/" in (REPO / ".gitignore").read_text().split()


def test_runs_started_in_the_same_second_get_report_folders_of_their_own(tmp_path, monkeypatch):
    """Two `speech calibrate` runs started in one second once shared a default folder: the second one scored its
    streams for minutes and then refused to overwrite the first one's det_curve.png. The default folder is now
    claimed when it is created; the check before the long work leaves nothing behind."""
    from speech.evaluation.streams import experiment

    monkeypatch.chdir(tmp_path)

    class Frozen(experiment.datetime):
        @classmethod
        def now(cls, tz=None):
            return experiment.datetime(2026, 12, 3, 12, 4, 11)

    monkeypatch.setattr(experiment, "datetime", Frozen)
    names = ("det_curve.png",)
    assert experiment.output_dir(None, names, "calibrate", create=False).name == "calibrate-20261203-120411"
    assert not (tmp_path / "speech-runs").exists()  # a check creates nothing
    first, second = (experiment.output_dir(None, names, "calibrate") for _ in range(2))
    assert first.name == "calibrate-20261203-120411" and second.name == "calibrate-20261203-120411-2"
    assert first.is_dir() and second.is_dir()
    assert experiment.output_dir(second, names, "calibrate") == second  # created again before writing: still fine


def test_data_summary_help_speaks_of_no_model():
    result = subprocess.run([*SPEECH, "data", "summary", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--split-rule" in result.stdout
    assert "model" not in result.stdout.replace("\n", " ")


def test_threads_default_follows_the_idle_cpus_and_every_command_takes_the_option(capsys, monkeypatch):
    """Issue #21 row 15: all cores on an idle machine, one thread when another job keeps them busy."""
    import os

    import torch
    from conftest import AUTO_THREADS, TEST_THREADS

    import speech.utils.threads
    from speech.cli.threads import resolve_threads

    default_threads = AUTO_THREADS  # the rule itself (conftest fixes 'auto' to TEST_THREADS in this process)

    assert default_threads(cpus=2, load=0.1) == 2  # idle 2-core machine
    assert default_threads(cpus=2, load=2.2) == 1  # beside a 2-thread job: no oversubscription
    assert default_threads(cpus=2, load=1.0) == 1
    assert default_threads(cpus=8, load=3.4) == 5
    assert default_threads(cpus=64, load=0.0) == 8  # a small GRU gains nothing from more
    assert resolve_threads(3) == 3 and resolve_threads("auto") == TEST_THREADS == torch.get_num_threads()
    # 'auto' with nothing given reads this process's CPUs (its affinity mask) and the 1-minute load average
    monkeypatch.setattr(speech.utils.threads, "default_threads", AUTO_THREADS)
    cpus = len(os.sched_getaffinity(0))
    for load, expected in ((0.0, min(8, cpus)), (cpus - 0.6, 1), (1.4, max(1, min(8, cpus - 1)))):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
        assert resolve_threads("auto") == expected, (cpus, load)
    for command in ("quickstart", "evaluate", "stream-test", "calibrate", "live"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--threads N|auto" in capsys.readouterr().out, command
    from speech.cli.train import main as train_main

    with pytest.raises(SystemExit):
        train_main(["--help"])
    assert "--threads" in capsys.readouterr().out


def test_threads_set_numpys_blas_pool_too(tiny_checkpoint):
    """``--threads`` sets NumPy's BLAS pool as well as PyTorch's threads, for a checkpoint and for an ``.onnx``
    (torch not involved): beside another job a pool of one thread per core made ``speech evaluate`` and ``speech
    stream-test`` of an ``.onnx`` twice to three times slower (speech.utils.threads.limit_blas_threads)."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from speech.cli.live import open_model
    from speech.cli.threads import apply_threads

    def blas() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    with threadpool_limits(limits=3, user_api="blas"):  # a pool as a 3-core machine starts it; restored after
        assert blas() == {3}
        assert apply_threads(1) == 1 and blas() == {1} and torch.get_num_threads() == 1
        scorer, _ = open_model("commands", "auto", 2)  # the packaged .onnx: ONNX Runtime's threads and the pool's
        assert scorer.backend == "onnx" and scorer.intra_op_threads == 2 and blas() == {2}
        scorer, _ = open_model(str(tiny_checkpoint), "auto", 1)
        assert scorer.backend == "torch" and blas() == {1} and torch.get_num_threads() == 1


def test_progress_reaches_a_log_file_as_plain_lines(caplog):
    """Issue #21 row 16: with stderr not a terminal (here: captured) the progress callback logs plain lines."""
    import logging

    from speech.cli.progress import ProgressBars
    from speech.utils.progress import Step

    with caplog.at_level(logging.INFO, logger="speech.utils.progress"), ProgressBars() as bars:
        for done in range(0, 101, 5):
            bars(Step("decoding clips", done, 100, "clips"))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "decoding clips: 0/100 clips" and lines[-1] == "decoding clips: 100/100 clips"
    assert len(lines) == 11  # the start and every tenth


def test_next_steps_of_the_quickstart_quote_paths_and_show_them_as_given(tmp_path):
    """Issue #21 rows 10 and 18: a folder with a space pastes into a shell; the real data folder is shown as
    given (relative), not as the absolute path of the machine it ran on."""
    import os

    from speech.cli.quickstart import shown_path
    from speech.quickstart import SHARED_REAL, HeldOut, QuickstartResult, next_steps

    run = Path("my quickstart") / "runs" / "quickstart" / "version_0"
    result = QuickstartResult(
        Path("my quickstart"), run / "checkpoints" / "best.ckpt", run / "model.onnx",
        HeldOut(0.96, 138, 10, "test", "my quickstart/synth-12", "model record"),
        HeldOut(0.42, 3321, 161, "test", "../shared/data/sc-v2-test-fit", "defaults"), {"keyword_recall": 65.7}, 60.0,
    )  # fmt: skip
    text = next_steps(result)
    live = next(line for line in text.splitlines() if line.strip().startswith("speech live") and "--wav" not in line
                and len(shlex.split(line.split("#")[0])) == 3)  # the quickstart's model (the first is the packaged one)
    assert shlex.split(live.split("#")[0]) == ["speech", "live", str(run / "model.onnx")]
    assert "in ../shared/data/sc-v2-test-fit)" in text and "/work/" not in text
    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        assert shown_path(SHARED_REAL) == "../shared/data/sc-v2-test-fit"
    finally:
        os.chdir(cwd)


def test_predict_refuses_a_bad_sample_rate_and_nan_samples(tiny_checkpoint, sc_v2_clips):
    """Issue #21 row 11: these were accepted silently (the rate taken as 16 kHz; "up" at 0.127 for NaN)."""
    import torch

    import speech
    from speech.audio.io import AudioError, load_audio, resample
    from speech.errors import SettingError
    from speech.model.checkpoint import load_recogniser

    model = speech.load(tiny_checkpoint)
    clip = load_audio(sc_v2_clips["yes"][0])
    # a good rate is used, not just accepted: the checkpoint's own softmax at 16 kHz, the same clip at 48 kHz
    # resampled to it; told the wrong rate, the 3 s at "16 kHz" are another window and score otherwise
    with torch.no_grad():
        own = torch.softmax(load_recogniser(tiny_checkpoint)(torch.from_numpy(clip)[None]), -1)[0].numpy()
    for wave, rate, tolerance in ((clip, 16000, 1e-6), (resample(clip, 16000, 48000), 48000, 1e-4)):
        scores = model.predict(wave, sample_rate=rate)
        assert list(scores) == model.labels
        np.testing.assert_allclose([scores[label] for label in model.labels], own, atol=tolerance)
    mistaken = model.predict(resample(clip, 16000, 48000), sample_rate=16000)
    assert np.abs(np.array([mistaken[label] for label in model.labels]) - own).max() > 0.1
    for rate in (0, -8000, 16000.5):
        with pytest.raises(SettingError, match="sample_rate must be a positive whole number"):
            model.predict(clip, sample_rate=rate)
    with pytest.raises(AudioError, match="16000 NaN or infinite samples"):
        model.predict(np.full(16000, np.nan, np.float32))
