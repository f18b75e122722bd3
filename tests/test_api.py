"""The public API (``speech.load`` / ``speech.Model``) and the one metadata schema of both model file kinds."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch
from conftest import LABELS_12, clips_the_model_knows

import speech
from speech.audio.io import load_audio, resample
from speech.model.model_file import (
    META_KEY,
    SCHEMA_VERSION,
    CheckpointError,
    ModelFileError,
    OnnxModelError,
    check_metadata,
    read_checkpoint,
    read_metadata,
    write_section,
)
from speech.runtime.export import export_onnx
from speech.runtime.scorers import OnnxScorer, Scorer, TorchScorer


@pytest.fixture(scope="module")
def onnx_model(tiny_checkpoint, tmp_path_factory):
    return export_onnx(tiny_checkpoint, tmp_path_factory.mktemp("api") / "tiny.onnx")


def test_load_gives_the_same_probabilities_from_ckpt_and_onnx(tiny_checkpoint, onnx_model, sc_v2_clips):
    torch_model, onnx_model = speech.load(tiny_checkpoint), speech.load(onnx_model)
    assert isinstance(torch_model.scorer, TorchScorer) and isinstance(onnx_model.scorer, OnnxScorer)
    assert isinstance(torch_model.scorer, Scorer) and isinstance(onnx_model.scorer, Scorer)
    assert torch_model.labels == onnx_model.labels == LABELS_12 and torch_model.sample_rate == 16000
    path = sc_v2_clips["yes"][0]
    a, b = torch_model.predict(path), onnx_model.predict(path)
    assert list(a) == LABELS_12 and abs(sum(a.values()) - 1.0) < 1e-5
    assert max(abs(a[k] - b[k]) for k in a) < 1e-4
    # a path, the decoded array and the scorer on the same window agree
    wave = load_audio(path)
    assert torch_model.predict(wave) == pytest.approx(a, abs=1e-6)
    np.testing.assert_allclose(torch_model.predict_batch([wave, path])[1], list(a.values()), atol=1e-6)


def test_predict_recognises_known_clips_from_int16_and_other_rates(tiny_checkpoint, sc_v2_clips):
    model = speech.load(tiny_checkpoint)
    for word, path in clips_the_model_knows(tiny_checkpoint, sc_v2_clips, 3):
        wave = load_audio(path)
        assert max(model.predict(wave).items(), key=lambda kv: kv[1])[0] == word
        pcm = np.round(wave * 32767).astype(np.int16)
        assert max(model.predict(pcm).items(), key=lambda kv: kv[1])[0] == word
        at48k = resample(wave, 16000, 48000)
        scores = model.predict(at48k, sample_rate=48000)
        assert max(scores.items(), key=lambda kv: kv[1])[0] == word
        assert max(abs(scores[k] - v) for k, v in model.predict(wave).items()) < 0.05
    with pytest.raises(ValueError, match="mono"):
        model.predict(np.zeros((16000, 2), np.float32))


def test_stream_detects_spoken_words_and_a_short_file(tiny_checkpoint, onnx_model, sc_v2_clips, tmp_path):
    known = clips_the_model_knows(tiny_checkpoint, sc_v2_clips, 2)
    gap = np.zeros(16000, np.float32)
    wave = np.concatenate([gap] + [np.concatenate([load_audio(p), gap]) for _, p in known])
    for model in (speech.load(tiny_checkpoint), speech.load(onnx_model)):
        chunks = (wave[i : i + 1234] for i in range(0, len(wave), 1234))
        found = list(model.stream(chunks, threshold=0.5))
        assert [d.label for d in found] == [w for w, _ in known]
        # one bare 1 s clip (no silence around it) is still detected: the end of input is flushed
        single = list(model.stream([load_audio(known[0][1])], threshold=0.5))
        assert [d.label for d in single] == [known[0][0]]
    # int16 stereo at 44.1 kHz gives the same words
    stereo = np.stack([resample(wave, 16000, 44100)] * 2, axis=1)
    pcm = np.round(stereo * 32767).astype(np.int16)
    found = list(speech.load(onnx_model).stream([pcm[i : i + 4410] for i in range(0, len(pcm), 4410)], 44100, 0.5))
    assert [d.label for d in found] == [w for w, _ in known]


def test_both_file_kinds_carry_the_same_checked_schema(tiny_checkpoint, onnx_model, tmp_path):
    ckpt_meta, onnx_meta = read_metadata(tiny_checkpoint), read_metadata(onnx_model)
    assert ckpt_meta["schema"] == onnx_meta["schema"] == "speech-model"
    assert ckpt_meta["version"] == onnx_meta["version"] == SCHEMA_VERSION
    shared = set(ckpt_meta) - {"torch_version"}
    assert shared <= set(onnx_meta) and set(onnx_meta) - set(ckpt_meta) == {"onnx"}
    for key in shared:
        assert ckpt_meta[key] == onnx_meta[key], key
    # a section written into either file kind is read back, the rest untouched
    for model in (tiny_checkpoint, onnx_model):
        out = write_section(model, "detection", {"thresholds": {"yes": 0.6}}, tmp_path / f"det{model.suffix}")
        meta = read_metadata(out)
        assert meta["detection"] == {"thresholds": {"yes": 0.6}} and meta["labels"] == LABELS_12
        assert speech.load(out).predict(np.zeros(16000, np.float32)) == pytest.approx(
            speech.load(model).predict(np.zeros(16000, np.float32)), abs=1e-6
        )
        with pytest.raises(FileExistsError):
            write_section(model, "detection", None, out)


def test_schema_check_names_the_file_and_upgrades_version_1(tiny_checkpoint, tmp_path):
    meta = read_metadata(tiny_checkpoint)
    legacy = {k: v for k, v in meta.items() if k not in ("schema", "version", "normaliser")} | {"format": 1}
    assert check_metadata(legacy, "old.ckpt", needs_normaliser=False)["version"] == SCHEMA_VERSION
    with pytest.raises(ModelFileError, match=r"m\.onnx: 'normaliser'"):
        check_metadata(legacy, "m.onnx")
    with pytest.raises(ModelFileError, match=r"new\.ckpt: written with metadata version 4 by a newer speech"):
        check_metadata({**meta, "version": 4}, "new.ckpt")
    with pytest.raises(ModelFileError, match=r"x\.ckpt: 'labels' must be"):
        check_metadata({**meta, "labels": []}, "x.ckpt")
    with pytest.raises(ModelFileError, match=r"x\.ckpt: repeated labels"):
        check_metadata({**meta, "labels": ["a", "a"]}, "x.ckpt")
    # a checkpoint from a newer speech is refused on load, by the public API too
    ckpt = read_checkpoint(tiny_checkpoint)
    ckpt[META_KEY] = {**ckpt[META_KEY], "version": SCHEMA_VERSION + 1}
    torch.save(ckpt, tmp_path / "newer.ckpt")
    with pytest.raises(CheckpointError, match="newer.ckpt: written with metadata version"):
        speech.load(tmp_path / "newer.ckpt")


def test_onnx_file_with_a_newer_schema_is_refused(onnx_model, tmp_path):
    proto = onnx.load(str(onnx_model))
    entry = next(p for p in proto.metadata_props if p.key == META_KEY)
    entry.value = json.dumps({**json.loads(entry.value), "version": SCHEMA_VERSION + 1})
    onnx.save(proto, str(tmp_path / "newer.onnx"))
    with pytest.raises(OnnxModelError, match="newer.onnx: written with metadata version"):
        speech.load(tmp_path / "newer.onnx")
    sf.write(tmp_path / "clip.onnx", np.zeros(1600, np.float32), 16000, format="WAV")
    with pytest.raises(OnnxModelError, match="clip.onnx: not a valid ONNX model"):
        speech.load(tmp_path / "clip.onnx")
