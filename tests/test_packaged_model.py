"""The model that comes with speech (issue #37): ``speech/models/commands.onnx`` and its card.

It loads by name and by default on the base install, its card's figures come from speakers and readers it never
trained on and are reproduced by the commands, ``speech live`` with no model hears real keyword clips, a wheel
carries it, and a missing or damaged packaged model, or a name that is none, is one line.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SC_V2_TEST, SHARED_DATA, script_module

import speech
from speech.cli import main
from speech.models import DEFAULT_MODEL, PackagedModelError, UnknownModelError, packaged_path, read_card

MODEL = packaged_path(DEFAULT_MODEL)
CARD = read_card()
FOUR_WORDS = SHARED_DATA / "sc-v2-train-4words"
RUNNING = SHARED_DATA / "librispeech-mini"
BASE = [sys.executable, str(REPO / "tests" / "base_install.py")]
KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def run(argv: list[str], cwd: Path = REPO, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess, code: int, *parts: str) -> str:
    err = result.stderr.strip()
    assert result.returncode == code, result.stderr
    assert "\n" not in err and "Traceback" not in err, err
    for part in parts:
        assert part in err, err
    return err


def events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def data_record():
    from speech.data.record import DataRecord
    from speech.model.model_file import read_metadata

    return DataRecord.from_dict(read_metadata(MODEL)["data"])


def held_out_part(data_record, root: Path) -> list:
    """The clips ``speech evaluate`` scores by default: the test part of ``root`` under the model's recorded
    split, indexed with its labels (as speech.evaluation.eval_set does)."""
    from speech.data import build_index
    from speech.data.record import choose_split
    from speech.evaluation.eval_set import partition_examples

    choice = choose_split(data_record, root)
    assert choice.source == "model record" and choice.partition == "test"
    index = build_index(root, labels=speech.load().labels, split=choice.settings, allow_missing_labels=True)
    return partition_examples(index, "test")


def test_the_packaged_file_is_a_calibrated_model_with_its_record_and_under_3_mb():
    from speech.model.model_file import read_metadata

    meta = read_metadata(MODEL)
    assert MODEL.stat().st_size <= 3_000_000
    assert meta["labels"] == ["_silence_", "_unknown_", *KEYWORDS]
    assert set(meta["detection"]["thresholds"]) == set(KEYWORDS)
    assert meta["detection"]["thresholds"] == CARD["thresholds"]
    assert meta["data"]["training_speakers"] and meta["data"]["running_speech"]["training_readers"]
    assert CARD["file"]["bytes"] == MODEL.stat().st_size
    assert CARD["file"]["sha256"] == hashlib.sha256(MODEL.read_bytes()).hexdigest()  # the card is of this file


def test_the_packaged_model_loads_by_default_and_by_name_on_the_base_install(sc_v2_clips):
    """No torch: speech.load() and speech.load("commands") give the packaged model, which names a real clip."""
    clip = sc_v2_clips["yes"][0]
    code = (
        "import json, sys, speech\n"
        "a, b = speech.load(), speech.load('commands')\n"
        f"p = a.predict({str(clip)!r})\n"
        "print(json.dumps({'paths': [str(a.path), str(b.path)], 'names': [a.name, b.name], 'repr': repr(a),\n"
        "  'top': max(p, key=p.get), 'thresholds': a.metadata['detection']['thresholds'],\n"
        "  'torch': [m for m in ('torch', 'lightning') if sys.modules.get(m)]}))\n"
    )
    result = run([*BASE, "-c", code])
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["torch"] == []
    assert got["paths"] == [str(MODEL)] * 2 and got["names"] == ["commands"] * 2
    assert got["repr"] == "Model('commands', 12 labels)"
    assert got["thresholds"] == CARD["thresholds"]
    assert got["top"] == "yes"


def test_its_training_speakers_and_readers_are_disjoint_from_the_test_parts_its_card_reports(data_record):
    """The card's clip and stream figures are of test parts: rebuilt from the record, no clip of them is of a
    training speaker (or a trained speakerless file), they match the card's counts, and the running speech of the
    card is of readers neither trained on nor used to calibrate."""
    from speech.data.record import relative_name

    trained = set(data_record.training_speakers)
    assert len(trained) == CARD["data"]["training_speakers"] > 1000
    for root in (SC_V2_TEST, FOUR_WORDS):
        clips = held_out_part(data_record, root)
        speakers = {ex.speaker for ex in clips if ex.speaker}
        figures = CARD["figures"]["clip_accuracy"][root.name]
        assert (len(clips), len(speakers)) == (figures["clips"], figures["speakers"])
        assert speakers and not speakers & trained
        files = {relative_name(ex.path, root) for ex in clips if ex.path and not ex.speaker}
        assert not files & set(data_record.training_files)
        stream = CARD["figures"]["streams"][root.name]
        assert stream["speakers"] == len(speakers)
    assert {relative_name(ex.path, SC_V2_TEST) for ex in held_out_part(data_record, SC_V2_TEST) if not ex.speaker}  # silence
    # the thresholds were fitted on other speakers and readers
    calibrated_on = speech.load().metadata["detection"]["calibrated_on"]
    main_test = {ex.speaker for ex in held_out_part(data_record, SC_V2_TEST) if ex.speaker}
    assert calibrated_on["partition"] == "validation" and len(calibrated_on["speaker_ids"]) > 10
    assert not set(calibrated_on["speaker_ids"]) & (main_test | trained)
    parts = data_record.running_speech["reader_split"]["parts"]
    test_readers = CARD["figures"]["streams"]["sc-v2-test-fit"]["running_speech"]["readers"]
    assert sorted(test_readers) == sorted(r for r, p in parts.items() if p == "test") and len(test_readers) >= 5
    calibration_readers = calibrated_on["running_speech"]["readers"]
    assert calibration_readers and not set(test_readers) & set(calibration_readers)
    assert not set(test_readers) & data_record.training_readers()
    readers_on_disk = {p.name for p in RUNNING.iterdir() if p.is_dir()}
    assert set(test_readers) <= readers_on_disk


def test_evaluate_commands_reproduces_the_cards_clip_accuracy_exactly(tmp_path, capsys):
    """``speech evaluate commands`` (the name, no path) on the folder it trained on scores its test part, split
    from its record, and gives the card's accuracy to the last digit."""
    out = tmp_path / "eval.json"
    assert main(["evaluate", "commands", "--data", str(SC_V2_TEST), "--json", str(out), "--threads", "1",
                 "--latency-clips", "0"]) == 0
    capsys.readouterr()
    report = json.loads(out.read_text())
    figures = CARD["figures"]["clip_accuracy"]["sc-v2-test-fit"]
    assert report["path"] == str(MODEL) and report["name"] == "commands"
    assert report["data"]["split"] == "test" and report["data"]["split_settings"]["source"] == "model record"
    assert report["data"]["clips_of_training_speakers"] == 0
    assert report["data"]["clips"] == figures["clips"] and report["data"]["clips_per_label"] == figures["clips_per_label"]
    assert report["accuracy"] == figures["accuracy"]


@pytest.mark.slow  # by default: the same for sc-v2-test-fit (test_evaluate_commands_reproduces_the_cards_clip_accuracy_exactly)
def test_evaluate_commands_on_the_four_words_reproduces_the_cards_accuracy(tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "commands", "--data", str(FOUR_WORDS), "--json", str(out), "--threads", "1",
                 "--latency-clips", "0"]) == 0
    capsys.readouterr()
    report = json.loads(out.read_text())
    figures = CARD["figures"]["clip_accuracy"]["sc-v2-train-4words"]
    assert report["data"]["split"] == "test" and report["data"]["clips_of_training_speakers"] == 0
    assert (report["data"]["clips"], report["accuracy"]) == (figures["clips"], figures["accuracy"])


@pytest.fixture(scope="module")
def test_speaker_words(data_record, tmp_path_factory) -> tuple[Path, list[tuple[str, float]]]:
    """A recording of 20 real keyword clips of test-part speakers (the first two clips of each keyword, in
    file order), 1 s of silence between them: the file and each word's (label, end time in s)."""
    from speech.audio.io import load_audio, write_wav

    clips = [ex for ex in held_out_part(data_record, SC_V2_TEST) if ex.word in KEYWORDS and ex.path]
    chosen = [p for word in KEYWORDS for p in sorted(ex.path for ex in clips if ex.word == word)[:2]]
    parts, words, t = [np.zeros(16000, np.float32)], [], 1.0
    for path in chosen:
        wave = load_audio(path)
        parts += [wave, np.zeros(16000, np.float32)]
        t += wave.size / 16000
        words.append((Path(path).parent.name, t))
        t += 1.0
    path = tmp_path_factory.mktemp("packaged") / "test-speakers.wav"
    write_wav(path, np.concatenate(parts))
    return path, words


def test_live_with_no_model_detects_real_keyword_clips_of_test_speakers(test_speaker_words):
    """``speech live --wav CLIP`` with no model argument, on the base install: the packaged model, named in the
    banner, with its calibrated thresholds; it catches real keywords of speakers it never trained on, and names
    no wrong word."""
    wav, words = test_speaker_words
    result = run([*BASE, "live", "--wav", str(wav), "--json"])
    assert result.returncode == 0, result.stderr
    assert "speech live: packaged model 'commands';" in result.stderr
    assert "thresholds: calibrated per keyword" in result.stderr
    found = events(result.stdout)
    caught, wrong = 0, 0
    for label, end in words:  # an event of a word comes after its end, before the next word starts
        near = [e["label"] for e in found if end - 0.3 <= e["time"] <= end + 1.0]
        caught += label in near
        wrong += any(x != label for x in near)
    assert len(found) <= len(words)
    assert caught >= 16 and wrong <= 2, (caught, wrong, found)  # the candidate: 19 caught, 1 wrong (off as up)
    # one clip on its own, as the goal says it: a real speaker's keyword, detected
    from speech.audio.io import load_audio, write_wav

    single = wav.with_name("one.wav")
    write_wav(single, load_audio(wav, samples=None)[16000:16000 + int(words[0][1] * 16000)])
    result = run([*BASE, "live", "--wav", str(single), "--json"])
    assert result.returncode == 0 and [e["label"] for e in events(result.stdout)] == [words[0][0]], result.stdout


def test_live_and_stream_report_only_the_keywords_asked_for(test_speaker_words):
    """``speech live --keywords stop,go`` (and ``Model.stream(keywords=...)``): the same detections of stop and go
    as without it, and none of the other keywords, which are still heard (a word that wins for "no" is not given
    to "go"); a keyword the model lacks is one line, exit 2, naming the model's keywords."""
    from speech.audio.io import load_audio

    wav, words = test_speaker_words
    every = run([*BASE, "live", "--wav", str(wav), "--json"])
    some = run([*BASE, "live", "--wav", str(wav), "--json", "--keywords", "stop,go"])
    assert every.returncode == some.returncode == 0, some.stderr
    assert "listening for every keyword" in every.stderr and "listening for stop, go" in some.stderr
    all_events, listed = events(every.stdout), events(some.stdout)
    assert {e["label"] for e in all_events} - {"stop", "go"}  # the recording makes other keywords fire too
    assert listed == [e for e in all_events if e["label"] in ("stop", "go")]
    caught = sum(any(e["label"] == label and end - 0.3 <= e["time"] <= end + 1.0 for e in listed)
                 for label, end in words if label in ("stop", "go"))
    assert caught >= 3, listed  # of the 4 stop and go clips
    model = speech.load()
    audio = load_audio(wav, samples=None)
    found = [d.to_dict() for d in model.stream((audio[i:i + 4000] for i in range(0, audio.size, 4000)),
                                                keywords=["stop", "go"])]
    assert found == listed
    for keywords, says in ((["stop", "nonsense"], "keyword(s) 'nonsense' not among the model's keywords: yes, no, "
                                                  "up, down, left, right, on, off, stop, go"),
                           ("stop", "keywords must be a non-empty list of labels")):
        with pytest.raises(speech.SpeechError, match=re.escape(says)):
            model.streamer(keywords=keywords)
    bad = run([*BASE, "live", "--wav", str(wav), "--keywords", "stop,nonsense"])
    one_line_error(bad, 2, "speech live: error: keyword(s) 'nonsense' not among the model's keywords: yes, no")
    bad = run([*BASE, "live", "--wav", str(wav), "--keywords", ","])
    one_line_error(bad, 2, "speech live: error: argument --keywords: expected comma-separated keywords")


def test_a_keyword_amid_talk_is_ignored_after_a_pause_reported(data_record, test_speaker_words, tmp_path):
    """The detector's talk rule on real audio: the last 3 s of a test reader's sentence run straight into a test
    speaker's "yes": not reported (every window of the 1.5 s before it is heard as talk); the same clip after 3 s
    of silence is; with ``--talk-before off`` the one amid talk is reported too, so it was the rule that held it."""
    from speech.audio.io import load_audio, write_wav

    reader = sorted(r for r, part in data_record.running_speech["reader_split"]["parts"].items() if part == "test")[0]
    sentence = sorted((RUNNING / reader).glob("*/*.ogg"))[0]
    wav, words = test_speaker_words
    yes_end = next(end for label, end in words if label == "yes")
    clip = load_audio(wav, samples=None)[int((yes_end - 1.0) * 16000):int(yes_end * 16000)]  # its second, as cut
    talk = load_audio(sentence, samples=None)[-3 * 16000:]
    after_talk, after_pause = tmp_path / "talk-yes.wav", tmp_path / "pause-yes.wav"
    tail = np.zeros(16000, np.float32)
    write_wav(after_talk, np.concatenate([talk, clip, tail]))
    write_wav(after_pause, np.concatenate([np.zeros_like(talk), clip, tail]))
    heard = {}
    for name, path, extra in (("talk", after_talk, []), ("pause", after_pause, []),
                              ("talk, rule off", after_talk, ["--talk-before", "off"])):
        result = run([*BASE, "live", "--wav", str(path), "--json", *extra])
        assert result.returncode == 0, result.stderr
        heard[name] = [e["label"] for e in events(result.stdout)]
    assert heard == {"talk": [], "pause": ["yes"], "talk, rule off": ["yes"]}, (sentence, heard)


def test_stream_test_and_calibrate_take_the_name(tmp_path, capsys):
    """The name works for the stream commands too; the reports name the packaged file; calibrate writes a copy
    and refuses to change the installed file in place."""
    out = tmp_path / "st.json"
    assert main(["stream-test", "commands", "--data", str(SC_V2_TEST), "--split", "test", "--minutes", "0.5",
                 "--json", str(out), "--out", str(tmp_path / "st"), "--threads", "1"]) == 0
    report = json.loads(out.read_text())
    assert report["model"] == str(MODEL) and report["threshold_source"].startswith("calibrated")
    assert report["split"]["clips_of_training_speakers"] == 0
    before = MODEL.read_bytes()
    assert main(["calibrate", "commands", "--data", str(SC_V2_TEST), "--in-place", "--threads", "1"]) == 2
    assert "--in-place would change the packaged model 'commands'" in capsys.readouterr().err
    copy = tmp_path / "mine.onnx"
    assert main(["calibrate", "commands", "--data", str(SC_V2_TEST), "--minutes", "0.5", "--out", str(copy),
                 "--report", str(tmp_path / "cal"), "--threads", "1"]) == 0
    capsys.readouterr()
    assert copy.is_file() and MODEL.read_bytes() == before
    assert speech.load(copy).metadata["detection"]["calibrated_on"]["model_file"] == "commands.onnx"


def test_bad_names_are_one_line_listing_the_packaged_names(tmp_path, capsys):
    with pytest.raises(UnknownModelError) as caught:
        speech.load("nonsense")
    assert caught.value.exit_code == 2 and "commands" in str(caught.value) and "path" in str(caught.value)
    for argv in (["live", "nonsense"], ["live", "nonsense", "--wav", str(tmp_path / "none.wav")],
                 ["evaluate", "nonsense", "--data", str(SC_V2_TEST)],
                 ["stream-test", "nonsense", "--data", str(SC_V2_TEST)],
                 ["calibrate", "nonsense", "--data", str(SC_V2_TEST)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err == (f"speech {argv[0]}: error: nonsense: no such model file, and no packaged model of that name; "
                       "expected a path to a .ckpt or .onnx file, or a packaged model name: commands"), err
    # the base install says the same, and a missing file given by path names the packaged models too
    result = run([*BASE, "live", "nonsense"])
    one_line_error(result, 2, "nonsense: no such model file", "packaged model name: commands")
    result = run([*BASE, "live", str(tmp_path / "commands.onnx")])
    one_line_error(result, 2, f"{tmp_path / 'commands.onnx'}: no such model file", "commands")
    # a path always wins: a file named like the packaged model is that file
    (tmp_path / "commands").write_bytes(b"not a model")
    result = run([sys.executable, "-m", "speech", "live", "commands", "--wav", str(tmp_path / "none.wav")],
                 cwd=tmp_path)
    one_line_error(result, 2, "speech live: error: commands: not a PyTorch checkpoint")
    (tmp_path / "commands").unlink()
    (tmp_path / "commands").mkdir()  # a folder of that name is not a model file: the name means the packaged one
    clip = next((SC_V2_TEST / "yes").glob("*.wav"))
    result = run([*BASE, "live", "commands", "--wav", str(clip), "--json"], cwd=tmp_path)
    assert result.returncode == 0 and "packaged model 'commands'" in result.stderr, result.stderr
    with pytest.raises(UnknownModelError, match="backend 'torch' needs a .ckpt"):
        speech.load("commands", backend="torch")


@pytest.fixture()
def package_copy(tmp_path) -> Path:
    """A copy of the speech package in a folder of its own (put first on the path by the commands below), whose
    packaged model the test damages; the installed one is never touched."""
    shutil.copytree(REPO / "speech", tmp_path / "speech", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated", "not ours"])
def test_a_missing_or_damaged_packaged_model_is_one_line_exit_1(package_copy, damage, tmp_path):
    model = package_copy / "speech" / "models" / "commands.onnx"
    if damage == "missing":
        model.unlink()
    elif damage == "garbage":
        model.write_bytes(b"\x00\x01 this is not an ONNX model")
    elif damage == "truncated":
        model.write_bytes(MODEL.read_bytes()[: MODEL.stat().st_size // 2])
    else:  # a valid ONNX graph without speech's metadata
        import onnx

        graph = onnx.load(str(MODEL))
        del graph.metadata_props[:]
        onnx.save(graph, str(model))
    env = {"PYTHONPATH": str(package_copy), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    clip = next((SC_V2_TEST / "yes").glob("*.wav"))
    expected = ("the packaged model 'commands' is missing" if damage == "missing" else
                "the packaged model 'commands' cannot be used")
    for argv in ([*BASE, "live", "--wav", str(clip)], [*BASE, "live", "commands", "--wav", str(clip)],
                 [sys.executable, "-m", "speech", "evaluate", "commands", "--data", str(SC_V2_TEST)]):
        result = run(argv, cwd=package_copy, env=env)
        err = one_line_error(result, 1, expected, str(model), "reinstall speech")
        assert "internal error" not in err
    api = run([*BASE, "-c", "import speech\ntry:\n    speech.load()\nexcept speech.SpeechError as e:\n"
               "    print(type(e).__name__, e.exit_code, speech.__file__)"], cwd=package_copy, env=env)
    assert api.stdout.split() == ["PackagedModelError", "1", str(package_copy / "speech" / "__init__.py")], api
    # a file given by path keeps working in that installation
    result = run([*BASE, "live", str(MODEL), "--wav", str(clip), "--json"], cwd=package_copy, env=env)
    assert result.returncode == 0 and events(result.stdout), result.stderr


def test_the_api_error_classes():
    assert issubclass(PackagedModelError, speech.SpeechError) and PackagedModelError.exit_code == 1
    assert issubclass(UnknownModelError, speech.SpeechError) and UnknownModelError.exit_code == 2


def test_the_model_card_blocks_are_the_cards_figures():
    """docs/model-card.md's generated blocks are what scripts/package_model.py writes from the card's JSON (no
    figure edited by hand), and the README links the card in its first lines."""
    package_model = script_module("package_model.py")
    doc = (REPO / "docs" / "model-card.md").read_text()
    assert package_model.with_blocks(doc, package_model.card_blocks(CARD), "docs/model-card.md") == doc
    figures = CARD["figures"]["clip_accuracy"]["sc-v2-test-fit"]
    assert f"**{100 * figures['accuracy']:.2f} %**" in doc
    assert not CARD["built"]["quick"]
    readme_top = (REPO / "README.md").read_text().splitlines()[:12]
    assert any("docs/model-card.md" in line for line in readme_top)


def test_package_model_refuses_to_replace_the_packaged_model_unasked(tmp_path):
    before = MODEL.read_bytes()
    checkpoint = tmp_path / "new.ckpt"
    checkpoint.write_bytes(b"PK\x03\x04 refused before it is read")
    result = run([sys.executable, str(REPO / "scripts" / "package_model.py"), str(checkpoint),
                  "--work", str(tmp_path / "work")])
    assert result.returncode == 2 and "exists; refusing to overwrite it; pass --force" in result.stderr, result.stderr
    result = run([sys.executable, str(REPO / "scripts" / "package_model.py"), str(tmp_path / "none.ckpt")])
    assert result.returncode == 2 and "none.ckpt: no such checkpoint file" in result.stderr
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"not onnx")
    result = run([sys.executable, str(REPO / "scripts" / "package_model.py"), str(fake), "--models-dir", str(tmp_path)])
    assert result.returncode == 2 and "fake.onnx: not a model exported by 'speech export'" in result.stderr, result.stderr
    assert MODEL.read_bytes() == before and not (tmp_path / "work").exists()


@pytest.fixture(scope="module")
def small_data_root(tmp_path_factory) -> Path:
    """A --data-root of the script's three folders: the first 24 clips of each label of sc-v2-test-fit, the first
    60 of each of the four words, and librispeech-mini (symlinks, no copies)."""
    from conftest import linked_tree

    root = tmp_path_factory.mktemp("data-root")
    (root / "sc-v2-test-fit").mkdir()
    linked_tree(root / "sc-v2-test-fit", 24)
    for word in ("yes", "no", "up", "down"):
        (root / FOUR_WORDS.name / word).mkdir(parents=True)
        for path in sorted((FOUR_WORDS / word).glob("*.ogg"))[:60]:
            (root / FOUR_WORDS.name / word / path.name).symlink_to(path)
    (root / RUNNING.name).symlink_to(RUNNING)
    return root


def test_package_model_packages_a_checkpoint_end_to_end(tmp_path, small_data_root, cache_dir):
    """The script on a small model trained as the packaged one is (both folders and running speech; 2 epochs),
    with short streams, into a folder of its own: the model, the card and the card document, whose figures are
    the reports' and whose thresholds are the model's; a second run refuses to replace them."""
    from conftest import train_args

    from speech.cli.train import main as train_main

    root = small_data_root
    runs = tmp_path / "runs"
    train_main(train_args(root / "sc-v2-test-fit", runs, cache_dir, "--trainer.max_epochs", "2",
                          "--data.extra_roots", f"[{root / FOUR_WORDS.name}]", "--data.extra_validation_percent", "20",
                          "--data.extra_testing_percent", "30", "--data.running_speech", str(root / RUNNING.name),
                          "--data.running_speech_windows", "60", "--threads", "1"))
    (checkpoint,) = (runs / "test" / "version_0" / "checkpoints").glob("best-*.ckpt")
    doc = tmp_path / "card.md"
    doc.write_text("x\n" + "".join(f"<!-- generated:{n}:begin -->\n<!-- generated:{n}:end -->\n"
                                   for n in ("model", "data", "figures")))
    out, work = tmp_path / "models", tmp_path / "work"
    argv = [sys.executable, str(REPO / "scripts" / "package_model.py"), str(checkpoint), "--quick", "--data-root",
            str(root), "--models-dir", str(out), "--card-doc", str(doc), "--work", str(work)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "SPEECH_CACHE": str(cache_dir)}
    result = run(argv, timeout=1200, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    card = json.loads((out / "commands.json").read_text())
    report = json.loads((work / "evaluate-sc-v2-test-fit.json").read_text())
    assert card["figures"]["clip_accuracy"]["sc-v2-test-fit"]["accuracy"] == report["accuracy"]
    assert f"**{100 * report['accuracy']:.2f} %**" in doc.read_text()
    assert (out / "commands.onnx").read_bytes() == (work / "commands.onnx").read_bytes()
    assert speech.load(out / "commands.onnx").metadata["detection"]["thresholds"] == card["thresholds"]
    assert any(c.startswith("speech calibrate --threads 1 WORK/exported.onnx") for c in card["built"]["commands"])
    four = card["figures"]["streams"][FOUR_WORDS.name]
    assert set(four["per_keyword"]) <= {"yes", "no", "up", "down"} and four["speakers"] > 0
    folders = {f["folder"]: f for f in card["data"]["folders"]}
    assert sum(f["training"]["clips"] for f in folders.values()) == card["data"]["training_clips"]
    assert folders[FOUR_WORDS.name]["testing"]["clips"] == card["figures"]["clip_accuracy"][FOUR_WORDS.name]["clips"]
    again = run(argv, timeout=600, env=env)
    assert again.returncode == 2 and "pass --force" in again.stderr
    # packaged again from the exported file (a change of detection defaults): no export, calibrated and measured
    # again, the card's checkpoint and training command kept and the file it came from recorded
    out2 = tmp_path / "models2"
    argv2 = [sys.executable, str(REPO / "scripts" / "package_model.py"), str(out / "commands.onnx"), "--quick",
             "--data-root", str(root), "--models-dir", str(out2), "--card-doc", str(doc), "--work", str(tmp_path / "w2")]
    result = run(argv2, timeout=1200, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    card2 = json.loads((out2 / "commands.json").read_text())
    built = card2["built"]
    assert built["checkpoint"] == card["built"]["checkpoint"] and built["training_command"] == card["built"]["training_command"]
    assert built["repackaged_from"]["sha256"] == card["file"]["sha256"]
    assert built["commands"][0].startswith("cp ") and not any(c.startswith("speech export") for c in built["commands"])
    assert speech.load(out2 / "commands.onnx").metadata["detection"]["thresholds"] == card2["thresholds"]
    assert "calibrated and measured again from the packaged file" in doc.read_text()


def test_a_wheel_built_from_the_repo_holds_the_model(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "speech", source / "speech", ignore=shutil.ignore_patterns("__pycache__"))
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                 str(tmp_path / "dist"), str(source)], timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("speech-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "speech/models/commands.onnx" in names and "speech/models/commands.json" in names
        assert archive.read("speech/models/commands.onnx") == MODEL.read_bytes()
