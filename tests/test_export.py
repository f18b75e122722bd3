"""ONNX export: ONNX Runtime equals PyTorch on real clips, the file carries its metadata, every GRU variant exports."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from conftest import LABELS_12

from speech.audio.io import load_audio
from speech.classifiers import settings_dict
from speech.classifiers.recurrent import INPUT_LAYERS, POOLINGS, RecurrentConfig
from speech.cli import main
from speech.model.checkpoint import load_recogniser
from speech.model.model_file import OnnxModelError
from speech.model.recogniser import Recogniser
from speech.runtime.export import export_onnx
from speech.runtime.scorers import OnnxScorer, TorchScorer, load_scorer

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def real_waves(sc_v2_clips) -> np.ndarray:
    """24 real clips, two per label, float32 (24, 16000)."""
    return np.stack([load_audio(p) for label in LABELS_12 for p in sc_v2_clips[label][:2]])


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    assert main(["export", str(tiny_checkpoint), "--onnx", str(path)]) == 0
    return path


def test_onnx_scores_equal_pytorch_on_real_clips(tiny_checkpoint, exported, real_waves):
    torch_scorer = TorchScorer(load_recogniser(tiny_checkpoint))
    onnx_scorer = load_scorer(exported)
    assert isinstance(onnx_scorer, OnnxScorer) and onnx_scorer.backend == "onnx"
    assert onnx_scorer.labels == torch_scorer.labels == LABELS_12
    assert onnx_scorer.num_parameters == torch_scorer.num_parameters
    for batch in (real_waves[:1], real_waves[5:6], real_waves):  # batch 1 and 24
        expected = torch_scorer.scores(batch)
        got = onnx_scorer.scores(batch)
        assert got.shape == expected.shape == (len(batch), 12) and got.dtype == np.float32
        assert np.abs(got - expected).max() < TOLERANCE
        assert (got.argmax(1) == expected.argmax(1)).all()
        feats = torch_scorer.features(batch)
        # the ONNX back end computes the features in NumPy (speech.frontend.mfcc), the checkpoint in torch: same normaliser
        assert np.abs(onnx_scorer.features(batch) - feats).max() < 1e-4
        assert (
            np.abs(onnx_scorer.scores_from_features(feats) - torch_scorer.scores_from_features(feats)).max()
            < TOLERANCE
        )
    # the trained model is confident on some clips, so the comparison is not between two flat distributions
    assert torch_scorer.scores(real_waves).max() > 0.5


def test_onnx_file_carries_labels_frontend_and_normaliser(tiny_checkpoint, exported):
    recogniser = load_recogniser(tiny_checkpoint)
    model = onnx.load(str(exported))
    props = {p.key: p.value for p in model.metadata_props}
    meta = json.loads(props["speech"])
    assert meta["labels"] == LABELS_12 == json.loads(props["labels"])
    assert meta["frontend"] == recogniser.frontend.config.to_dict()
    assert meta["classifier"] == settings_dict(recogniser.classifier.config)
    np.testing.assert_array_equal(np.float32(meta["normaliser"]["mean"]), recogniser.frontend.mean.numpy())
    np.testing.assert_array_equal(np.float32(meta["normaliser"]["std"]), recogniser.frontend.std.numpy())
    assert meta["normaliser"]["fitted"] is True and not np.allclose(meta["normaliser"]["std"], 1.0)
    # dynamic batch (and frame) axes, native GRU operator
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[2].dim_value == 40
    assert any(node.op_type == "GRU" for node in model.graph.node)
    # the scorer rebuilt the (NumPy) front end from that metadata alone
    scorer = OnnxScorer(exported)
    assert scorer.frontend.config == recogniser.frontend.config
    np.testing.assert_array_equal(scorer.frontend.mean.astype(np.float32), recogniser.frontend.mean.numpy())
    np.testing.assert_array_equal(scorer.frontend.std.astype(np.float32), recogniser.frontend.std.numpy())


def test_export_refuses_to_overwrite(tiny_checkpoint, exported, capsys):
    before = exported.read_bytes()
    assert main(["export", str(tiny_checkpoint), "--onnx", str(exported)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert exported.read_bytes() == before
    assert (
        main(["export", str(tiny_checkpoint), "--onnx", str(exported), "--overwrite", "--opset", "18"]) == 0
    )
    assert onnx.load(str(exported)).opset_import[0].version == 18
    with pytest.raises(FileExistsError):
        export_onnx(tiny_checkpoint, exported)
    with pytest.raises(ValueError, match=r"\.onnx"):
        export_onnx(tiny_checkpoint, exported.with_suffix(".bin"))


def test_export_of_the_packaged_name_says_it_is_already_onnx(tmp_path, capsys):
    """``speech export commands``: the packaged model is named, not 'no such checkpoint file'."""
    assert main(["export", "commands", "--onnx", str(tmp_path / "out.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "commands: the packaged model, already an ONNX file" in err, err
    assert "takes a training checkpoint (.ckpt)" in err and not (tmp_path / "out.onnx").exists()


VARIANTS = (
    [(pooling, layer, 1, False) for pooling in POOLINGS for layer in INPUT_LAYERS]
    + [(pooling, "conv", 2, False) for pooling in POOLINGS]
    + [("attention", "conv", 2, True)]
)


@pytest.mark.parametrize(("pooling", "input_layer", "stride", "window_mean"), VARIANTS)
def test_every_gru_variant_exports_exactly(pooling, input_layer, stride, window_mean, real_waves, tmp_path):
    torch.manual_seed(VARIANTS.index((pooling, input_layer, stride, window_mean)))
    config = RecurrentConfig(
        window_mean=window_mean,
        hidden_size=24,
        num_layers=2,
        input_channels=16,
        pooling=pooling,
        input_layer=input_layer,
        input_stride=stride,
    )
    model = Recogniser(LABELS_12, classifier=config)
    model.frontend.fit_normaliser(torch.from_numpy(real_waves))
    with torch.no_grad():  # make BatchNorm's running statistics non-trivial
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    model.eval()
    path = export_onnx(model, tmp_path / "m.onnx")
    scorer, reference = OnnxScorer(path), TorchScorer(model)
    for batch in (real_waves[:1], real_waves[:7]):
        assert np.abs(scorer.scores(batch) - reference.scores(batch)).max() < TOLERANCE
    feats = reference.features(real_waves[:3])[
        :, :61
    ]  # another number of frames: the time axis is dynamic too
    assert (
        np.abs(scorer.scores_from_features(feats) - reference.scores_from_features(feats)).max() < TOLERANCE
    )


def test_scores_from_features_checks_its_input(exported):
    scorer = OnnxScorer(exported, intra_op_threads=2)
    with pytest.raises(ValueError, match=r"\(batch, frames, 40\)"):
        scorer.scores_from_features(np.zeros((2, 97, 13), np.float32))
    with pytest.raises(ValueError, match="expected features"):
        scorer.scores_from_features(np.zeros((97, 40), np.float32))


def test_onnx_without_our_metadata_is_refused(tiny_checkpoint, exported, tmp_path):
    model = onnx.load(str(exported))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(OnnxModelError, match="bare.onnx.*metadata"):
        OnnxScorer(bare)
