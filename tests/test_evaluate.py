"""Evaluation: metric maths by hand, noise mixing, and ``speech evaluate`` end to end on real clips."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import LABELS_12, SC_V1_SAMPLE, SC_V2_TEST

from speech.audio.activity import active_speech_power
from speech.audio.io import load_audio
from speech.cli import main
from speech.cli.evaluate import parse_snrs
from speech.evaluation import (
    EvaluationError,
    confusion_matrix,
    evaluate_waves,
    metrics_from_confusion,
    mix_at_snr,
    most_confused_pairs,
    noise_offsets,
)
from speech.evaluation.report import read_confusion_csv
from speech.runtime.scorers import load_scorer

CLIPS_PER_LABEL = 6


# ------------------------------------------------------------------------------------------------ maths


def test_confusion_matrix_and_metrics_by_hand():
    labels = ["a", "b", "c"]
    targets = np.array([0, 0, 0, 1, 1, 2])
    preds = np.array([0, 0, 1, 1, 2, 2])
    cm = confusion_matrix(targets, preds, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    m = metrics_from_confusion(cm, labels)
    assert m.accuracy == pytest.approx(4 / 6)
    a, b, c = m.per_class
    assert (a.precision, a.recall, a.support) == (pytest.approx(1.0), pytest.approx(2 / 3), 3)
    assert (b.precision, b.recall, b.support) == (pytest.approx(0.5), pytest.approx(0.5), 2)
    assert (c.precision, c.recall, c.support) == (pytest.approx(0.5), pytest.approx(1.0), 1)
    assert a.f1 == pytest.approx(0.8) and b.f1 == pytest.approx(0.5) and c.f1 == pytest.approx(2 / 3)
    assert m.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert [(p.true, p.predicted, p.count) for p in m.confused_pairs] == [("a", "b", 1), ("b", "c", 1)]
    assert m.confused_pairs[0].fraction == pytest.approx(1 / 3)


def test_metrics_zero_division_and_absent_classes():
    # class "c" has no clips and is never predicted; class "b" is never predicted
    cm = confusion_matrix(np.array([0, 0, 1]), np.array([0, 0, 0]), 3)
    m = metrics_from_confusion(cm, ["a", "b", "c"])
    assert m.per_class[1].precision == 0.0 and m.per_class[1].f1 == 0.0
    assert m.per_class[2].support == 0 and m.per_class[2].f1 == 0.0
    # macro-F1 averages over the classes present in the data only (a and b)
    f1_a = 2 * (2 / 3) * 1.0 / (2 / 3 + 1.0)
    assert m.macro_f1 == pytest.approx((f1_a + 0.0) / 2)
    with pytest.raises(ValueError, match="must lie in"):
        confusion_matrix(np.array([0, 3]), np.array([0, 0]), 3)
    with pytest.raises(EvaluationError, match="no clips"):
        metrics_from_confusion(np.zeros((2, 2), dtype=int), ["a", "b"])


def test_most_confused_pairs_are_sorted_by_count():
    cm = np.array([[5, 1, 4], [7, 3, 0], [0, 2, 9]])
    pairs = most_confused_pairs(cm, ["x", "y", "z"], top=3)
    assert [(p.true, p.predicted, p.count) for p in pairs] == [("y", "x", 7), ("x", "z", 4), ("z", "y", 2)]


def test_parse_snrs():
    assert parse_snrs("20,10,5,0") == [20.0, 10.0, 5.0, 0.0]
    assert parse_snrs("-5, 3.5") == [-5.0, 3.5]
    for bad in ("", "a,b", "10,10", "nan"):
        with pytest.raises(ValueError):
            parse_snrs(bad)


# ------------------------------------------------------------------------------------------- noise mixing


def test_active_speech_power_ignores_the_pauses():
    wave = np.zeros((2, 16000), np.float32)
    t = np.arange(3200) / 16000
    wave[0, 6400:9600] = 0.5 * np.sin(2 * np.pi * 440 * t)  # 0.2 s tone in 1 s of silence
    power = active_speech_power(wave)
    assert power[0] == pytest.approx(0.125, rel=0.02)  # a^2 / 2, not diluted by the 0.8 s of zeros
    assert power[1] == 0.0


def test_mix_at_snr_reaches_the_requested_snr_on_real_clips(sc_v2_clips):
    clean = 0.3 * np.stack([load_audio(sc_v2_clips[w][0]) for w in ("yes", "stop", "left")])  # no clipping
    noise = np.concatenate([load_audio(p, samples=None) for p in sc_v2_clips["_silence_"][:5]])
    offsets = noise_offsets(3, len(noise), 16000, seed=7)
    assert offsets.tolist() == noise_offsets(3, len(noise), 16000, seed=7).tolist()
    assert ((offsets >= 0) & (offsets <= len(noise) - 16000)).all()
    power = active_speech_power(clean)
    for snr in (20.0, 5.0, 0.0):
        mixed = mix_at_snr(clean, noise, snr, offsets, power)
        added = mixed.astype(np.float64) - clean
        measured = 10 * np.log10(power / (added**2).mean(axis=1))
        np.testing.assert_allclose(measured, snr, atol=1e-3)
        # the noise is the data set's own, taken at the seeded offsets
        segment = noise[offsets[0] : offsets[0] + 16000]
        assert abs(np.corrcoef(added[0], segment)[0, 1]) > 0.999
    with pytest.raises(ValueError, match="shorter"):
        noise_offsets(1, 100, 16000)


# -------------------------------------------------------------------------------------- real evaluation


def test_evaluate_waves_on_real_clips_is_deterministic(tiny_checkpoint, sc_v2_clips):
    scorer = load_scorer(tiny_checkpoint)
    paths, targets = [], []
    for i, label in enumerate(LABELS_12):
        paths += sc_v2_clips[label][:3]
        targets += [i] * 3
    waves = np.stack([load_audio(p) for p in paths])
    first = evaluate_waves(scorer, waves, np.array(targets), batch_size=7)
    second = evaluate_waves(
        scorer, (waves * 32768).round().astype(np.int16), np.array(targets), batch_size=36
    )
    assert first.metrics.confusion.tolist() == second.metrics.confusion.tolist()
    assert first.metrics.num_clips == len(paths) == sum(c.support for c in first.metrics.per_class)
    assert first.accuracy == pytest.approx(float((first.predictions == first.targets).mean()))
    assert first.accuracy > 2 / 12  # a trained model, well above chance
    with pytest.raises(EvaluationError, match="model's classes"):
        evaluate_waves(scorer, waves, np.array(targets), labels=list(reversed(LABELS_12)))


# ----------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    """A test-set-layout folder of symlinks to real clips: 6 per label, silence clips that hash into 'testing'."""
    from speech.data import which_set

    root = tmp_path_factory.mktemp("small-sc-v2")
    for label in LABELS_12:
        files = sorted((SC_V2_TEST / label).glob("*.wav"))
        if label == "_silence_":
            files = [f for f in files if which_set(f.name) == "testing"]
        (root / label).mkdir()
        for f in files[:CLIPS_PER_LABEL]:
            os.symlink(f, root / label / f.name)
    return root


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def stable(report: dict) -> dict:
    """The parts of a report that must not change between runs (timings and dates do)."""
    keys = (
        "accuracy",
        "macro_f1",
        "clips",
        "per_class",
        "confused_pairs",
        "confusion",
        "snr",
        "labels",
        "data",
    )
    return {k: report[k] for k in keys}


@pytest.fixture(scope="module")
def cli_report(tiny_checkpoint, small_set, tmp_path_factory):
    """One ``speech evaluate`` run with --out, --json and --snr on the small folder (shared by several tests)."""
    base = tmp_path_factory.mktemp("report")
    argv = [
        "evaluate",
        tiny_checkpoint,
        "--data",
        small_set,
        "--out",
        base / "out",
        "--json",
        base / "r.json",
        "--snr",
        "20,0",
        "--cache-dir",
        base / "cache",
        "--threads",
        "1",
        "--latency-clips",
        "3",
    ]
    assert main([str(a) for a in argv]) == 0
    return base, argv


def test_cli_report_files_agree(cli_report, capsys):
    base, _ = cli_report
    out = base / "out"
    report = json.loads((base / "r.json").read_text())
    assert report == json.loads((out / "report.json").read_text()) | {"created": report["created"]}
    n = CLIPS_PER_LABEL * len(LABELS_12)
    # the default split rule puts every clip of this test-set layout into "test"
    assert (
        report["clips"] == n and report["data"]["split"] == "test" and report["data"]["layout"] == "test_set"
    )
    labels, cm = read_confusion_csv(out / "tiny-ckpt.confusion.csv")
    assert labels == LABELS_12 == report["labels"]
    assert cm.tolist() == report["confusion"]["matrix"]
    assert report["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert sum(c["support"] for c in report["per_class"]) == n == cm.sum()
    assert [c["support"] for c in report["per_class"]] == cm.sum(axis=1).tolist()
    assert report["latency"]["median_ms"] > 0 and report["num_parameters"] > 0
    assert [r["snr_db"] for r in report["snr"]] == [20.0, 0.0]
    assert all(r["clips"] == n for r in report["snr"])
    md = (out / "report.md").read_text()
    assert f"{100 * report['accuracy']:.2f} %" in md and "macro-F1" in md and "Noise robustness" in md
    assert "tiny-ckpt.confusion.png" in md and "snr.png" in md
    per_class = (out / "tiny-ckpt.per_class.csv").read_text().splitlines()
    assert len(per_class) == 1 + len(LABELS_12)
    from matplotlib.image import imread

    for png in ("tiny-ckpt.confusion.png", "snr.png"):
        image = imread(out / png)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 300
    assert (out / "snr.csv").read_text().count("\n") == 1 + 3


def test_cli_is_deterministic_and_refuses_to_overwrite(cli_report, tmp_path, capsys):
    base, argv = cli_report
    before = (base / "out" / "report.md").stat().st_mtime_ns
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "refusing to overwrite" in err and "--overwrite" in err
    assert (base / "out" / "report.md").stat().st_mtime_ns == before
    again = [
        tmp_path / "out" if a == base / "out" else tmp_path / "r.json" if a == base / "r.json" else a
        for a in argv
    ]
    assert run_cli(capsys, *again)[0] == 0
    first, second = json.loads((base / "r.json").read_text()), json.loads((tmp_path / "r.json").read_text())
    assert stable(first) == stable(second)
    # --overwrite replaces the report
    assert run_cli(capsys, *again, "--overwrite")[0] == 0
    assert stable(json.loads((tmp_path / "r.json").read_text())) == stable(first)


def test_cli_compares_a_checkpoint_and_its_onnx_export(tiny_checkpoint, small_set, tmp_path, capsys):
    onnx_path = tmp_path / "tiny.onnx"
    assert run_cli(capsys, "export", tiny_checkpoint, "--onnx", onnx_path)[0] == 0
    code, out, _ = run_cli(
        capsys,
        "evaluate",
        tiny_checkpoint,
        onnx_path,
        "--data",
        small_set,
        "--json",
        tmp_path / "cmp.json",
        "--out",
        tmp_path / "cmp",
        "--cache-dir",
        tmp_path / "cache",
        "--latency-clips",
        "3",
    )
    assert code == 0 and "tiny-ckpt" in out and "tiny-onnx" in out
    report = json.loads((tmp_path / "cmp.json").read_text())
    assert [m["backend"] for m in report["models"]] == ["torch", "onnx"]
    rows = report["comparison"]
    assert [r["name"] for r in rows] == ["tiny-ckpt", "tiny-onnx"]
    assert (
        rows[0]["accuracy"] == rows[1]["accuracy"] and rows[0]["num_parameters"] == rows[1]["num_parameters"]
    )
    assert all(r["latency_ms"] > 0 for r in rows)
    assert report["models"][0]["confusion"] == report["models"][1]["confusion"]
    md = (tmp_path / "cmp" / "report.md").read_text()
    table = md.split("## Summary")[1].split("\n\n")[1]
    assert "`tiny-ckpt` | torch" in table and "`tiny-onnx` | onnx" in table and "latency" in table
    assert (tmp_path / "cmp" / "tiny-onnx.confusion.png").is_file()


def test_cli_scores_data_that_lacks_some_model_labels_and_rejects_data_with_none(small_set, tmp_path, capsys):
    """A folder holding some of the model's labels is scored over all of them and the labels without clips are
    named (issue #34); a folder with none of the model's words is refused in one line."""
    from speech.classifiers.recurrent import RecurrentConfig
    from speech.model.checkpoint import save_checkpoint
    from speech.model.recogniser import Recogniser

    labels = [*LABELS_12[:-1], "marvin"]
    ckpt = save_checkpoint(
        Recogniser(labels, classifier=RecurrentConfig(hidden_size=8, num_layers=1)), tmp_path / "m.ckpt"
    )
    code, out, err = run_cli(capsys, "evaluate", ckpt, "--data", small_set, "--cache-dir", tmp_path / "cache",
                             "--json", tmp_path / "r.json")
    assert code == 0, err
    assert "no clips of marvin" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["data"]["labels_without_clips"] == ["marvin"]
    assert [c["support"] for c in report["per_class"] if c["label"] == "marvin"] == [0]
    others = save_checkpoint(Recogniser(["_silence_", "_unknown_", "marvin", "sheila"],
                                        classifier=RecurrentConfig(hidden_size=8, num_layers=1)), tmp_path / "o.ckpt")
    code, _, err = run_cli(capsys, "evaluate", others, "--data", small_set, "--cache-dir", tmp_path / "cache")
    assert code == 2
    assert "marvin" in err and str(small_set.resolve()) in err and "do not fit" in err


def test_cli_input_errors(tiny_checkpoint, small_set, tmp_path, capsys):
    common = ["--cache-dir", tmp_path / "cache"]
    code, _, err = run_cli(
        capsys, "evaluate", tiny_checkpoint, "--data", small_set, "--split", "validation", *common
    )
    assert code == 2 and "'validation' split is empty" in err and "--split-rule" in err
    code, _, err = run_cli(capsys, "evaluate", tiny_checkpoint, "--data", small_set, "--snr", "loud", *common)
    assert code == 2 and "--snr" in err
    code, _, err = run_cli(capsys, "evaluate", tiny_checkpoint, "--data", tmp_path / "nowhere", *common)
    assert code == 2 and "nowhere" in err
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "missing.ckpt", "--data", small_set, *common)
    assert code == 2 and "missing.ckpt" in err
    (tmp_path / "taken.json").write_text("{}")
    code, _, err = run_cli(
        capsys, "evaluate", tiny_checkpoint, "--data", small_set, "--json", tmp_path / "taken.json", *common
    )
    assert code == 2 and "taken.json" in err and (tmp_path / "taken.json").read_text() == "{}"


def test_cli_speaker_rule_and_full_layout(tiny_checkpoint, small_set, tmp_path, capsys):
    # a seeded speaker-disjoint 50/50 split of the same folder: test + validation = every clip, no shared speaker
    counts = {}
    for split in ("test", "validation"):
        code, _, err = run_cli(
            capsys, "evaluate", tiny_checkpoint, "--data", small_set, "--split-rule", "speaker",
            "--validation-percent", "50", "--testing-percent", "50", "--split", split,
            "--json", tmp_path / f"{split}.json", "--cache-dir", tmp_path / "cache", "--latency-clips", "0",
        )  # fmt: skip
        assert code == 0, err
        report = json.loads((tmp_path / f"{split}.json").read_text())
        assert report["data"]["split_rule"] == "speaker"
        counts[split] = report["clips"]
    assert counts["test"] > 0 and counts["validation"] > 0
    assert counts["test"] + counts["validation"] == CLIPS_PER_LABEL * len(LABELS_12)
    # the full-archive layout (official lists; silence sampled as all-zero clips, unknown from other words)
    code, _, _ = run_cli(
        capsys, "evaluate", tiny_checkpoint, "--data", SC_V1_SAMPLE, "--split", "test", "--json",
        tmp_path / "v1.json", "--cache-dir", tmp_path / "cache", "--latency-clips", "0",
    )  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "v1.json").read_text())
    assert report["data"]["layout"] == "full" and report["data"]["split_rule"] == "lists"
    per_label = report["data"]["clips_per_label"]
    assert (
        per_label["_silence_"] > 0
        and per_label["_unknown_"] > 0
        and report["clips"] == sum(per_label.values())
    )


@pytest.mark.slow  # by default: the CLI, --snr included, on a small folder (cli_report)
def test_cli_whole_shared_test_folder(tiny_checkpoint, tmp_path, capsys):
    from speech.data import build_index

    code, _, _ = run_cli(
        capsys,
        "evaluate",
        tiny_checkpoint,
        "--data",
        SC_V2_TEST,
        "--json",
        tmp_path / "full.json",
        "--cache-dir",
        tmp_path / "cache",
        "--snr",
        "10",
    )
    assert code == 0
    report = json.loads((tmp_path / "full.json").read_text())
    index = build_index(SC_V2_TEST, labels=LABELS_12)
    assert report["clips"] == len(index.splits["testing"])
    assert index.speakers("testing") and not index.speakers("training") and not index.speakers("validation")
    assert report["accuracy"] > 0.5 and report["snr"][0]["accuracy"] < report["accuracy"]


# ------------------------------------------------------------------------------------------ issue #12


def test_cli_flags_models_scored_on_different_clip_sets(tiny_checkpoint, small_set, tmp_path, capsys):
    """A 4-class model and the 12-class one on the same folder are scored on different clips: the comparison
    says so (table column, warning, JSON) and names no best model."""
    from speech.classifiers.recurrent import RecurrentConfig
    from speech.model.checkpoint import save_checkpoint
    from speech.model.recogniser import Recogniser

    four = save_checkpoint(
        Recogniser(["_silence_", "_unknown_", "yes", "no"], classifier=RecurrentConfig(hidden_size=8, num_layers=1)),
        tmp_path / "four.ckpt",
    )
    code, out, err = run_cli(
        capsys, "evaluate", tiny_checkpoint, four, "--data", small_set, "--json", tmp_path / "r.json",
        "--out", tmp_path / "r", "--cache-dir", tmp_path / "cache", "--latency-clips", "0",
    )  # fmt: skip
    assert code == 0, err
    assert "WARNING: NOT COMPARABLE: these models were scored on 2 different clip sets" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["same_clips"] is False and report["best"] is None and "NOT COMPARABLE" in report["comparability_note"]
    assert [row["clip_set"] for row in report["comparison"]] == ["A", "B"]
    assert [row["clips"] for row in report["comparison"]] == [12 * CLIPS_PER_LABEL, 4 * CLIPS_PER_LABEL]
    md = (tmp_path / "r" / "report.md").read_text()
    assert "NOT COMPARABLE" in md and "| clip set |" in md
    # the same model twice: one clip set, no warning, a best model
    code, out, _ = run_cli(
        capsys, "evaluate", tiny_checkpoint, tiny_checkpoint, "--data", small_set, "--json", tmp_path / "same.json",
        "--cache-dir", tmp_path / "cache", "--latency-clips", "0",
    )  # fmt: skip
    same = json.loads((tmp_path / "same.json").read_text())
    assert code == 0 and "NOT COMPARABLE" not in out and same["same_clips"] is True and same["best"]


def test_cli_checks_outputs_before_evaluating(tiny_checkpoint, small_set, tmp_path, capsys):
    common = ["--cache-dir", tmp_path / "cache", "--latency-clips", "0"]
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    cases = {
        "--out under a file": (["--out", tmp_path / "a-file" / "report"], "a-file is a file"),
        "--json is a folder": (["--json", tmp_path / "a-dir"], "is a folder"),
        "--json the report overwrites": (["--out", tmp_path / "rep", "--json", tmp_path / "rep" / "report.json"],
                                         "has a file of that name"),  # fmt: skip
    }
    for what, (extra, expected) in cases.items():
        code, out, err = run_cli(capsys, "evaluate", tiny_checkpoint, "--data", small_set, *extra, *common)
        assert code == 2 and expected in err and out == "", (what, err)  # refused before any scoring
    assert not (tmp_path / "rep").exists()


def test_cli_refuses_a_read_only_output_place_up_front(tiny_checkpoint, other_user):
    """Where the user may not write (root may write anywhere: tests/other_user.py mounts the folder read-only for
    the command then, which needs no other user, so it passes in a private clone too)."""
    model = other_user.readable(tiny_checkpoint)
    ro = other_user.readonly()
    cache = other_user.folder("cache")
    result = other_user.run("evaluate", str(model), "--data", str(SC_V1_SAMPLE), "--out", str(ro / "report"),
                            "--cache-dir", str(cache), "--latency-clips", "0")  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "report: cannot write the report folder" in result.stderr and "ro is not writable" in result.stderr
    assert result.stdout == "" and not list(cache.iterdir())  # nothing was decoded or scored
    assert len(result.stderr.strip().splitlines()) == 1 and "(--out)" in result.stderr


def test_ctrl_c_while_evaluating_exits_130_without_a_traceback(tiny_checkpoint, small_set, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "speech", "evaluate", str(tiny_checkpoint), "--data", str(small_set),
         "--cache-dir", str(tmp_path / "cache"), "--latency-clips", "1000000", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    started = time.monotonic()
    seen = ""
    while "speakers in" not in seen and time.monotonic() - started < 240:  # scoring starts after this line
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        seen += line
    time.sleep(1.0)  # inside the (endless) latency measurement now
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    err = seen + err
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.rstrip().splitlines()[-1] == "speech evaluate: interrupted"


def test_cli_skipped_files_agree_with_the_data_summary(tiny_checkpoint, tmp_path, capsys):
    """One verdict on bad files (the scan's): evaluate skips and counts exactly what 'data summary' counts."""
    from synthetic_data import write_bad_files

    root = tmp_path / "data"
    for label in LABELS_12:
        for path in sorted((SC_V2_TEST / label).glob("*.wav"))[:4]:
            (root / label).mkdir(parents=True, exist_ok=True)
            os.symlink(path, root / label / path.name)
    expected = write_bad_files(root / "yes", next((SC_V2_TEST / "yes").glob("*.wav")))
    bad = sum(1 for verdict in expected.values() if verdict == "bad")
    assert main(["data", "summary", str(root), "--split-rule", "speaker", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    code, out, err = run_cli(
        capsys, "evaluate", tiny_checkpoint, "--data", root, "--split", "all", "--split-rule", "speaker",
        "--json", tmp_path / "r.json", "--cache-dir", tmp_path / "cache", "--latency-clips", "0",
        "--allow-trained-speakers",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert summary["bad_files"]["count"] == report["data"]["skipped_files"] == bad
    assert sum(summary["totals"].values()) == report["clips"] == 12 * 4 + len(expected) - bad
    assert f"{bad} bad file(s) in the folder skipped" in out
