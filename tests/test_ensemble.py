"""Ensembles (speech.model.ensemble): several checkpoints exported as one ONNX model that averages their probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import LABELS_12

from speech.audio.io import load_audio
from speech.cli import main
from speech.data.record import DataRecord
from speech.model.checkpoint import load_recogniser, save_checkpoint
from speech.model.ensemble import EnsembleError, build_ensemble, merge_records
from speech.model.model_file import read_metadata
from speech.runtime.scorers import OnnxScorer, TorchScorer
from speech.streaming import StreamingConfig, StreamingRecogniser

TOLERANCE = 1e-4


def record(speakers: list[str], **changes) -> dict:
    values = dict(root="/data/sc", layout="full", labels="12", split_rule="speaker", split_method="speaker",
                  validation_percent=20.0, testing_percent=0.0, silence_percent=10.0, unknown_percent=10.0, seed=0,
                  training_speakers=speakers, speakers={"training": len(speakers), "validation": 5})
    values.update(changes)
    return DataRecord.from_dict(values).to_dict()


@pytest.fixture(scope="module")
def second_member(tiny_checkpoint, sc_v2_clips, tmp_path_factory):
    """A different model of the same shape: the tiny model's classifier with perturbed weights, and a feature
    normaliser fitted on other clips (so the ensemble has to map one normalisation onto the other), with a
    training record."""
    model = load_recogniser(tiny_checkpoint)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.classifier.parameters():
            p.add_(0.05 * torch.randn_like(p))
    waves = torch.from_numpy(np.stack([load_audio(p) for label in LABELS_12 for p in sc_v2_clips[label][-8:]]))
    model.frontend.fit_normaliser(waves)
    model.sections = {"detection": {"thresholds": {"yes": 0.8}}}
    return save_checkpoint(model, tmp_path_factory.mktemp("member") / "member2.ckpt")


@pytest.fixture(scope="module")
def ensemble_onnx(tiny_checkpoint, second_member, tmp_path_factory):
    path = tmp_path_factory.mktemp("ensemble") / "ensemble.onnx"
    assert main(["export", str(tiny_checkpoint), str(second_member), "--onnx", str(path)]) == 0
    return path


def test_ensemble_onnx_is_the_mean_of_its_members_on_real_clips(tiny_checkpoint, second_member, ensemble_onnx,
                                                                  sc_v2_clips):
    waves = np.stack([load_audio(p) for label in LABELS_12 for p in sc_v2_clips[label][:3]])
    members = [TorchScorer(load_recogniser(p)) for p in (tiny_checkpoint, second_member)]
    first, second = (m.scores(waves) for m in members)
    assert np.abs(first - second).max() > 0.05  # two different models, each with its own normaliser
    assert not torch.equal(members[0].frontend.mean, members[1].frontend.mean)
    ensemble = OnnxScorer(ensemble_onnx)
    got = ensemble.scores(waves)
    assert got.shape == (len(waves), 12)
    np.testing.assert_allclose(got, (first + second) / 2, atol=TOLERANCE)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert ensemble.num_parameters == sum(m.num_parameters for m in members)


def test_speech_load_takes_an_ensemble(tiny_checkpoint, second_member, ensemble_onnx, sc_v2_clips):
    import speech

    clip = sc_v2_clips["yes"][0]
    got = speech.load(ensemble_onnx).predict(clip)
    members = [speech.load(p).predict(clip) for p in (tiny_checkpoint, second_member)]
    assert list(got) == LABELS_12
    for label in LABELS_12:
        assert abs(got[label] - (members[0][label] + members[1][label]) / 2) < TOLERANCE


def test_ensemble_metadata_names_its_members_and_drops_member_thresholds(tiny_checkpoint, ensemble_onnx):
    meta = read_metadata(ensemble_onnx)
    members = meta["ensemble"]["members"]
    assert [m["file"] for m in members] == [tiny_checkpoint.name, "member2.ckpt"]
    assert meta["labels"] == LABELS_12
    assert "detection" not in meta  # member2's calibrated thresholds do not hold for the ensemble


def test_ensemble_runs_in_the_streaming_engine(ensemble_onnx, sc_v2_clips):
    """The streaming engine computes features incrementally with the ensemble's (first member's) front end; its
    per-hop scores equal the ensemble run on the same 1 s windows offline."""
    scorer = OnnxScorer(ensemble_onnx)
    wave = np.concatenate([load_audio(sc_v2_clips[word][0]) for word in ("yes", "stop", "left")])
    hops = []
    engine = StreamingRecogniser(scorer, StreamingConfig(hop_ms=100, gate_db=None, lead_ms=0.0), on_hop=hops.append)
    engine.feed(wave)
    assert len(hops) >= 15
    for hop in hops:
        end = int(round(hop.time * 16000))
        offline = scorer.scores(wave[end - 16000:end][None])[0]
        np.testing.assert_allclose(hop.scores, offline, atol=TOLERANCE)


def test_members_must_agree(tiny_checkpoint, tmp_path, capsys):
    from speech.classifiers.recurrent import RecurrentConfig
    from speech.model.recogniser import Recogniser

    other = Recogniser(list(reversed(LABELS_12)), classifier=RecurrentConfig(hidden_size=16, num_layers=1))
    path = save_checkpoint(other, tmp_path / "other-labels.ckpt")
    out = tmp_path / "never.onnx"
    assert main(["export", str(tiny_checkpoint), str(path), "--onnx", str(out)]) == 2
    err = capsys.readouterr().err
    assert "other-labels.ckpt" in err and "labels" in err and not out.exists()
    with pytest.raises(EnsembleError, match="at least two"):
        build_ensemble([load_recogniser(tiny_checkpoint)])
    ensemble = build_ensemble([load_recogniser(tiny_checkpoint), load_recogniser(tiny_checkpoint)])
    with pytest.raises(ValueError, match="stored as ONNX"):
        save_checkpoint(ensemble, tmp_path / "ensemble.ckpt")
    assert not (tmp_path / "ensemble.ckpt").exists()


def test_the_data_record_is_the_union_of_the_members_training_speakers():
    merged = DataRecord.from_dict(merge_records([record(["a", "b"]), record(["b", "c"])], ["m1.ckpt", "m2.ckpt"]))
    assert merged.training_speakers == ["a", "b", "c"]
    assert merged.speakers["training"] == 3 and merged.speakers["validation"] == 5
    assert merge_records([None, None], ["m1", "m2"]) is None
    with pytest.raises(EnsembleError, match="m2.ckpt: trained with seed 1"):
        merge_records([record(["a"]), record(["a"], seed=1)], ["m1.ckpt", "m2.ckpt"])
    with pytest.raises(EnsembleError, match="m2.ckpt: carries no record"):
        merge_records([record(["a"]), None], ["m1.ckpt", "m2.ckpt"])
