"""The BiGRU classifier: shapes for every option, parameter budget, bad settings."""

from __future__ import annotations

import pytest
import torch
from conftest import LABELS_12

from speech.model import BiGRUClassifier, ClassifierConfig
from speech.recogniser import Recogniser


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
@pytest.mark.parametrize("input_layer", ["none", "linear", "conv"])
def test_classifier_output_shape(pooling, input_layer):
    model = BiGRUClassifier(40, 12, ClassifierConfig(hidden_size=32, pooling=pooling, input_layer=input_layer))
    logits = model(torch.randn(3, 97, 40))
    assert logits.shape == (3, 12)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_window_mean_ignores_a_fixed_colouring_of_the_window():
    """With ``window_mean`` a constant added to every frame of a coefficient (a microphone's fixed colouring, or
    a louder voice in c0) leaves the scores unchanged; without it, it does not."""
    torch.manual_seed(0)
    feats, colouring = torch.randn(2, 97, 40), torch.randn(1, 1, 40)
    for window_mean in (True, False):
        model = BiGRUClassifier(40, 12, ClassifierConfig(hidden_size=32, window_mean=window_mean)).eval()
        with torch.no_grad():
            change = (model(feats + colouring) - model(feats)).abs().max().item()
        assert (change < 1e-5) if window_mean else (change > 1e-3)


def test_default_model_size_is_in_budget():
    model = Recogniser(LABELS_12)
    assert 250_000 <= model.classifier.num_parameters <= 500_000
    assert model(torch.zeros(2, 16000)).shape == (2, 12)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="pooling must be one of"):
        ClassifierConfig(pooling="max")
    with pytest.raises(ValueError, match="unknown classifier settings"):
        ClassifierConfig.from_dict({"hidden": 3})
