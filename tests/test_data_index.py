"""Index, layouts, labels and splits of the data layer, on the shared real clips and generated trees."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
from conftest import FSDD, LABELS_12, SC_V1_SAMPLE, SC_V2_TEST
from synthetic_data import full_layout_tree, link_or_copy, tiny_wav_tree, write_bad_files

from speech.data import (
    SPLITS,
    DatasetError,
    DatasetIndex,
    SplitSettings,
    build_index,
    parse_clip_name,
    resolve_labels,
    speaker_split,
    which_set,
)
from speech.data.splits import DEFAULT_SEED
from speech.errors import SettingError


def assert_speaker_disjoint(index: DatasetIndex) -> None:
    owners: dict[str, str] = {}
    for split, examples in index.splits.items():
        for example in examples:
            if example.speaker:
                assert owners.setdefault(example.speaker, split) == split, f"{example.speaker} in two splits"


def read_list(name: str) -> set[str]:
    return set((SC_V1_SAMPLE / name).read_text().split())


def test_hash_rule_reproduces_the_official_v001_lists():
    validation, testing = read_list("validation_list.txt"), read_list("testing_list.txt")
    sample = sorted(SC_V1_SAMPLE.glob("*/*.wav"))
    assert len(sample) == 297
    for path in sample:
        rel = f"{path.parent.name}/{path.name}"
        expected = "validation" if rel in validation else "testing" if rel in testing else "training"
        assert which_set(str(path)) == expected, rel
    # every entry of the full lists too (13,633 files of the whole v0.01 archive)
    assert all(which_set(rel) == "validation" for rel in validation)
    assert all(which_set(rel) == "testing" for rel in testing)
    # and the index built with the hash rule equals the one built from the lists
    by_lists = build_index(SC_V1_SAMPLE, "all", split=SplitSettings("lists"))
    by_hash = build_index(SC_V1_SAMPLE, "all", split=SplitSettings("hash"))
    assert by_lists.split_method == "lists" and by_hash.split_method == "hash"
    for split in SPLITS:
        assert sorted(e.path for e in by_lists.splits[split]) == sorted(e.path for e in by_hash.splits[split])
    assert len(by_hash.splits["validation"]) == 44 and len(by_hash.splits["testing"]) == 48


def test_which_set_percentages_and_speaker_key():
    assert which_set("a/3cfc6b3a_nohash_2.wav") == which_set("other/3cfc6b3a_nohash_0.wav")
    assert which_set("x/3cfc6b3a_nohash_2.wav", 0.0, 0.0) == "training"
    assert which_set("x/3cfc6b3a_nohash_2.wav", 100.0, 0.0) == "validation"
    assert which_set("x/3cfc6b3a_nohash_2.wav", 0.0, 100.0) == "testing"


def test_layouts_are_detected():
    full = build_index(SC_V1_SAMPLE)
    test_set = build_index(SC_V2_TEST, split=SplitSettings("speaker"))
    folders = build_index(FSDD, "all")
    assert (full.layout, test_set.layout, folders.layout) == ("full", "test_set", "folders")
    assert full.split_method == "lists" and folders.split_method == "hash"
    assert full.noise_files == [] and full.silence_files == []
    assert len(test_set.silence_files) == 291 and all(
        p.parent.name == "_silence_" for p in test_set.silence_files
    )
    assert folders.labels == ["eight", "five", "four", "nine", "one", "seven", "six", "three", "two", "zero"]
    for index in (full, test_set, folders):
        assert list(index.splits) == ["training", "validation", "testing"]
        assert index.bad_files == []


def test_test_set_layout_is_taken_as_it_is(sc_v2_clips):
    index = build_index(SC_V2_TEST, "12", split=SplitSettings("speaker"))
    assert index.labels == LABELS_12
    totals = Counter()
    for split in SPLITS:
        totals.update(index.label_counts(split))
    assert dict(totals) == {label: len(paths) for label, paths in sc_v2_clips.items()}
    unknown = [e for s in SPLITS for e in index.splits[s] if e.label == 1]
    assert all(e.path.endswith(".wav.wav") and e.word not in LABELS_12 for e in unknown)
    silence = [e for s in SPLITS for e in index.splits[s] if e.label == 0]
    assert all(e.speaker == "" and e.word == "_silence_" and e.path for e in silence)
    # "35" in the test-set layout: every word, the _unknown_ clips labelled by their word prefix
    every = build_index(SC_V2_TEST, "35", split=SplitSettings("speaker"))
    assert "backward" in every.labels and "_unknown_" not in every.labels and "yes" in every.labels
    assert sum(len(v) for v in every.splits.values()) == sum(
        len(p) for k, p in sc_v2_clips.items() if k != "_silence_"
    )
    # "all": one class per label folder, _unknown_ and _silence_ included (the words inside _unknown_ stay there)
    folders = build_index(SC_V2_TEST, "all", split=SplitSettings("speaker"))
    assert folders.labels == ["_silence_", "_unknown_", *sorted(LABELS_12[2:])]
    assert sum(len(v) for v in folders.splits.values()) == sum(len(p) for p in sc_v2_clips.values())


def test_parse_clip_name():
    assert parse_clip_name("_unknown_", "backward_0c540988_nohash_0.wav.wav") == ("backward", "0c540988")
    assert parse_clip_name("_silence_", "1037.wav") == ("_silence_", "")
    assert parse_clip_name("yes", "0c540988_nohash_3.wav") == ("yes", "0c540988")
    assert parse_clip_name("hello", "take2.flac") == ("hello", "take2")


def test_hash_split_on_the_test_set_portion_puts_every_speaker_in_testing():
    index = build_index(SC_V2_TEST, split=SplitSettings("hash"))
    assert index.split_method == "hash"
    for split in ("training", "validation"):
        assert all(e.label == 0 for e in index.splits[split])  # only the speaker-less _silence_ clips
    assert len(index.speakers("testing")) == 161


def test_auto_split_of_the_test_set_layout_is_all_testing():
    index = build_index(SC_V2_TEST, split=SplitSettings("auto"))
    assert index.split_method == "test_set"
    assert not index.splits["training"] and not index.splits["validation"]
    assert len(index.splits["testing"]) == 3321  # the _silence_ clips included


def test_speaker_split_is_disjoint_seeded_and_near_the_percentages():
    index = build_index(SC_V2_TEST, split=SplitSettings("speaker", validation_percent=15, testing_percent=5, seed=3))
    sizes = {s: len(v) for s, v in index.splits.items()}
    total = sum(sizes.values())
    assert abs(sizes["validation"] / total - 0.15) < 0.03 and abs(sizes["testing"] / total - 0.05) < 0.03
    assert_speaker_disjoint(index)
    again = build_index(SC_V2_TEST, split=SplitSettings("speaker", validation_percent=15, testing_percent=5, seed=3))
    assert again.splits == index.splits
    other = build_index(SC_V2_TEST, split=SplitSettings("speaker", validation_percent=15, testing_percent=5, seed=4))
    assert other.speakers("validation") != index.speakers("validation")
    assert speaker_split({"a": 5, "b": 5}, 0, 0) == {"a": "training", "b": "training"}


@pytest.mark.parametrize("root", [SC_V1_SAMPLE, SC_V2_TEST, FSDD], ids=["full", "test_set", "folders"])
@pytest.mark.parametrize("split", ["hash", "speaker"])
def test_splits_are_speaker_disjoint_on_real_data(root, split):
    index = build_index(root, "all", split=SplitSettings(rule=split))
    assert_speaker_disjoint(index)
    assert sum(len(v) for v in index.splits.values()) > 200


def test_labels_12_sampling_follows_tensorflow():
    index = build_index(SC_V1_SAMPLE, "12")
    assert index.labels == LABELS_12
    all_index = build_index(SC_V1_SAMPLE, "all")
    assert len(all_index.labels) == 30 and all_index.labels == sorted(all_index.labels)
    for split in SPLITS:
        counts = index.label_counts(split)
        known = sum(counts[w] for w in LABELS_12[2:])
        assert counts["_silence_"] == math.ceil(known * 10 / 100)
        pool = sum(1 for e in all_index.splits[split] if all_index.labels[e.label] not in LABELS_12)
        assert counts["_unknown_"] == min(pool, math.ceil(known * 10 / 100))
        silence = [e for e in index.splits[split] if e.label == 0]
        assert all(e.path is None and e.speaker == "" and e.word == "_silence_" for e in silence)
        unknown = [e for e in index.splits[split] if e.label == 1]
        assert all(e.word not in LABELS_12 and Path(e.path).parent.name == e.word for e in unknown)
    assert build_index(SC_V1_SAMPLE, "12").splits == index.splits  # deterministic
    bigger = build_index(SC_V1_SAMPLE, "12", split=SplitSettings(silence_percent=50, unknown_percent=30, seed=1))
    counts = bigger.label_counts("training")
    known = sum(counts[w] for w in LABELS_12[2:])
    assert counts["_silence_"] == math.ceil(known * 0.5) and counts["_unknown_"] == math.ceil(known * 0.3)


def test_explicit_label_lists():
    index = build_index(FSDD, "one,two", split=SplitSettings("speaker"))
    assert index.labels == ["one", "two"]
    words = {e.word for s in SPLITS for e in index.splits[s]}
    assert words == {"one", "two"}
    with_extra = build_index(FSDD, ["_silence_", "one", "_unknown_"], split=SplitSettings("speaker"))
    assert with_extra.labels == ["_silence_", "one", "_unknown_"]
    counts = with_extra.label_counts("training")
    assert counts["_silence_"] == math.ceil(counts["one"] / 10) and counts["_unknown_"] == math.ceil(
        counts["one"] / 10
    )
    assert resolve_labels("12", LABELS_12[2:]) == LABELS_12
    assert resolve_labels(" yes , no ", ["yes", "no", "up"]) == ["yes", "no"]
    assert resolve_labels(35, ["b", "a", "_unknown_"]) == ["a", "b"]


def test_missing_word_and_bad_specs_are_clear_errors():
    with pytest.raises(DatasetError, match=r"fsdd.*'yes'"):
        build_index(FSDD, "12")
    with pytest.raises(DatasetError, match="banana"):
        build_index(SC_V1_SAMPLE, "yes,banana")
    with pytest.raises(DatasetError, match="blanks"):
        build_index(SC_V1_SAMPLE, "yes,,no")
    with pytest.raises(DatasetError, match="repeated"):
        build_index(SC_V1_SAMPLE, ["yes", "yes"])
    with pytest.raises(DatasetError, match="validation_list"):
        build_index(FSDD, "all", split=SplitSettings("lists"))
    with pytest.raises(ValueError, match="split must be"):
        build_index(FSDD, "all", split=SplitSettings("random"))


def test_folders_that_fit_no_layout(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        build_index(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty: the folder is empty; expected one subfolder per label") as info:
        build_index(tmp_path / "empty")
    assert "no subfolders with no audio" not in str(info.value)
    flat = tmp_path / "flat"
    link_or_copy(next(SC_V2_TEST.glob("yes/*.wav")), flat / "a.wav")
    with pytest.raises(DatasetError, match=r"flat: holds 1 audio file\(s\) directly and no label subfolders"):
        build_index(flat)
    (tmp_path / "noaudio" / "docs").mkdir(parents=True)
    (tmp_path / "noaudio" / "docs" / "x.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"noaudio: its subfolders \(docs\) hold 1 non-audio file"):
        build_index(tmp_path / "noaudio")
    with pytest.raises(DatasetError, match="found a file"):
        build_index(flat / "a.wav")


def test_a_folder_of_broken_audio_names_every_file_and_gives_no_split_advice(tmp_path):
    for word in ("yes", "no"):
        (tmp_path / "junk" / word).mkdir(parents=True)
        for n in range(3):
            (tmp_path / "junk" / word / f"s{n}_nohash_0.wav").write_text("these are notes, not audio\n")
    with pytest.raises(DatasetError) as info:
        build_index(tmp_path / "junk")
    message = str(info.value)
    assert "none of its 6 audio file(s) is readable" in message and "s0_nohash_0.wav: not a readable audio file" in message
    assert "split" not in message


def test_truncated_and_broken_files_are_decided_at_scan_time(tmp_path):
    """One rule, applied once: a file the scan rejects is in no split and is listed with its reason."""
    good = next((SC_V2_TEST / "yes").glob("*.wav"))
    expected = write_bad_files(tmp_path / "data" / "yes", good)
    link_or_copy(good, tmp_path / "data" / "no" / good.name)
    index = build_index(tmp_path / "data", "yes,no", split=SplitSettings("speaker"))
    listed = {Path(e.path).name for s in SPLITS for e in index.splits[s]}
    bad = {Path(path).name: reason for path, reason in index.bad_files}
    assert listed == {name for name, verdict in expected.items() if verdict == "ok"} | {good.name}
    assert set(bad) == {name for name, verdict in expected.items() if verdict == "bad"}
    assert bad["s8_nohash_0.wav"].startswith("truncated: its header declares 16000 samples (1.000 s), the file holds")
    assert "no samples" in bad["s9_nohash_0.wav"] and "not a readable audio file" in bad["s10_nohash_0.wav"]


def test_auto_labels_are_the_folders_own_with_rejection_classes(tmp_path, sc_v2_clips):
    """A custom-keyword folder (speech synth's layout) gives its keywords + _unknown_ + _silence_, not one class
    per negative word; Speech Commands data gives the 12 classes."""
    from speech.data.labels import rejection_warning

    mine = tmp_path / "mine"
    for label, source in (("lights-on", "yes"), ("music", "no"), ("_unknown_", "_unknown_"), ("_silence_", "_silence_")):
        for path in sc_v2_clips[source][:20]:
            link_or_copy(path, mine / label / path.name)
    for spec in ("auto", "all"):
        assert build_index(mine, spec, split=SplitSettings("speaker")).labels == ["_silence_", "_unknown_", "lights-on", "music"]
    assert build_index(mine).labels == ["_silence_", "_unknown_", "lights-on", "music"]  # the default is auto
    assert "backward" in build_index(mine, "35", split=SplitSettings("speaker")).labels
    assert build_index(SC_V2_TEST, split=SplitSettings("speaker")).labels == LABELS_12
    assert build_index(SC_V1_SAMPLE).labels == LABELS_12
    digits = build_index(FSDD, split=SplitSettings("speaker"))  # no _unknown_ folder: keywords + sampled _silence_ only
    assert digits.labels == ["_silence_", *sorted(digits.labels[1:])] and len(digits.labels) == 11
    assert rejection_warning(LABELS_12) is None
    assert rejection_warning(build_index(mine).labels) is None
    warning = rejection_warning(digits.labels)
    assert warning and "no _unknown_ class" in warning and "any other word it hears" in warning
    assert "_silence_" in rejection_warning(["yes", "no"])


def test_generated_full_layout_with_noise_and_without_lists(tmp_path, sc_v2_clips):
    root = full_layout_tree(tmp_path / "sc", sc_v2_clips, per_word=6)
    (root / "yes" / "00000000_nohash_0.wav").write_bytes(b"")  # an empty file: skipped, counted
    index = build_index(root, "12")
    assert index.layout == "full" and index.split_method == "hash"
    assert [p.name for p in index.noise_files] == sorted(
        p.name for p in (root / "_background_noise_").glob("*.wav")
    )
    assert [Path(p).name for p, _ in index.bad_files] == ["00000000_nohash_0.wav"]
    assert "empty" in index.bad_files[0][1]
    for split in SPLITS:
        for example in index.splits[split]:
            if example.path:
                assert which_set(example.path) == split
    assert "_background_noise_" not in {e.word for s in SPLITS for e in index.splits[s]}

    listed = full_layout_tree(tmp_path / "listed", sc_v2_clips, per_word=6, lists=True)
    by_lists = build_index(listed, "all")
    assert by_lists.split_method == "lists"
    validation = set((listed / "validation_list.txt").read_text().split())
    assert {
        f"{Path(e.path).parent.name}/{Path(e.path).name}" for e in by_lists.splits["validation"]
    } == validation
    assert_speaker_disjoint(by_lists)


def test_the_scan_reads_headers_and_decodes_nothing(tmp_path, monkeypatch):
    """What keeps a scan of 105k files to seconds (scripts/bench_data.py measures it): no audio is decoded."""
    import soundfile

    def no_decoding(*args, **kwargs):
        raise AssertionError("the scan decoded audio")

    root = tiny_wav_tree(tmp_path / "tree", files=6000, words=30, speakers=400)
    monkeypatch.setattr(soundfile, "read", no_decoding)
    monkeypatch.setattr(soundfile, "SoundFile", no_decoding)
    index = build_index(root, "all")
    assert sum(len(v) for v in index.splits.values()) == 6000
    assert_speaker_disjoint(index)


@pytest.mark.slow  # by default: the 6,000-file scan above (test_the_scan_reads_headers_and_decodes_nothing)
def test_scan_and_split_of_105k_files(tmp_path):
    root = tiny_wav_tree(tmp_path / "big", files=105_829)
    index = build_index(root, ["_silence_", "_unknown_", "word00", "word01"])
    assert_speaker_disjoint(index)
    assert sum(index.label_counts("training").values()) > 5000


def test_split_settings_defaults_live_in_one_place_and_the_training_options_use_them():
    import inspect

    from speech.data.datamodule import SpeechCommandsDataModule

    assert SplitSettings() == SplitSettings("auto", 10.0, 10.0, 10.0, 10.0, DEFAULT_SEED)
    defaults = inspect.signature(SpeechCommandsDataModule).parameters
    assert SplitSettings(defaults["split_rule"].default, defaults["validation_percent"].default,
                         defaults["testing_percent"].default, defaults["silence_percent"].default,
                         defaults["unknown_percent"].default, defaults["split_seed"].default) == SplitSettings()
    assert SplitSettings("hash", 5, 0, seed="3") == SplitSettings("hash", 5.0, 0.0, seed=3)  # one type per field
    assert SplitSettings("hash").updated(seed=None, testing_percent=0) == SplitSettings("hash", testing_percent=0.0)
    with pytest.raises(SettingError, match="must not exceed 100"):
        SplitSettings(validation_percent=60, testing_percent=50).check()


def test_a_stored_data_record_maps_to_split_settings_and_is_written_back_the_same():
    from speech.data.record import DataRecord, choose_split

    stored = {"root": "/data/sc", "layout": "full", "labels": "12", "split_rule": "speaker", "split_method": "speaker",
              "validation_percent": 20.0, "testing_percent": 0.0, "silence_percent": 10.0, "unknown_percent": 5.0,
              "seed": 7, "training_speakers": ["a"], "training_files": [], "speakers_hash": "", "clips": {},
              "speakers": {}, "extra_roots": [], "running_speech": None, "version": 1}  # a record as checkpoints hold it
    record = DataRecord.from_dict(stored)
    assert record.split == SplitSettings("speaker", 20.0, 0.0, 10.0, 5.0, 7)
    # written back the same, with the fields records gained since (issue #34) at their defaults
    assert record.to_dict() == stored | {"fingerprint": "", "training_speakers_percent": 100.0, "sources": []}
    older = {key: value for key, value in stored.items() if key not in ("silence_percent", "unknown_percent")}
    assert DataRecord.from_dict(older).split == SplitSettings("speaker", 20.0, 0.0, seed=7)  # missing: the defaults
    # the record's settings rebuild its folder's split; what the user sets wins; another folder gets the defaults
    own = choose_split(record, "/data/sc", seed=3)
    assert own.settings == SplitSettings("speaker", 20.0, 0.0, 10.0, 5.0, 3) and own.source == "model record"
    assert own.partition == "validation"  # the record has no test clips
    assert own.describe() == {"partition": "validation", "source": "model record", "split": "speaker",
                              "validation_percent": 20.0, "testing_percent": 0.0, "silence_percent": 10.0,
                              "unknown_percent": 5.0, "seed": 3}
    other = choose_split(record, "/elsewhere", rule="hash")
    assert (other.settings, other.partition, other.source) == (SplitSettings("hash"), "test", "defaults")


def test_training_speakers_percent_keeps_a_seeded_share_of_whole_training_speakers():
    from speech.data.datamodule import SpeechCommandsDataModule

    def module(percent: float) -> SpeechCommandsDataModule:
        return SpeechCommandsDataModule(str(SC_V2_TEST), labels="12", split_rule="speaker", validation_percent=10,
                                        testing_percent=20, training_speakers_percent=percent)

    full, half = module(100), module(50)
    speakers = {ex.speaker for ex in full.examples("training") if ex.speaker}
    kept = {ex.speaker for ex in half.examples("training") if ex.speaker}
    assert kept < speakers and len(kept) == round(len(speakers) / 2)
    # whole speakers: every clip of a kept speaker stays; the silence examples stay; the held-out parts do not move
    assert [ex for ex in full.examples("training") if ex.speaker in kept or not ex.speaker] == half.examples("training")
    for split in ("validation", "testing"):
        assert half.examples(split) == full.examples(split)
    assert half.record().training_speakers == sorted(kept)
    assert {ex.speaker for ex in module(50).examples("training")} - {""} == kept  # seeded
    with pytest.raises(SettingError, match="training speakers"):
        module(0)
