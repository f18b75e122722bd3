"""espeak-ng keyword data sets: layout, format, determinism, content, errors (a few seconds in all)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speech import synth
from speech.cli import main as cli_main
from speech.data.noise import coloured_noise

WORDS = ["yes", "no", "up"]
PER_WORD = 4
LABELS = [*WORDS, "_unknown_", "_silence_"]
KEYWORD_NAME = re.compile(r"^([a-z0-9-]+)_nohash_(\d+)\.wav$")
UNKNOWN_NAME = re.compile(r"^([a-z0-9-]+)_([a-z0-9-]+)_nohash_(\d+)\.wav$")


def _make(out: Path, seed: int = 0, jobs: int = 2, **kwargs) -> synth.SynthSummary:
    options = dict(per_word=PER_WORD, seed=seed, jobs=jobs, progress=False)
    options.update(kwargs)
    return synth.synthesize_dataset(out, WORDS, **options)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _frame_db(wave: np.ndarray, frame: int = 320) -> np.ndarray:
    """RMS level of 20 ms frames in dB re full scale."""
    frames = wave[: wave.shape[0] // frame * frame].reshape(-1, frame)
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, synth.SynthSummary]:
    out = tmp_path_factory.mktemp("synth") / "set"
    return out, _make(out)


def test_layout_names_and_format(dataset):
    out, summary = dataset
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(LABELS)
    assert summary.counts == {label: PER_WORD for label in LABELS}
    assert summary.clips == 5 * PER_WORD and summary.clips_per_second > 0 and summary.espeak_calls == PER_WORD
    speakers_of = {}
    for label in LABELS:
        names = sorted(p.name for p in (out / label).glob("*.wav"))
        assert len(names) == PER_WORD, label
        for name in names:
            info = sf.info(str(out / label / name))
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (16_000, 1, 16_000, "PCM_16"), name
            if label == "_unknown_":
                match = UNKNOWN_NAME.match(name)
                assert match and match.group(1) in synth.DEFAULT_NEGATIVES and match.group(1) not in WORDS, name
            else:
                assert KEYWORD_NAME.match(name), name
        if label in WORDS:
            speakers_of[label] = {KEYWORD_NAME.match(n).group(1) for n in names}
    # every round says each keyword once with one voice: the same pseudo speakers in every keyword folder
    assert speakers_of["yes"] == speakers_of["no"] == speakers_of["up"]
    assert all("_" not in s for s in speakers_of["yes"])
    assert (out / synth.MANIFEST).is_file()


def test_same_seed_same_bytes_other_seed_other_bytes(dataset, tmp_path):
    out, _ = dataset
    again = tmp_path / "again"
    _make(again, seed=0, jobs=1)  # another job count must not matter either
    assert _files(again) == _files(out)
    other = tmp_path / "other"
    _make(other, seed=1)
    first, second = _files(out), _files(other)
    wavs = [name for name in first if name.endswith(".wav")]
    assert sum(first[name] != second.get(name) for name in wavs) == len(wavs)


def test_words_are_spoken_and_silence_is_quiet(dataset):
    out, _ = dataset
    high_share: dict[str, dict[str, float]] = {}
    for label in [*WORDS, "_unknown_"]:
        high_share[label] = {}
        for path in sorted((out / label).glob("*.wav")):
            wave, _ = sf.read(str(path), dtype="float32")
            db = _frame_db(wave)
            assert db.max() > -40.0, f"{path}: no speech loud enough"
            assert db.max() - np.percentile(db, 10) > 12.0, f"{path}: the word does not stand out from the background"
            power = np.abs(np.fft.rfft(wave)) ** 2
            high_share[label][path.name] = power[3000:].sum() / power.sum()  # 1 Hz bins: energy above 3 kHz
    # the labels match what is said: "yes" ends in a hiss (/s/), "no" is voiced throughout; compare the two
    # words of one voice (same speed and pitch)
    louder = [high_share["yes"][name] > 1.3 * high_share["no"][name] for name in high_share["yes"]]
    assert sum(louder) >= PER_WORD - 1, high_share
    for path in sorted((out / "_silence_").glob("*.wav")):
        wave, _ = sf.read(str(path), dtype="float32")
        assert _frame_db(wave).max() < -20.0 and 10 * np.log10(np.mean(wave**2) + 1e-12) < -29.0, path


def test_speak_returns_trimmed_16k_float(tmp_path):
    wave = synth.speak("seven", "en-gb+f3", speed=160, pitch=60)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert 0.2 * 16_000 < wave.shape[0] < 1.0 * 16_000
    assert np.abs(wave[:40]).max() < np.abs(wave).max() / 4  # trimmed close to the onset, not cut inside it
    many = synth.speak_many(["go", "stop"], "en-us+m3", 150, 50, 100)
    assert [w.shape[0] > 1600 for w in many] == [True, True]
    assert many[1].shape[0] > many[0].shape[0]  # "stop" is longer than "go"


def test_missing_espeak_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(synth.EspeakNotFoundError, match=r"apt-get install espeak-ng.*scripts/setup\.sh"):
        synth.speak("yes")
    out = tmp_path / "set"
    assert cli_main(["synth", "--words", "yes", "--per-word", "1", "--out", str(out), "--no-progress"]) == 2
    message = capsys.readouterr().err
    assert "espeak-ng was not found on PATH" in message and "apt-get install espeak-ng" in message
    assert not out.exists()


def test_refuses_non_empty_folder_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "set"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        _make(out, per_word=1)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert cli_main(["synth", "--words", "yes,no", "--per-word", "2", "--out", str(out), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    # --overwrite: the synthesised clips are replaced (no stale ones left), other files are kept
    assert cli_main(["synth", "--words", "yes,no", "--per-word", "3", "--out", str(out), "--no-progress", "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert "_silence_" in printed and "clips/s" in printed
    summary = _make(out, per_word=1, overwrite=True)
    assert summary.removed == 4 * 3
    assert {p.parent.name: len(list(p.parent.glob("*.wav"))) for p in out.glob("*/*.wav")} == {
        label: 1 for label in LABELS
    }
    assert (out / "notes.txt").read_text() == "mine"


def test_overwrite_touches_only_what_synth_wrote(tmp_path, sc_v2_clips, capsys):
    """The README tells users to add real recordings to the label folders: --overwrite must keep them, keep
    folders the user made, and refuse (before deleting anything) a planned file that would replace theirs."""
    out = tmp_path / "mine"
    first = _make(out, per_word=2)
    manifest = synth.read_manifest(out)
    assert manifest["complete"] and set(manifest["created_folders"]) == set(LABELS)
    assert len(manifest["files"]) == first.clips and all(len(d) == 64 for d in manifest["files"].values())
    real = sc_v2_clips["yes"][0]
    (out / "yes" / "me_nohash_0.wav").write_bytes(real.read_bytes())  # a real recording, as the README says
    (out / "notes").mkdir()  # a folder of the user's, empty
    (out / "up" / "kept_nohash_0.wav").write_bytes(real.read_bytes())
    changed = next(name for name in sorted(manifest["files"]) if name.startswith("up/"))
    (out / changed).write_bytes(real.read_bytes())  # a synthesised file the user replaced by a recording

    assert cli_main(["synth", "--words", "yes,no", "--per-word", "1", "--seed", "3", "--out", str(out),
                     "--no-progress", "--overwrite"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert f"replaced {first.clips - 1} clips" in printed and "kept 3 file(s)" in printed
    assert (out / "yes" / "me_nohash_0.wav").read_bytes() == real.read_bytes()
    assert (out / changed).read_bytes() == real.read_bytes()
    assert (out / "notes").is_dir() and (out / "up" / "kept_nohash_0.wav").is_file()
    assert sorted(p.name for p in (out / "up").iterdir()) == sorted(["kept_nohash_0.wav", Path(changed).name])
    assert len(list((out / "no").glob("*.wav"))) == 1
    # "up" is no keyword any more, but synth created it and it still holds the user's file: it stays, and is
    # still synth's folder to remove once empty
    assert "up" in synth.read_manifest(out)["created_folders"]

    # a planned file that exists and was not written by synth: refused, nothing changed
    clash = tmp_path / "clash"
    _make(clash, per_word=1, seed=5)
    planned = sorted(synth.read_manifest(clash)["files"])
    theirs = tmp_path / "theirs"
    (theirs / Path(planned[0]).parent).mkdir(parents=True)
    (theirs / planned[0]).write_bytes(real.read_bytes())
    with pytest.raises(FileExistsError, match=r"were not written by speech synth.*nothing was changed"):
        _make(theirs, per_word=1, seed=5, overwrite=True)
    assert sorted(str(p.relative_to(theirs)) for p in theirs.rglob("*")) == [str(Path(planned[0]).parent), planned[0]]

    # a folder from an older synth (a manifest without a file list): its clips cannot be told from the user's
    old = tmp_path / "old"
    old.mkdir()
    (old / synth.MANIFEST).write_text('{"generator": "speech.synth", "counts": {"yes": 1}}')
    (old / "yes").mkdir()
    (old / "yes" / "me_nohash_0.wav").write_bytes(real.read_bytes())
    with pytest.raises(FileExistsError, match="kept no list of its files"):
        _make(old, per_word=1, overwrite=True)
    assert (old / "yes" / "me_nohash_0.wav").is_file()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="repeated"):
        synth.synthesize_dataset(tmp_path / "a", ["yes", "Yes"], progress=False)
    with pytest.raises(ValueError, match="also keywords"):
        synth.synthesize_dataset(tmp_path / "a", ["yes"], negatives=["no", "yes"], progress=False)
    with pytest.raises(ValueError, match="not a usable word"):
        synth.synthesize_dataset(tmp_path / "a", ["_unknown_"], progress=False)
    assert not (tmp_path / "a").exists()


def test_find_word_segments_and_speaker_ids():
    rate = synth.ESPEAK_RATE
    wave = np.zeros(4 * rate, dtype=np.int16)
    wave[1000:5000] = 3000  # word 1
    wave[5000 + rate // 10 : 9000 + rate // 10] = -2000  # still word 1: a 0.1 s closure is not a word gap
    wave[2 * rate : 2 * rate + 3000] = 1000  # word 2
    assert synth.find_word_segments(wave, 2) == [(1000, 9000 + rate // 10), (2 * rate, 2 * rate + 3000)]
    assert synth.find_word_segments(wave, 3) is None
    assert synth.find_word_segments(np.zeros(100, dtype=np.int16), 1) is None
    assert synth.label_of("Don't  stop") == "dont-stop" and synth.check_words([" Turn On "], "w") == ["turn on"]
    assert synth.speaker_id("en-gb-x-rp+m3") == "en-gb-x-rp-m3"
    assert synth.speaker_id("en-us+Mr_Serious") == "en-us-mr-serious"
    pool = synth.voice_pool()
    assert len(pool) > 300 and "en-us+m3" in pool and "en-gb-scotland+klatt" in pool and "en-us+whisper" in pool
    assert len({synth.speaker_id(v) for v in pool}) == len(pool)


def test_coloured_noise_spectra():
    rng = np.random.default_rng(0)
    for colour, low_share in (("white", (0.0, 0.05)), ("pink", (0.1, 0.9)), ("brown", (0.9, 1.0))):
        noise = coloured_noise(rng, 16_000, colour)
        assert noise.dtype == np.float32 and abs(float(np.sqrt(np.mean(noise**2))) - 1.0) < 1e-4
        power = np.abs(np.fft.rfft(noise)) ** 2
        share = power[1:200].sum() / power[1:].sum()  # energy below 200 Hz
        assert low_share[0] <= share <= low_share[1], (colour, share)


def test_data_layer_reads_the_set(dataset):
    from speech.data.index import build_index  # a core module: broken, it must fail here, not skip
    from speech.data.splits import SplitSettings

    out, _ = dataset
    index = build_index(out, labels=["_silence_", "_unknown_", *WORDS], split=SplitSettings("speaker", seed=0))
    counts = {label: sum(index.label_counts(split)[label] for split in index.splits) for label in index.labels}
    assert counts == {label: PER_WORD for label in index.labels}
    every = [e for split in index.splits.values() for e in split]
    unknown_words = {e.word for e in every if index.labels[e.label] == "_unknown_"}
    assert unknown_words and unknown_words <= set(synth.DEFAULT_NEGATIVES)
    seen = [index.speakers(split) for split in ("training", "validation", "testing")]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])


def test_default_labels_of_a_synth_folder_are_its_keywords_and_rejection_classes(dataset):
    """The own-keywords recipe: 'auto' (the default) and 'all' give the keywords + _unknown_ + _silence_, never
    one class per negative word."""
    from speech.data.index import build_index
    from speech.data.splits import SplitSettings

    out, _ = dataset
    for spec in ("auto", "all"):
        index = build_index(out, spec, split=SplitSettings("speaker", seed=0))
        assert index.labels == ["_silence_", "_unknown_", "no", "up", "yes"], spec
        assert not set(index.labels) & set(synth.DEFAULT_NEGATIVES)
