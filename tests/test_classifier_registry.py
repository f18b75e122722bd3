"""The classifier registry (issue #35): a new kind is one file plus its line in ``speech.classifiers.KINDS``; the
kind and its settings travel in the model files; files without a kind are today's bidirectional GRU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import LABELS_12, train_args

from speech.classifiers import KINDS, classifier_settings, settings_dict
from speech.cli.train import main as train_main
from speech.errors import SettingError
from speech.model.checkpoint import load_recogniser, save_checkpoint
from speech.model.model_file import META_KEY, ModelFileError, read_checkpoint, read_metadata
from speech.model.recogniser import Recogniser
from speech.models import DEFAULT_MODEL, packaged_path
from speech.runtime.export import export_onnx
from speech.runtime.scorers import OnnxScorer, TorchScorer
from speech.streaming import StreamingConfig, StreamingRecogniser
from speech.training.module import KeywordModule

# A whole new kind, as a user would write it in speech/classifiers/meanlinear.py: nothing else changes but KINDS.
MEAN_LINEAR = '''
from dataclasses import dataclass

from torch import nn


@dataclass
class MeanLinearConfig:
    width: int = 16

    kind = "meanlinear"


class MeanLinear(nn.Module):
    """Mean of the frames, then a small MLP."""

    def __init__(self, n_inputs, n_classes, config=None):
        super().__init__()
        self.config = config or MeanLinearConfig()
        self.net = nn.Sequential(nn.Linear(n_inputs, self.config.width), nn.ReLU(), nn.Linear(self.config.width, n_classes))

    @property
    def num_parameters(self):
        return sum(p.numel() for p in self.parameters())

    def forward(self, feats):
        return self.net(feats.mean(dim=1))


SETTINGS, NETWORK = MeanLinearConfig, MeanLinear
'''


@pytest.fixture
def mean_linear(tmp_path, monkeypatch) -> str:
    (tmp_path / "meanlinear_kind.py").write_text(MEAN_LINEAR)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(KINDS, "meanlinear", "meanlinear_kind")
    return "meanlinear"


def test_a_new_kind_is_one_file_and_its_registration(mean_linear, tmp_path, small_tree, cache_dir):
    torch.manual_seed(0)
    model = Recogniser(LABELS_12, classifier={"kind": mean_linear, "width": 8}).eval()
    assert model.settings()["classifier"] == {"kind": "meanlinear", "width": 8}
    assert model.classifier.num_parameters == 40 * 8 + 8 + 8 * 12 + 12
    waves = torch.from_numpy(np.random.default_rng(0).standard_normal((3, 16000)).astype(np.float32) * 0.1)
    reference = torch.softmax(model(waves), dim=-1).detach().numpy()
    ckpt = save_checkpoint(model, tmp_path / "m.ckpt")  # the kind travels in the checkpoint ...
    assert read_checkpoint(ckpt)[META_KEY]["classifier"]["kind"] == "meanlinear"
    np.testing.assert_allclose(TorchScorer(load_recogniser(ckpt)).scores(waves.numpy()), reference, atol=1e-6)
    onnx = export_onnx(ckpt, tmp_path / "m.onnx")  # ... and in the export, which runs without torch's help
    assert read_metadata(onnx)["classifier"] == {"kind": "meanlinear", "width": 8}
    np.testing.assert_allclose(OnnxScorer(onnx).scores(waves.numpy()), reference, atol=1e-5)
    # the command line trains it: the kind and its settings from --model.classifier.*
    runs = tmp_path / "runs"
    code = train_main([*train_args(small_tree, runs, cache_dir, "--trainer.max_epochs", "1"),
                       "--model.classifier", json.dumps({"kind": "meanlinear", "width": "12"})])
    assert code == 0
    best = sorted((runs / "test" / "version_0" / "checkpoints").glob("best-*.ckpt"))
    assert best and read_checkpoint(best[0])[META_KEY]["classifier"] == {"kind": "meanlinear", "width": 12}


def test_what_a_kind_cannot_serve_is_refused_in_one_line(mean_linear, tmp_path):
    # CTC pretraining needs the recurrent encoder
    with pytest.raises(SettingError, match="CTC pretraining serves the recurrent classifier only, not the model's "
                                           "'meanlinear' kind"):
        KeywordModule(labels=LABELS_12, classifier={"kind": mean_linear}, encoder=str(tmp_path / "encoder.pt"))
    # the stateful stream mode needs a unidirectional recurrent network pooled by its last state or attention
    scorer = TorchScorer(Recogniser(LABELS_12, classifier={"kind": mean_linear}))
    with pytest.raises(SettingError, match="the stateful stream mode needs a unidirectional model"):
        StreamingRecogniser(scorer, StreamingConfig(stateful=True))


def test_unknown_kinds_name_the_known_ones_and_the_version_that_reads_the_file(mean_linear, tmp_path, monkeypatch):
    with pytest.raises(SettingError, match=r"unknown classifier kind 'tcn'; known kinds: meanlinear, recurrent"):
        KeywordModule(labels=LABELS_12, classifier={"kind": "tcn"})
    with pytest.raises(SettingError, match=r"unknown meanlinear classifier settings \['hidden_size'\]"):
        KeywordModule(labels=LABELS_12, classifier={"kind": mean_linear, "hidden_size": 3})
    ckpt = save_checkpoint(Recogniser(LABELS_12, classifier={"kind": mean_linear}), tmp_path / "m.ckpt")
    onnx = export_onnx(ckpt, tmp_path / "m.onnx")
    payload = torch.load(ckpt, weights_only=True)
    payload[META_KEY]["speech_version"] = "9.1.0"
    torch.save(payload, tmp_path / "newer.ckpt")
    monkeypatch.delitem(KINDS, "meanlinear")  # this speech no longer knows the kind
    with pytest.raises(ModelFileError, match=r"newer\.ckpt: a 'meanlinear' classifier, which this speech \S+ cannot "
                                             r"run \(it knows recurrent\); the file was written by speech 9\.1\.0"):
        load_recogniser(tmp_path / "newer.ckpt")
    with pytest.raises(ModelFileError, match=r"m\.onnx: a 'meanlinear' classifier"):
        OnnxScorer(onnx)


def test_files_without_a_kind_are_the_bidirectional_gru(tiny_checkpoint, tmp_path):
    packaged = read_metadata(packaged_path(DEFAULT_MODEL))  # written before the registry (schema version 2)
    assert packaged["classifier"]["kind"] == "recurrent" and packaged["version"] == 3
    settings = classifier_settings(packaged["classifier"])
    assert (settings.cell, settings.bidirectional) == ("gru", True)
    # a checkpoint whose layer is named 'gru.' and whose settings lack kind, cell and direction loads unchanged
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["state_dict"] = {k.replace(".rnn.", ".gru."): v for k, v in payload["state_dict"].items()}
    meta = payload[META_KEY]
    meta["version"] = 2
    meta["classifier"] = {k: v for k, v in meta["classifier"].items() if k not in ("kind", "cell", "bidirectional")}
    torch.save(payload, tmp_path / "old.ckpt")
    old, new = load_recogniser(tmp_path / "old.ckpt"), load_recogniser(tiny_checkpoint)
    assert settings_dict(old.classifier.config) == settings_dict(new.classifier.config)
    waves = torch.zeros(2, 16000)
    torch.testing.assert_close(old(waves), new(waves))


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_every_cell_and_direction_trains_a_step_and_exports_equal(cell, bidirectional, tmp_path):
    torch.manual_seed(0)
    settings = {"cell": cell, "bidirectional": bidirectional, "hidden_size": 16, "input_channels": 8,
                "pooling": "attention" if bidirectional else "last"}
    module = KeywordModule(labels=LABELS_12, classifier=settings)
    classifier = module.recogniser.classifier
    assert isinstance(classifier.rnn, {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "rnn": torch.nn.RNN}[cell])
    assert classifier.rnn.bidirectional is bidirectional
    feats = torch.randn(4, 101, 40)
    loss = torch.nn.functional.cross_entropy(classifier(feats), torch.arange(4))
    loss.backward()
    assert all(p.grad is not None for p in classifier.parameters())
    onnx = export_onnx(module.recogniser.eval(), tmp_path / "m.onnx")  # the export checks |onnx - torch| < 1e-4
    scorer = OnnxScorer(onnx)
    assert scorer.streams is (not bidirectional)  # the unidirectional 'last' model also carries its stream graph
    probs = torch.softmax(classifier(feats[:2]), dim=-1).detach().numpy()
    np.testing.assert_allclose(scorer.scores_from_features(feats[:2].numpy()), probs, atol=1e-4)


def test_train_refuses_unknown_kinds_and_cells_in_one_line(small_tree, cache_dir, tmp_path, capsys):
    cases = {
        "kind": (["--model.classifier.kind", "tcn"], "unknown classifier kind 'tcn'; known kinds: recurrent"),
        "cell": (["--model.classifier.cell", "transformer"], "cell must be one of ('gru', 'lstm', 'rnn'), got "
                                                             "'transformer'"),
        "number": (["--model.classifier.hidden_size", "many"], "hidden_size must be an integer, got 'many'"),
    }
    for what, (extra, expected) in cases.items():
        code = train_main([*train_args(small_tree, tmp_path / "runs", cache_dir,
                                       "--trainer.max_epochs", "1"), *extra])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("speech train: error:")]
        assert code == 2 and len(lines) == 1 and expected in lines[0], (what, err[-1500:])
        assert "Traceback" not in err
