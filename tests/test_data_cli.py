"""``speech data summary`` on the shared real data and on a folder with broken files."""

from __future__ import annotations

import json

import pytest
from conftest import FSDD, SC_V1_SAMPLE, SC_V2_TEST
from synthetic_data import link_or_copy, write_bad_files

from speech.cli import main as speech_main


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
    summary = run_json(capsys, FSDD, "--labels", "zero,one", "--split-rule", "speaker")
    assert summary["layout"] == "folders" and summary["durations"]["sample_rates"] == {"8000": 600}
    assert summary["durations"]["min_s"] < 0.3 and summary["durations"]["max_s"] > 1.0
    assert sum(summary["speakers"].values()) == 6


def test_summary_table_and_bad_files(tmp_path, capsys):
    good = next((SC_V2_TEST / "yes").glob("*.wav"))
    expected = write_bad_files(tmp_path / "yes", good)
    link_or_copy(good, tmp_path / "no" / good.name)
    (tmp_path / "no" / "empty_nohash_0.wav").write_bytes(b"")
    assert speech_main(["data", "summary", str(tmp_path), "--labels", "yes,no", "--split-rule", "speaker"]) == 0
    out = capsys.readouterr().out
    assert "training" in out and "speakers" in out and "bad files skipped: 5" in out
    assert "empty_nohash_0.wav: empty file" in out
    summary = run_json(capsys, tmp_path, "--labels", "yes,no")
    bad_names = sorted(p.rsplit("/", 1)[-1] for p, _ in summary["bad_files"]["first"])
    # the empty file, two unreadable headers, the header-only WAV (no samples) and the truncated WAV
    assert summary["bad_files"]["count"] == 5
    assert bad_names == ["empty_nohash_0.wav", "s10_nohash_0.wav", "s11_nohash_0.wav", "s8_nohash_0.wav", "s9_nohash_0.wav"]
    assert summary["durations"]["files"] == len(expected) + 1 - 4


def test_summary_tables_leave_broken_files_out(tmp_path, capsys):
    """47 decodable + 4 broken files: the tables sum to 47, the bad-file count is 4 (it used to be 50 and 4)."""
    clips = sorted((SC_V2_TEST / "yes").glob("*.wav"))[:47]
    for path in clips:
        link_or_copy(path, tmp_path / "yes" / path.name)
    (tmp_path / "yes" / "cut_nohash_0.wav").write_bytes(clips[0].read_bytes()[:20000])  # truncated data chunk
    (tmp_path / "yes" / "text_nohash_0.wav").write_text("not audio\n" * 40)
    (tmp_path / "yes" / "head_nohash_0.wav").write_bytes(clips[1].read_bytes()[:44])
    (tmp_path / "yes" / "empty_nohash_0.wav").write_bytes(b"")
    summary = run_json(capsys, tmp_path, "--labels", "yes", "--split-rule", "speaker")
    assert sum(summary["totals"].values()) == sum(sum(c.values()) for c in summary["clips"].values()) == 47
    assert summary["bad_files"]["count"] == 4 and summary["durations"]["files"] == 47


def test_summary_of_an_own_keywords_folder_uses_its_own_labels(tmp_path, capsys, sc_v2_clips):
    for label, source in (("lights-on", "yes"), ("lights-off", "no"), ("_unknown_", "_unknown_"), ("_silence_", "_silence_")):
        for path in sc_v2_clips[source][:30]:
            link_or_copy(path, tmp_path / label / path.name)
    summary = run_json(capsys, tmp_path, "--split-rule", "speaker")
    assert summary["labels"] == ["_silence_", "_unknown_", "lights-off", "lights-on"]
    assert sum(summary["totals"].values()) == 4 * 30
    assert run_json(capsys, SC_V2_TEST, "--split-rule", "speaker")["labels"][:3] == ["_silence_", "_unknown_", "yes"]


def test_summary_speaks_the_split_vocabulary_of_evaluate(capsys):
    """--split-rule / --split-seed / percents, as in evaluate and stream-test; no --split meaning the rule."""
    base = ["--labels", "yes,no", "--split-rule", "speaker", "--validation-percent", "20", "--testing-percent", "0"]
    first = run_json(capsys, SC_V2_TEST, *base)
    again = run_json(capsys, SC_V2_TEST, *base, "--split-seed", "59185")
    other = run_json(capsys, SC_V2_TEST, *base, "--split-seed", "7")
    assert first["split_method"] == "speaker" and first["totals"]["testing"] == 0 and first == again
    assert other["clips"] != first["clips"]
    with pytest.raises(SystemExit) as info:  # --split is the scored partition elsewhere: not an option here
        speech_main(["data", "summary", str(SC_V2_TEST), "--split", "speaker"])
    assert info.value.code == 2 and "unrecognized arguments: --split speaker" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        speech_main(["data", "summary", "--help"])
    assert info.value.code == 0
    helptext = capsys.readouterr().out
    assert "--split-rule" in helptext and "--split-seed" in helptext and "--seed " not in helptext


def test_summary_errors_name_the_folder(tmp_path, capsys):
    assert speech_main(["data", "summary", str(tmp_path / "missing")]) == 2
    assert "missing: data folder does not exist" in capsys.readouterr().err
    assert speech_main(["data", "summary", str(FSDD), "--labels", "12"]) == 2
    err = capsys.readouterr().err
    assert "fsdd" in err and "'yes'" in err
