"""``speech calibrate`` end to end with the tiny checkpoint: thresholds chosen on the validation speakers, stored
in a new model file, reloaded by ``stream-test`` (on other held-out speakers) and kept by ``export``."""

from __future__ import annotations

import json

from conftest import SC_V2_TEST
from streaming_helpers import assert_budget_holds_except_over_target, held_out_speakers, recorded_checkpoint

from speech.cli import main
from speech.runtime.scorers import load_scorer

KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def test_calibrate_stores_thresholds_that_stream_test_and_export_use(tiny_checkpoint, tmp_path, capsys):
    model = recorded_checkpoint(tiny_checkpoint, tmp_path / "recorded.ckpt")
    original = model.read_bytes()
    calibrated = tmp_path / "calibrated.ckpt"
    args = ["calibrate", str(model), "--data", str(SC_V2_TEST), "--minutes", "1", "--noise-minutes", "0.5",
            "--target-fa", "2", "--report", str(tmp_path / "report"), "--json", str(tmp_path / "cal.json")]
    assert main([*args, "--out", str(calibrated)]) == 0
    printed = capsys.readouterr().out
    assert "calibrated (per keyword)" in printed and f"wrote {calibrated}" in printed
    assert model.read_bytes() == original
    for name in ("det_curve.png", "sweep.csv", "calibration.json"):
        assert (tmp_path / "report" / name).stat().st_size > 100
    summary = json.loads((tmp_path / "cal.json").read_text())
    assert summary["pooling"] == 0.0
    assert main([*args[:2], "--data", str(SC_V2_TEST), "--pooling", "-1", "--out", str(tmp_path / "x.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "--pooling must be >= 0" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "x.ckpt").exists()
    section = load_scorer(calibrated).metadata["detection"]
    assert set(section["thresholds"]) == set(KEYWORDS) and section["thresholds"] == summary["thresholds"]
    assert all(0.5 <= t <= 1.0 for t in section["thresholds"].values())
    assert section["target_false_accepts_per_hour"] == 2.0 and section["settings"]["hop_ms"] == 100.0
    on = section["calibrated_on"]
    # calibrated on the validation speakers of the model's own split, none of them trained on
    assert on["partition"] == "validation" and on["source"] == "model record"
    assert set(on["speaker_ids"]) == held_out_speakers("validation") and on["speakers"] == len(on["speaker_ids"])
    # 1 min of non-keyword speech: no false accept allowed. Every keyword gets a threshold (none is "never"): those
    # that cannot meet the budget get their best one and are named in the table, the JSON and the stored section
    assert summary["budgets_in_streams"] == {"false_accepts": 0, "false_alarms": 0}
    assert all(t < 1.0 for t in section["thresholds"].values()) and "never" not in printed
    over = summary["over_target"]
    assert section["over_target"] == over
    assert (f"WARNING: no threshold met the targets for {', '.join(over)}" in printed) == bool(over)
    assert_budget_holds_except_over_target(summary, printed)  # the others: no false accept, no false alarm

    # stream-test uses them by default, on the test speakers (not those calibrated on) ...
    st = ["stream-test", str(calibrated), "--data", str(SC_V2_TEST), "--minutes", "0.5", "--unknown-minutes", "0.5",
          "--noise-minutes", "0.25"]
    assert main([*st, "--out", str(tmp_path / "st"), "--json", str(tmp_path / "st.json")]) == 0
    m = json.loads((tmp_path / "st.json").read_text())
    assert m["threshold_source"].startswith("calibrated per keyword") and m["thresholds"] == section["thresholds"]
    assert m["keyword_share"] == section["settings"]["keyword_share"]  # the scores the thresholds were fitted on
    assert m["split"]["partition"] == "test" and m["calibration_speakers_in_streams"] == 0
    assert "the thresholds were calibrated on" not in capsys.readouterr().out
    # ... warns when scored on the speakers it was calibrated on, and --threshold overrides them
    assert main([*st, "--split", "validation", "--threshold", "0.8", "--out", str(tmp_path / "v"),
                 "--json", str(tmp_path / "v.json")]) == 0
    assert json.loads((tmp_path / "v.json").read_text())["threshold_source"] == "--threshold 0.8"
    capsys.readouterr()
    assert main([*st, "--split", "validation", "--out", str(tmp_path / "v2")]) == 0
    assert "the thresholds were calibrated on" in capsys.readouterr().out

    # export keeps them
    onnx = tmp_path / "calibrated.onnx"
    assert main(["export", str(calibrated), "--onnx", str(onnx)]) == 0
    assert load_scorer(onnx).metadata["detection"] == section

    # --single stores one threshold for all keywords, --in-place writes into the model file itself
    copy = tmp_path / "copy.ckpt"
    copy.write_bytes(original)
    assert main(["calibrate", str(copy), "--data", str(SC_V2_TEST), "--minutes", "0.5", "--noise-minutes", "0.25",
                 "--target-fa", "10000", "--target-noise", "10000", "--single", "--in-place", "--keyword-share", "0.6",
                 "--report", str(tmp_path / "single")]) == 0
    assert load_scorer(copy).metadata["detection"]["settings"]["keyword_share"] == 0.6
    thresholds = load_scorer(copy).metadata["detection"]["thresholds"]
    assert set(thresholds) == set(KEYWORDS) and set(thresholds.values()) == {0.5}  # any rate allowed: the floor
    assert "calibrated (single)" in capsys.readouterr().out

    # refusals: an existing --out, --out with --in-place, training speakers
    capsys.readouterr()
    assert main([*args[:-4], "--out", str(calibrated)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main([*args[:-4], "--out", str(tmp_path / "x.ckpt"), "--in-place"]) == 2
    assert main([*args[:-4], "--split", "train", "--out", str(tmp_path / "y.ckpt")]) == 2
    assert "--allow-trained-speakers" in capsys.readouterr().err and not (tmp_path / "y.ckpt").exists()
