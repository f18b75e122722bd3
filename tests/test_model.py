"""The BiGRU classifier: shapes for every option, parameter budget, bad settings."""

from __future__ import annotations

import pytest
import torch
from conftest import LABELS_12

from speech.classifiers import classifier_settings
from speech.classifiers.recurrent import RecurrentClassifier, RecurrentConfig
from speech.model.recogniser import Recogniser


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
@pytest.mark.parametrize("input_layer", ["none", "linear", "conv"])
def test_classifier_output_shape(pooling, input_layer):
    torch.manual_seed(0)
    model = RecurrentClassifier(40, 12, RecurrentConfig(hidden_size=32, pooling=pooling, input_layer=input_layer)).eval()
    feats = torch.randn(3, 97, 40)
    logits = model(feats)
    assert logits.shape == (3, 12) and torch.isfinite(logits).all()
    # each example is scored on its own: alone it gets the logits it got in the batch
    with torch.no_grad():
        assert torch.allclose(model(feats[1:2])[0], logits[1], atol=1e-5)
    logits.sum().backward()
    # every weight takes part: each has a finite gradient that is not zero
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_window_mean_ignores_a_fixed_colouring_of_the_window():
    """With ``window_mean`` a constant added to every frame of a coefficient (a microphone's fixed colouring, or
    a louder voice in c0) leaves the scores unchanged; without it, it does not."""
    torch.manual_seed(0)
    feats, colouring = torch.randn(2, 97, 40), torch.randn(1, 1, 40)
    for window_mean in (True, False):
        model = RecurrentClassifier(40, 12, RecurrentConfig(hidden_size=32, window_mean=window_mean)).eval()
        with torch.no_grad():
            change = (model(feats + colouring) - model(feats)).abs().max().item()
        assert (change < 1e-5) if window_mean else (change > 1e-3)


def test_default_model_size_is_the_readmes():
    model = Recogniser(LABELS_12)
    counted = sum(p.numel() for p in model.classifier.parameters())
    assert model.classifier.num_parameters == counted == 471_696  # README, "Train" and "Run a model anywhere"
    assert model(torch.zeros(2, 16000)).shape == (2, 12)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="pooling must be one of"):
        RecurrentConfig(pooling="max")
    with pytest.raises(ValueError, match=r"unknown recurrent classifier settings \['hidden'\]; expected some of"):
        classifier_settings({"hidden": 3})
    with pytest.raises(ValueError, match="unknown classifier kind 'tcn'; known kinds: recurrent"):
        classifier_settings({"kind": "tcn"})
    with pytest.raises(ValueError, match="cell must be one of"):
        classifier_settings({"cell": "transformer"})
