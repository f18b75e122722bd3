"""``speech data summary`` on the shared real data and on a folder with broken files."""

from __future__ import annotations

import json

from conftest import FSDD, SC_V1_SAMPLE, SC_V2_TEST

from speech.cli import main as speech_main
from speech.data.synthetic import link_or_copy, write_bad_files


def run_json(capsys, *args) -> dict:
    assert speech_main(["data", "summary", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_summary_json_of_the_v001_sample(capsys):
    summary = run_json(capsys, SC_V1_SAMPLE, "--labels", "all")
    assert summary["layout"] == "full" and summary["split_method"] == "lists" and len(summary["labels"]) == 30
    assert summary["totals"] == {"training": 205, "validation": 44, "testing": 48}
    assert sum(summary["clips"]["validation"].values()) == 44
    durations = summary["durations"]
    assert (
        durations["files"] == 297
        and durations["max_s"] == 1.0
        and durations["sample_rates"] == {"16000": 297}
    )
    assert 0 < durations["not_1s"] < 297 and durations["min_s"] < 1.0
    assert summary["bad_files"] == {"count": 0, "first": []}


def test_summary_of_fsdd_reports_rates_and_lengths(capsys):
    summary = run_json(capsys, FSDD, "--labels", "zero,one", "--split", "speaker")
    assert summary["layout"] == "folders" and summary["durations"]["sample_rates"] == {"8000": 600}
    assert summary["durations"]["min_s"] < 0.3 and summary["durations"]["max_s"] > 1.0
    assert sum(summary["speakers"].values()) == 6


def test_summary_table_and_bad_files(tmp_path, capsys):
    good = next((SC_V2_TEST / "yes").glob("*.wav"))
    expected = write_bad_files(tmp_path / "yes", good)
    link_or_copy(good, tmp_path / "no" / good.name)
    (tmp_path / "no" / "empty_nohash_0.wav").write_bytes(b"")
    assert speech_main(["data", "summary", str(tmp_path), "--labels", "yes,no", "--split", "speaker"]) == 0
    out = capsys.readouterr().out
    assert "training" in out and "speakers" in out and "bad files skipped: 4" in out
    assert "empty_nohash_0.wav: empty file" in out
    summary = run_json(capsys, tmp_path, "--labels", "yes,no")
    bad_names = sorted(p.rsplit("/", 1)[-1] for p, _ in summary["bad_files"]["first"])
    # the empty file (scan), two unreadable headers and the header-only WAV (no samples)
    assert summary["bad_files"]["count"] == 4
    assert bad_names == ["empty_nohash_0.wav", "s10_nohash_0.wav", "s11_nohash_0.wav", "s9_nohash_0.wav"]
    assert summary["durations"]["files"] == len(expected) + 1 - 3


def test_summary_errors_name_the_folder(tmp_path, capsys):
    assert speech_main(["data", "summary", str(tmp_path / "missing")]) == 1
    assert "missing: data folder does not exist" in capsys.readouterr().err
    assert speech_main(["data", "summary", str(FSDD)]) == 1
    err = capsys.readouterr().err
    assert "fsdd" in err and "'yes'" in err
