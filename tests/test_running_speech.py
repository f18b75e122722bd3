"""Running speech (issue #18): the LibriSpeech-style reader, the reader split, training windows, the datamodule
option and its data record, and the running-speech stream of ``stream-test`` and ``calibrate``, on the real
``../shared/data/librispeech-mini`` (read in place, never copied; bad-input folders link to its files)."""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pytest
from conftest import SC_V2_TEST, SHARED_DATA
from streaming_helpers import assert_budget_holds_except_over_target, recorded_checkpoint

from speech.cli import main
from speech.data.errors import DatasetError
from speech.data.running_speech import (
    cut_windows,
    keyword_free,
    read_running_speech,
    split_readers,
    training_windows,
)

LIBRI = SHARED_DATA / "librispeech-mini"
KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


@pytest.fixture(scope="module")
def libri():
    return read_running_speech(LIBRI)


def test_reads_the_librispeech_folder(libri):
    assert len(libri.utterances) == 929 and len(libri.readers) == 18 and libri.bad_files == []
    first = libri.utterances[0]
    assert first.id.startswith(f"{first.reader}-{first.chapter}-") and os.path.isfile(first.path)
    assert all(w == w.upper() for u in libri.utterances for w in u.words)
    # whole words only: UPON, GONE and NOBODY say no keyword; 60 % of the sentences are keyword-free (README)
    free = keyword_free(libri.utterances, KEYWORDS)
    assert 540 <= len(free) <= 565
    assert all(not any(u.count(k) for k in KEYWORDS) for u in free)
    says_up = [u for u in libri.utterances if "UP" in u.words]
    assert says_up and all(u.count("up") >= 1 for u in says_up)


def test_reader_split_is_disjoint_seeded_and_recordable(libri):
    split = split_readers(libri.readers, seed=0)
    parts = {p: set(split.readers(p)) for p in ("train", "calibration", "test")}
    assert [len(parts[p]) for p in ("train", "calibration", "test")] == [8, 4, 6]
    assert set.union(*parts.values()) == set(libri.readers)
    assert not (parts["train"] & parts["test"]) and not (parts["train"] & parts["calibration"])
    assert split_readers(list(reversed(libri.readers)), seed=0) == split  # order of the input does not matter
    assert split_readers(libri.readers, seed=1).parts != split.parts
    assert type(split).from_dict(json.loads(json.dumps(split.to_dict()))) == split
    with pytest.raises(ValueError, match="sum to at most 100"):
        split_readers(libri.readers, calibration_percent=60, test_percent=50)


def test_windows_are_seeded_speech_windows(libri, tmp_path):
    sentences = keyword_free(libri.of_readers(split_readers(libri.readers).readers("train")), KEYWORDS)[:6]
    windows = training_windows(sentences, 40, seed=3, cache_dir=tmp_path)
    assert windows.shape == (40, 16000) and windows.dtype == np.int16
    assert len(list(tmp_path.glob("running-*.npy"))) == 1
    again = training_windows(sentences, 40, seed=3, cache_dir=tmp_path)  # from the cache, same windows
    assert np.array_equal(np.asarray(again), windows)
    assert not np.array_equal(training_windows(sentences, 40, seed=4), windows)
    rms = np.sqrt(np.mean((windows / 32768.0) ** 2, axis=1))
    assert (rms > 0.003).all()  # no window of a pause only
    # a sentence shorter than a window is used whole, zero padded
    short, source = cut_windows([8000], [np.full(8000, 0.5, np.float32)].__getitem__, 3, np.random.default_rng(0))
    assert short.shape == (3, 16000) and (short[:, 8000:] == 0).all() and (source == 0).all()
    assert cut_windows([], [].__getitem__, 3, np.random.default_rng(0))[0].shape == (0, 16000)  # no sentences


def test_windows_decode_each_sentence_once_and_redraw_from_the_others_when_one_fails(libri):
    """Memory holds one sentence at a time (LibriSpeech's 100 h would not fit decoded): each sentence is decoded
    once, in one pass; a sentence that fails at decoding gives its windows to the others."""
    from speech.data.running_speech import load_sentence, sentence_samples

    sentences = libri.utterances[:8]
    lengths = [sentence_samples(u.path) for u in sentences]
    assert lengths == [load_sentence(u.path).shape[0] for u in sentences]  # the header tells the decoded length
    loads = []

    def load(i):
        loads.append(i)
        return None if i == 2 else load_sentence(sentences[i].path)

    windows, source = cut_windows(lengths, load, 200, np.random.default_rng(0), samples=24000)
    assert windows.shape == (200, 24000) and 2 not in set(source.tolist())
    assert (np.abs(windows).max(axis=1) > 0).all()  # every window filled, those of the failed sentence too
    cut = next(k for k in range(1, len(loads)) if loads[k] <= loads[k - 1])  # where the second pass starts
    first, second = loads[:cut], loads[cut:]
    assert first == sorted(set(first)) and 2 in first  # one pass, each sentence decoded once
    assert second == sorted(set(second)) and second and 2 not in second  # the failed one's windows, from others


def _link_chapter(folder, reader="1867", chapter="154075"):
    src = LIBRI / reader / chapter
    dst = folder / reader / chapter
    dst.mkdir(parents=True)
    for path in sorted(src.iterdir())[:4]:
        if path.suffix == ".ogg":
            (dst / path.name).symlink_to(path)
    return src, dst


def test_bad_running_speech_folders(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_running_speech(tmp_path / "missing")
    # audio but no transcripts: one line naming the folder and the layout expected
    src, dst = _link_chapter(tmp_path / "no-trans")
    with pytest.raises(DatasetError, match=r"no transcripts found; expected LibriSpeech's layout") as err:
        read_running_speech(tmp_path / "no-trans")
    assert "\n" not in str(err.value)
    # a transcript line naming a missing file and an unreadable file: skipped and counted, the rest is used
    linked = sorted(p.stem for p in dst.glob("*.ogg"))
    lines = {line.split()[0]: line for line in (src / "1867-154075.trans.txt").read_text().splitlines()}
    (dst / "1867-154075-9999.ogg").write_bytes(b"not audio at all" * 10)
    text = [lines[i] for i in linked] + ["1867-154075-9998 A MISSING FILE", "1867-154075-9999 NOT AUDIO"]
    (dst / "1867-154075.trans.txt").write_text("\n".join(text) + "\n")
    found = read_running_speech(tmp_path / "no-trans")
    assert [u.id for u in found.utterances] == linked
    reasons = dict(found.bad_files)
    assert len(reasons) == 2
    assert "no flac/ogg/wav file of that name" in reasons[str(dst / "1867-154075-9998")]
    assert str(dst / "1867-154075-9999.ogg") in reasons
    # nothing usable at all: one error naming the folder and a bad file
    only_bad = tmp_path / "bad" / "1" / "2"
    only_bad.mkdir(parents=True)
    (only_bad / "1-2.trans.txt").write_text("1-2-0 HELLO THERE\n")
    with pytest.raises(DatasetError, match=r"none of the 1 transcribed sentence\(s\) is usable"):
        read_running_speech(tmp_path / "bad")


def test_datamodule_adds_running_speech_windows_and_records_the_readers(tmp_path):
    from speech.data.datamodule import SpeechCommandsDataModule

    def module(**kw):
        kw.setdefault("labels", "12")
        return SpeechCommandsDataModule(root=str(SC_V2_TEST), split_rule="speaker",
                                        validation_percent=10, testing_percent=20, cache_dir=str(tmp_path), **kw)

    plain = module()
    plain.setup("fit")
    with_rs = module(running_speech=str(LIBRI), running_speech_windows=64)
    with_rs.setup("fit")
    before, after = plain.data["training"], with_rs.data["training"]
    unknown = plain.labels.index("_unknown_")
    assert len(after) == len(before) + 64 and after.waves.shape == (len(before) + 64, 16000)
    assert (after.labels[len(before):] == unknown).all()
    assert np.array_equal(np.asarray(after.waves[: len(before)]), np.asarray(before.waves))
    record = with_rs.record().to_dict()
    rs = record["running_speech"]
    split = split_readers(read_running_speech(LIBRI).readers)
    assert rs["training_readers"] == split.readers("train") and rs["reader_split"] == split.to_dict()
    assert rs["windows"] == 64 and rs["root"] == str(LIBRI.resolve())
    assert plain.record().running_speech is None
    # labels without _unknown_ (one's own keywords under cpu-small.yaml): not used, not recorded
    words_only = module(labels="yes,no", running_speech=str(LIBRI), running_speech_windows=8)
    words_only.setup("fit")
    assert "_unknown_" not in words_only.labels and words_only.record().running_speech is None
    with pytest.raises(DatasetError, match="no transcripts"):
        module(running_speech=str(SC_V2_TEST), running_speech_windows=8).setup("fit")


def test_windows_from_every_sentence_include_the_ones_that_say_a_keyword(libri, tmp_path):
    """``running_speech_sentences: all`` cuts the windows from every sentence of the train readers, those that say a
    keyword too (a keyword inside a sentence is to be ignored); the record says which, and the default stays."""
    from speech.data.running_windows import RunningSpeechSource
    from speech.errors import SettingError

    labels = ["_silence_", "_unknown_", *KEYWORDS]
    free, every = RunningSpeechSource(LIBRI, windows=40), RunningSpeechSource(LIBRI, windows=40, sentences="all")
    train = libri.of_readers(split_readers(libri.readers).readers("train"))
    assert free.sentences(labels) == keyword_free(train, KEYWORDS) and every.sentences(labels) == train
    saying = [u for u in train if u.says_any([k.upper() for k in KEYWORDS])]
    assert len(saying) > 50  # the transcripts of mini LibriSpeech: 117 of the train readers' 318 sentences
    described = every.describe(labels)
    assert (described["sentences"], described["sentences_used"]) == ("all", len(train))
    assert described["keyword_free_sentences"] == len(free.sentences(labels)) == len(train) - len(saying)
    assert free.describe(labels)["sentences"] == "keyword_free"
    windows = every.windows(labels, tmp_path)
    assert windows.shape == (40, 16000) and not np.array_equal(windows, free.windows(labels, tmp_path))
    with pytest.raises(SettingError, match="running_speech_sentences must be one of keyword_free, all"):
        RunningSpeechSource(LIBRI, sentences="some")


def test_the_false_accept_bound_is_the_exact_poisson_one():
    from scipy.stats import chi2

    from speech.evaluation.streams.running import poisson_upper_rate

    for count, hours in ((0, 1.0), (1, 1.06), (2, 1.17), (12, 3.0), (60, 0.5)):
        assert poisson_upper_rate(count, hours) == pytest.approx(chi2.ppf(0.95, 2 * (count + 1)) / 2 / hours, rel=1e-9)


def test_scoring_rule_of_the_running_stream():
    from speech.evaluation.streams.build import ScoredStream
    from speech.evaluation.streams.running import RunningStream, Sentence
    from speech.streaming.detection import Detection

    sentences = [Sentence("a", "1", ("GO", "NORTH"), 1.0, 4.0), Sentence("b", "1", ("NOTHING", "HERE"), 4.5, 8.0),
                 Sentence("c", "1", ("UP", "UP", "AND", "AWAY"), 8.5, 12.0)]
    found = [Detection("go", 0.9, 3.0), Detection("go", 0.9, 4.8),  # said in a (4.8 <= 4 + 1): correct
             Detection("left", 0.9, 6.0),  # b says no keyword: false accept, charged to b
             Detection("go", 0.9, 6.0),  # beyond a's span + 1 s: false
             Detection("up", 0.9, 9.0), Detection("yes", 0.9, 0.5)]  # before the first sentence: false

    class Fixed(RunningStream):
        def detections(self, labels, config):
            return found

    stream = Fixed(ScoredStream("running_speech", 3600.0, [], np.zeros(0), np.zeros((0, 12))), sentences)
    s = stream.score(["_silence_", "_unknown_", *KEYWORDS], None)
    assert s.false_accepts == 3 and s.false_accepts_per_hour == 3.0
    assert abs(s.false_accepts_per_hour_95 - 7.7537) < 1e-3  # chi2.ppf(0.95, 8) / 2 over 1 h
    assert s.by_keyword == {"left": 1, "go": 1, "yes": 1}
    assert s.keyword_free_false_accepts == 2  # the two charged to b
    assert {(o["sentence"], o["as"]) for o in s.offenders} == {("b", "left"), ("b", "go"),
                                                              (None, "(before the first sentence)")}
    # said keywords: go once in a (detected), up twice in c (one detection): 2 of 3
    assert (s.said, s.said_detected) == (3, 2) and s.said_per_keyword == {"up": {"said": 2, "detected": 1},
                                                                         "go": {"said": 1, "detected": 1}}
    assert stream.false_accepts([], None) == 3


def test_stream_test_and_calibrate_with_running_speech(tiny_checkpoint, tmp_path, capsys):
    from speech.runtime.scorers import load_scorer

    model = recorded_checkpoint(tiny_checkpoint, tmp_path / "recorded.ckpt")
    test_readers = split_readers(read_running_speech(LIBRI).readers).readers("test")
    # one thread, fixed: the sweep recomputed below scores the same audio and must get the same scores
    st = ["stream-test", str(model), "--data", str(SC_V2_TEST), "--minutes", "0.5", "--unknown-minutes", "0.5",
          "--noise-minutes", "0.25", "--running-speech", str(LIBRI), "--running-minutes", "1.5", "--threads", "1"]
    assert main([*st, "--sweep", "--out", str(tmp_path / "st"), "--json", str(tmp_path / "st.json")]) == 0
    printed = capsys.readouterr().out
    assert "running speech:" in printed and "test readers" in printed
    r = json.loads((tmp_path / "st.json").read_text())["running_speech"]
    assert set(r["stream"]["readers"]) <= set(test_readers) and r["source"]["readers_part"] == "test"
    assert r["stream"]["stream_seconds"] >= 90
    # the figures agree with the detections file, one line per detection with its verdict
    verdicts = [line.split(",")[:4] for line in (tmp_path / "st" / "running_speech_detections.csv").read_text()
                .splitlines()[1:]]
    false = [keyword for _, keyword, _, verdict in verdicts if verdict == "false_accept"]
    assert r["false_accepts"] == len(false) and r["false_accepts_by_keyword"] == dict(Counter(false))
    assert r["false_accepts_per_hour"] == pytest.approx(len(false) * 3600 / r["stream"]["stream_seconds"], rel=1e-3)
    assert r["false_accepts_per_hour_95"] > r["false_accepts_per_hour"]
    assert f"up to {r['false_accepts_per_hour_95']:.1f} per hour (95 % bound from {r['false_accepts']} in" in printed
    for name in ("running_speech_detections.csv", "running_speech_sweep.csv", "running_speech_det_curve.png"):
        assert (tmp_path / "st" / name).stat().st_size > 30
    rows = (tmp_path / "st" / "running_speech_sweep.csv").read_text().splitlines()
    assert rows[0] == ("threshold,keyword_recall,keyword_wrong,running_false_accepts_per_hour,running_said_recall,"
                       "running_false_accepts") and len(rows) == 71
    table = [dict(zip(rows[0].split(","), line.split(","), strict=True)) for line in rows[1:]]
    # the raw sweep, as measured (its DET curve is drawn as the lower envelope: test_det_curve_...): more false
    # accepts at the lowest threshold than at the highest, and every row what an independent replay gives
    assert int(table[0]["running_false_accepts"]) >= int(table[-1]["running_false_accepts"])
    recomputed = running_sweep_by_hand(model, r["stream"]["readers"])
    assert [float(row["threshold"]) for row in table] == sorted(recomputed)
    for row in table:
        count, seconds = recomputed[float(row["threshold"])]
        assert int(row["running_false_accepts"]) == count, row
        assert float(row["running_false_accepts_per_hour"]) == pytest.approx(count * 3600 / seconds, rel=1e-5)
    clip_sweep = {line.split(",")[0]: line.split(",")[1] for line in
                  (tmp_path / "st" / "sweep.csv").read_text().splitlines()[1:]}  # the keyword stream's recall
    assert all(float(clip_sweep[f"{float(row['threshold']):.6g}"]) == float(row["keyword_recall"]) for row in table)

    # calibrate on the calibration readers: the false-accept budget is per hour of their running speech
    calibrated = tmp_path / "cal.ckpt"
    assert main(["calibrate", str(model), "--data", str(SC_V2_TEST), "--minutes", "0.5", "--noise-minutes", "0.25",
                 "--running-speech", str(LIBRI), "--running-minutes", "2", "--target-fa", "60",
                 "--report", str(tmp_path / "rep"), "--out", str(calibrated)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "rep" / "calibration.json").read_text())
    cal_readers = split_readers(read_running_speech(LIBRI).readers).readers("calibration")
    assert set(summary["running_speech"]["stream"]["readers"]) <= set(cal_readers)
    hours = summary["running_speech"]["stream"]["stream_seconds"] / 3600
    budgets = summary["budgets_in_streams"]
    assert budgets["false_accepts"] == int(60 * hours + 1e-9) >= 2
    assert_budget_holds_except_over_target(summary, printed)
    # the best single threshold: the lowest of the sweep (>= --min-threshold 0.5) whose running-speech false
    # accepts and noise false alarms meet both targets; none when no threshold does
    meeting = [row["threshold"] for row in summary["running_speech"]["sweep"] if row["threshold"] >= 0.5
               and row["false_accepts_per_hour"] <= 60 and row["false_alarms_per_hour"] <= 0.5]
    best = summary["best_single_threshold"]
    assert (best and best["threshold"]) == (meeting[0] if meeting else None)
    on = load_scorer(calibrated).metadata["detection"]["calibrated_on"]["running_speech"]
    assert set(on["readers"]) == set(cal_readers)
    # stream-test of the calibrated model: none of the test readers was calibrated on; the calibration readers warn
    assert main(["stream-test", str(calibrated), *st[2:], "--out", str(tmp_path / "st2"), "--json", str(tmp_path / "2.json")]) == 0
    assert json.loads((tmp_path / "2.json").read_text())["running_speech"]["calibration_readers_in_stream"] == 0
    capsys.readouterr()
    assert main(["stream-test", str(calibrated), *st[2:], "--running-readers", "calibration", "--out", str(tmp_path / "st3")]) == 0
    assert "the thresholds were calibrated on" in capsys.readouterr().out


def running_sweep_by_hand(model, readers: list[str]) -> dict[float, tuple[int, float]]:
    """The running-speech sweep of ``stream-test`` restated: the same stream (the test readers' sentences in the
    stream seed's order, 1.5 min) scored by the model, then for each threshold a fresh online detector fed hop by
    hop, and a false accept counted for each detection that no sentence it falls in (its span + 1 s) says.
    ``{threshold: (false accepts, stream seconds)}``."""
    from speech.evaluation.streams.figures import SWEEP_THRESHOLDS
    from speech.evaluation.streams.running import build_running_stream, running_source
    from speech.runtime.scorers import load_scorer
    from speech.streaming.detection import CommandDetector, DetectorConfig
    from speech.streaming.engine import StreamingConfig

    scorer = load_scorer(model)
    source = running_source(LIBRI, scorer.metadata, "test")
    stream = build_running_stream(scorer, StreamingConfig(), source.utterances, seed=0, max_minutes=1.5)
    assert sorted({s.reader for s in stream.sentences}) == readers  # the stream the command built
    out = {}
    for t in SWEEP_THRESHOLDS:
        detector = CommandDetector(scorer.labels, DetectorConfig(threshold=t, release=min(0.35, t)))
        found = [d for time, scores in zip(stream.scored.times, stream.scored.scores, strict=True)
                 if (d := detector.process(scores, float(time))) is not None]
        false = sum(1 for d in found if not any(s.start <= d.time <= s.end + 1.0 + 1e-9 and d.label.upper() in s.words
                                                 for s in stream.sentences))
        out[t] = (false, stream.seconds)
    return out


def test_det_curve_is_the_lower_envelope_of_a_sweep_that_is_not_monotone(tmp_path):
    """Issue #36: false accepts need not fall with every step of the threshold (1843.69 -> 1915.99 per hour
    measured); the DET curve drawn is the sweep's lower envelope, monotone, made of measured points only."""
    from speech.evaluation.streams.figures import det_curve, plot_det

    raw = [(0.30, 90.0, 2000.0), (0.34, 88.0, 1843.69), (0.35, 88.0, 1915.99), (0.40, 85.0, 1800.0),
           (0.50, 86.0, 1200.0), (0.60, 70.0, 1200.0), (0.70, 60.0, 300.0), (0.80, 59.0, 310.0), (0.90, 40.0, 0.0),
           (0.99, 10.0, 0.0)]
    rows = [{"threshold": t, "keyword_recall": recall, "false_accepts_per_hour": fa} for t, recall, fa in raw]
    curve = det_curve(rows)
    assert [r["threshold"] for r in curve] == [0.90, 0.70, 0.50, 0.34, 0.30]
    assert all(a["false_accepts_per_hour"] < b["false_accepts_per_hour"] and a["keyword_recall"] < b["keyword_recall"]
               for a, b in zip(curve[:-1], curve[1:], strict=True))
    for r in rows:  # no measured point lies below the curve: each is matched or beaten by a point of it
        assert any(c["false_accepts_per_hour"] <= r["false_accepts_per_hour"] and c["keyword_recall"] >= r["keyword_recall"]
                   for c in curve)
    assert plot_det(tmp_path / "det.png", rows).read_bytes()[:4] == b"\x89PNG"
    running = [{"threshold": r["threshold"], "keyword_recall": r["keyword_recall"],
                "running_false_accepts_per_hour": r["false_accepts_per_hour"]} for r in rows]
    assert det_curve(running, "running_false_accepts_per_hour") == [running[8], running[6], running[4], running[1], running[0]]


def test_running_speech_refusals(tiny_checkpoint, tmp_path, capsys):
    from speech.data.record import DataRecord
    from speech.model.checkpoint import load_recogniser, save_checkpoint

    # a model whose record says it trained on some of the readers: the stream commands refuse them
    model = recorded_checkpoint(tiny_checkpoint, tmp_path / "recorded.ckpt")
    loaded = load_recogniser(model)
    record = DataRecord.from_dict(loaded.sections["data"])
    split = split_readers(read_running_speech(LIBRI).readers)
    split.parts[split.readers("test")[0]] = "train"  # a reader recorded as trained on, now asked as a test reader
    record.running_speech = {"root": str(LIBRI.resolve()), "reader_split": split.to_dict(),
                             "training_readers": split.readers("train") + [split.readers("calibration")[0]]}
    loaded.sections["data"] = record.to_dict()
    leaky = save_checkpoint(loaded, tmp_path / "leaky.ckpt")
    base = ["stream-test", str(leaky), "--data", str(SC_V2_TEST), "--minutes", "0.5", "--noise-minutes", "0.25",
            "--running-speech", str(LIBRI)]
    assert main([*base, "--running-readers", "calibration", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("speech stream-test: error: ") and "readers were trained on" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()
    assert main([*base, "--running-minutes", "0", "--out", str(tmp_path / "z")]) == 2
    assert "longer than 0 minutes" in capsys.readouterr().err
    # a folder without transcripts: one line, exit 2, no traceback
    assert main([*base[:-1], str(SC_V2_TEST), "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "no transcripts found" in err and "Traceback" not in err and err.count("\n") == 1


def test_hard_negatives_are_mined_from_train_readers_and_train_as_unknown(tiny_checkpoint, tmp_path, capsys):
    from speech.cli import main
    from speech.data.datamodule import SpeechCommandsDataModule
    from speech.evaluation.streams.hard_negatives import mine
    from speech.runtime.scorers import load_scorer

    scorer = load_scorer(tiny_checkpoint)
    windows, info = mine(scorer, LIBRI, threshold=0.3, max_minutes=0.5)
    train = split_readers(read_running_speech(LIBRI).readers).readers("train")
    assert info["readers"] == train and windows.dtype == np.int16 and windows.shape[1:] == (16000,)
    assert len(windows) == info["windows"] == sum(info["as_keyword"].values()) > 0  # the tiny model fires a lot
    out = tmp_path / "hard.npy"
    args = ["hard-negatives", str(tiny_checkpoint), "--running-speech", str(LIBRI), "--out", str(out), "--threshold", "0.3",
            "--max-windows", "5", "--max-minutes", "0.5"]
    assert main(args) == 0 and np.load(out).shape == (5, 16000)
    assert json.loads(out.with_suffix(".json").read_text())["readers"] == train
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("speech hard-negatives: error: ") and "refusing to overwrite" in err
    dm = SpeechCommandsDataModule(root=str(SC_V2_TEST), labels="12", split_rule="speaker", validation_percent=10,
                                  testing_percent=20, cache_dir=str(tmp_path), running_speech=str(LIBRI),
                                  running_speech_windows=16, running_speech_hard_negatives=str(out),
                                  running_speech_hard_negatives_repeat=2)
    dm.setup("fit")
    assert len(dm.data["training"]) == len(dm.index.splits["training"]) + 16 + 2 * 5
    assert (dm.data["training"].labels[-26:] == dm.labels.index("_unknown_")).all()
    assert dm.record().running_speech["hard_negatives"]["windows"] == 5
    # windows mined from held-out readers are refused
    meta = json.loads(out.with_suffix(".json").read_text())
    bad = tmp_path / "bad.npy"
    np.save(bad, np.load(out))
    bad.with_suffix(".json").write_text(json.dumps({**meta, "readers": split_readers(
        read_running_speech(LIBRI).readers).readers("test")}))
    dm = SpeechCommandsDataModule(root=str(SC_V2_TEST), labels="12", split_rule="speaker", validation_percent=10,
                                  testing_percent=20, cache_dir=str(tmp_path), running_speech=str(LIBRI),
                                  running_speech_windows=16, running_speech_hard_negatives=str(bad))
    with pytest.raises(DatasetError, match="not train readers"):
        dm.setup("fit")
