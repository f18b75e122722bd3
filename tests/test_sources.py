"""Several real sources in one run (issue #34): an extra folder split by speaker, recorded in the model, its test
part scored by default, a moved folder recognised by what it holds, speakers in two folders refused, a folder that
holds some of the model's labels evaluated."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import LABELS_12, REPO, SHARED_DATA, SMALL_MODEL, linked_tree

from speech.cli import main as speech_main
from speech.data import DatasetError
from speech.data.datamodule import SpeechCommandsDataModule
from speech.data.record import DataRecord, check_held_out, choose_split
from speech.data.sources import extra_split, read_extra_source
from speech.evaluation.eval_set import load_eval_set

FOUR_WORDS = SHARED_DATA / "sc-v2-train-4words"
WORDS = ("yes", "no", "up", "down")


def four_word_tree(root: Path, speakers: int) -> Path:
    """The full-dataset layout of sc-v2-train-4words (OGG Opus) with every clip of its first ``speakers`` speakers
    (symlinks)."""
    chosen = sorted({p.name.split("_nohash_")[0] for p in (FOUR_WORDS / "yes").glob("*.ogg")})[:speakers]
    for word in WORDS:
        (root / word).mkdir(parents=True)
        for speaker in chosen:
            for path in (FOUR_WORDS / word).glob(f"{speaker}_nohash_*.ogg"):
                (root / word / path.name).symlink_to(path)
    return root


@pytest.fixture(scope="module")
def main_tree(tmp_path_factory) -> Path:
    return linked_tree(tmp_path_factory.mktemp("main"), 16)


@pytest.fixture(scope="module")
def extra_tree(tmp_path_factory) -> Path:
    return four_word_tree(tmp_path_factory.mktemp("four") / "sc-v2-train-4words", 60)


def module(main_tree, extra_tree, cache, **kwargs) -> SpeechCommandsDataModule:
    settings = dict(labels="12", split_rule="speaker", validation_percent=20.0, testing_percent=20.0,
                    extra_roots=[str(extra_tree)], extra_validation_percent=10.0, extra_testing_percent=30.0,
                    cache_dir=str(cache), batch_size=16, num_workers=0)
    return SpeechCommandsDataModule(str(main_tree), **(settings | kwargs))


def speakers(examples) -> set[str]:
    return {ex.speaker for ex in examples if ex.speaker}


def test_extra_folder_is_split_by_speaker_and_its_parts_join_the_runs(main_tree, extra_tree, tmp_path):
    dm = module(main_tree, extra_tree, tmp_path)
    extra = dm.extras[0]
    parts = {name: speakers(extra.parts[name]) for name in ("training", "validation", "testing")}
    assert all(parts.values())
    assert not parts["training"] & (parts["validation"] | parts["testing"])
    assert not parts["validation"] & parts["testing"]
    # its held-out clips are scored by the run (validation) and kept for the test, its training clips trained on
    assert speakers(dm.examples("validation")) >= parts["validation"]
    assert speakers(dm.examples("testing")) >= parts["testing"]
    assert speakers(dm.examples("training")) >= parts["training"]
    assert not speakers(dm.examples("training")) & (parts["validation"] | parts["testing"])
    # the four words are the model's classes; nothing else of the folder
    assert {LABELS_12[ex.label] for ex in dm.examples("training") if ex.path and "4words" in ex.path} == set(WORDS)
    # the test part is about 30 % of the clips, whole speakers: the split's own rule, seeded by split_seed
    share = len(extra.parts["testing"]) / sum(len(p) for p in extra.parts.values())
    assert 0.25 < share < 0.35
    assert module(main_tree, extra_tree, tmp_path).extras[0].parts == extra.parts
    assert module(main_tree, extra_tree, tmp_path, split_seed=7).extras[0].parts != extra.parts

    record = DataRecord.from_dict(dm.record().to_dict())  # as the checkpoint stores it
    (source,) = record.sources
    assert Path(source.root) == extra_tree.resolve()
    assert source.clips == {name: len(extra.parts[name]) for name in ("training", "validation", "testing")}
    assert set(record.training_speakers) >= parts["training"]
    assert not set(record.training_speakers) & parts["testing"]
    # evaluate's choice for the extra folder: its own split, its test part by default
    choice = choose_split(record, extra_tree)
    assert (choice.partition, choice.source, choice.settings) == ("test", "model record", extra.settings)


def test_a_moved_folder_is_known_by_its_clip_names(main_tree, extra_tree, tmp_path):
    record = DataRecord.from_dict(module(main_tree, extra_tree, tmp_path).record().to_dict())
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(extra_tree, moved, symlinks=True)
    choice = choose_split(record, moved)
    assert (choice.partition, choice.source) == ("test", "model record")
    clips = load_eval_set(moved, LABELS_12, split="test", settings=choice.settings, cache_dir=tmp_path / "c")
    assert check_held_out(record, clips.examples, clips.root) == []
    moved_main = tmp_path / "main-copy"
    shutil.copytree(main_tree, moved_main, symlinks=True)
    assert choose_split(record, moved_main).settings == record.split
    # a folder with one clip less is another folder: the defaults (and the speaker check still guards it)
    next((moved / "yes").iterdir()).unlink()
    assert choose_split(record, moved).source == "defaults"


def test_a_speaker_trained_in_one_folder_and_held_out_in_another_is_refused(main_tree, tmp_path, caplog):
    # the main folder's validation speakers, said again in an extra folder that trains on every clip
    dm = SpeechCommandsDataModule(str(main_tree), labels="12", split_rule="speaker", validation_percent=20.0,
                                  testing_percent=20.0, cache_dir=str(tmp_path))
    held = sorted(speakers(dm.examples("validation")))[:2]
    overlap = tmp_path / "overlap"
    (overlap / "yes").mkdir(parents=True)
    for path in (main_tree / "yes").iterdir():
        if path.name.split("_nohash_")[0] in held:
            (overlap / "yes" / path.name).symlink_to(path.resolve())
    clash = SpeechCommandsDataModule(str(main_tree), labels="12", split_rule="speaker", validation_percent=20.0,
                                     testing_percent=20.0, cache_dir=str(tmp_path), extra_roots=[str(overlap)])
    with pytest.raises(DatasetError, match=f"validation part are trained on in .*overlap.*{held[0]}"):
        clash.examples("training")


def test_words_the_model_lacks_become_unknown_or_are_skipped(tmp_path, caplog):
    folder = tmp_path / "more"
    for word, source in (("yes", FOUR_WORDS / "yes"), ("bed", SHARED_DATA / "sc-v1-sample" / "bed")):
        (folder / word).mkdir(parents=True)
        for path in sorted(source.iterdir())[:4]:
            (folder / word / path.name).symlink_to(path)
    split = extra_split(0.0, 0.0, 1)
    with caplog.at_level(logging.WARNING):
        mapped = read_extra_source(folder, LABELS_12, split)
    assert "['bed'] are not among the model's labels: _unknown_ clips" in caplog.text
    assert sorted(LABELS_12[ex.label] for ex in mapped.parts["training"]) == ["_unknown_"] * 4 + ["yes"] * 4
    skipped = read_extra_source(folder, LABELS_12, split, other_words="skip")
    assert [LABELS_12[ex.label] for ex in skipped.parts["training"]] == ["yes"] * 4
    only_bed = tmp_path / "only-bed"
    only_bed.mkdir()
    (only_bed / "bed").symlink_to(folder / "bed")
    with pytest.raises(DatasetError, match=r"none of its label folders \['bed'\] is one of the model's labels"):
        read_extra_source(only_bed, LABELS_12, split, other_words="skip")


def test_train_with_an_extra_folder_then_evaluate_its_test_part(main_tree, extra_tree, tmp_path, capsys):
    """A real run: the checkpoint's record names the extra folder; `speech evaluate` on that folder scores its test
    part by default (four of the model's twelve labels), refuses its training part, and on a copy of it elsewhere
    gives the same figures."""
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    code = speech_main([
        "train", "--threads", "1", "--config", str(REPO / "configs" / "cpu-small.yaml"), "--data.root", str(main_tree),
        "--data.labels", "12", "--data.extra_roots", f"[{extra_tree}]", "--data.extra_testing_percent", "30",
        "--data.class_balance", "1", "--data.running_speech", "null", "--data.cache_dir", str(cache),
        "--data.batch_size", "32", "--trainer.default_root_dir", str(runs), "--trainer.max_epochs", "1",
        "--trainer.enable_progress_bar", "false", "--run_name", "x", *SMALL_MODEL])
    assert code == 0, capsys.readouterr().err[-2000:]
    ckpt = next((runs / "x" / "version_0" / "checkpoints").glob("best-*.ckpt"))
    capsys.readouterr()
    reports = []
    for folder in (extra_tree, shutil.copytree(extra_tree, tmp_path / "copy", symlinks=True)):
        out = tmp_path / f"{folder.name}.json"
        code = speech_main(["evaluate", "--threads", "1", str(ckpt), "--data", str(folder), "--json", str(out),
                            "--cache-dir", str(cache)])
        text = capsys.readouterr().out
        assert code == 0, text
        assert "scored the test split" in text and "from the model record" in text
        assert "no clips of _silence_, _unknown_, left, right, on, off, stop, go" in text
        reports.append(json.loads(out.read_text()))
    first, second = reports
    assert first["data"]["labels_without_clips"] == ["_silence_", "_unknown_", "left", "right", "on", "off", "stop",
                                                     "go"]
    assert {c["label"]: c["support"] for c in first["per_class"] if c["support"]} == {
        word: first["data"]["clips_per_label"][word] for word in WORDS}
    present = [c["f1"] for c in first["per_class"] if c["support"]]
    assert first["macro_f1_present"] == pytest.approx(np.mean(present))  # over the labels present
    assert first["macro_f1"] < first["macro_f1_present"]  # torchmetrics': a label predicted but absent counts 0
    assert (first["accuracy"], first["clips"]) == (second["accuracy"], second["clips"])
    code = speech_main(["evaluate", "--threads", "1", str(ckpt), "--data", str(extra_tree), "--split", "train",
                        "--cache-dir", str(cache)])
    assert code == 2 and "were trained on" in capsys.readouterr().err

    # calibrate on the validation speakers of both folders: the thresholds rest on the words of both, the model
    # records both folders' speakers, and stream-test knows them in either folder
    calibrated = tmp_path / "calibrated.ckpt"
    code = speech_main(["calibrate", "--threads", "1", str(ckpt), "--data", str(main_tree), "--data", str(extra_tree),
                        "--minutes", "0.5", "--noise-minutes", "0.25", "--target-fa", "2", "--out", str(calibrated),
                        "--report", str(tmp_path / "cal"), "--json", str(tmp_path / "cal.json")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    on = json.loads((tmp_path / "cal.json").read_text())["calibrated_on"]
    dm = module(main_tree, extra_tree, tmp_path / "dm-cache", validation_percent=10.0, testing_percent=20.0,
                extra_validation_percent=5.0, extra_testing_percent=30.0,  # the split it trained with
                unknown_percent=100.0)  # the streams take every _unknown_ clip
    assert set(on["speaker_ids"]) == speakers(ex for ex in dm.examples("validation") if "4words" not in str(ex.path))
    [also] = on["also"]
    assert also["partition"] == "validation" and Path(also["root"]) == extra_tree.resolve()
    assert set(also["speaker_ids"]) == speakers(dm.extras[0].parts["validation"]) and also["speakers"] > 0
    assert f"and {also['speakers']} held-out speakers (validation partition of" in printed
    for split, shared in (("test", 0), ("validation", also["speakers"])):
        out = tmp_path / f"st-{split}.json"
        assert speech_main(["stream-test", "--threads", "1", str(calibrated), "--data", str(extra_tree), "--split",
                            split, "--minutes", "0.5", "--noise-minutes", "0.25", "--out", str(tmp_path / split),
                            "--json", str(out)]) == 0
        assert json.loads(out.read_text())["calibration_speakers_in_streams"] == shared


def test_evaluate_a_folder_of_four_of_the_models_words(tiny_checkpoint, extra_tree, tmp_path, capsys):
    """A model that never saw the folder (no record of it): `--split all` scores every clip over the model's twelve
    labels; the report names the labels without clips."""
    out = tmp_path / "report"
    code = speech_main(["evaluate", "--threads", "1", str(tiny_checkpoint), "--data", str(extra_tree), "--split",
                        "all", "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    model = report["models"][0] if "models" in report else report
    clips = sum(1 for word in WORDS for _ in (extra_tree / word).iterdir())
    generated = model["data"]["generated_silence_clips"]  # TensorFlow's 10 % of all-zero _silence_ examples
    assert generated == int(np.ceil(clips * 0.1))
    assert model["clips"] == clips + generated
    assert f"{generated} of them generated silence" in capsys.readouterr().out
    markdown = (out / "report.md").read_text()
    assert "0 (no clips)" in markdown and "no clips of `_unknown_`, `left`" in markdown


def test_a_moved_running_speech_folder_keeps_its_recorded_reader_split(tmp_path):
    """The readers a model trained on stay refused, and the calibration and test readers stay what they were,
    when the running-speech folder is read from another place (known by its readers, issue #36)."""
    from speech.data.record import SpeakerLeakError
    from speech.data.running_windows import RunningSpeechSource
    from speech.evaluation.streams.running import running_source

    mini = SHARED_DATA / "librispeech-mini"
    described = RunningSpeechSource(mini, windows=10, seed=3).describe(LABELS_12)  # seed 3: not the default split
    metadata = {"data": {"root": "/elsewhere", "layout": "test_set", "labels": "12", "split_rule": "speaker",
                         "split_method": "speaker", "running_speech": described}}
    moved = tmp_path / "disk" / "librispeech-mini"
    shutil.copytree(mini, moved, copy_function=os.symlink)  # real folders elsewhere, the files linked
    for root in (mini, moved):
        test = running_source(root, metadata, "test")
        assert test.split_from == "model record"
        assert sorted(test.readers) == sorted(r for r, part in described["reader_split"]["parts"].items()
                                              if part == "test")
        with pytest.raises(SpeakerLeakError, match="were trained on"):
            running_source(root, metadata, "all")


def test_an_extra_folder_mixing_rates_lengths_and_codecs_is_read_as_it_is(main_tree, tmp_path):
    """Opus at 16 kHz (0.3-1 s), 8 kHz WAV of other lengths and 16 kHz WAV in one extra folder: every clip is
    decoded to the model's 16 kHz window, none is refused."""
    mixed = tmp_path / "mixed"
    (mixed / "yes").mkdir(parents=True)
    sources = [*sorted((FOUR_WORDS / "yes").glob("*.ogg"))[:3], *sorted((SHARED_DATA / "fsdd" / "one").glob("*.wav"))[:3],
               *sorted((main_tree / "yes").iterdir())[:2]]
    for i, path in enumerate(sources):
        (mixed / "yes" / f"spk{i}_nohash_{path.name}").symlink_to(path.resolve())
    dm = SpeechCommandsDataModule(str(main_tree), labels="12", split_rule="speaker", validation_percent=20.0,
                                  testing_percent=20.0, extra_roots=[str(mixed)], cache_dir=str(tmp_path / "c"),
                                  window_samples=24_000)
    dm.progress = False
    dm.prepare_data()
    dm.setup("fit")
    training = dm.data["training"]
    added = [i for i, ex in enumerate(training.examples) if ex.path and "mixed" in ex.path]
    assert len(added) == len(sources) and not training.bad_files
    assert training.waves.shape[1] == 24_000
    assert all(np.abs(np.asarray(training.waves[i])).max() > 100 for i in added)  # real speech in every row
