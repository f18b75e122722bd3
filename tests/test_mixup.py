"""``model.mixup_alpha`` (speech/training/mixup.py) on real clips: the mixed waveforms, the mixed loss, and a training step
that uses both, with the vocal-tract warp on."""

from __future__ import annotations

import numpy as np
import torch
from conftest import SC_V2_TEST
from torch import nn

from speech.audio.io import load_audio
from speech.classifiers.recurrent import RecurrentConfig
from speech.frontend.features import SpecAugmentConfig
from speech.training.mixup import Mix, draw_mix
from speech.training.module import KeywordModule

LABELS = ["yes", "no", "up"]


def real_batch() -> tuple[torch.Tensor, torch.Tensor]:
    paths = [p for label in LABELS for p in sorted((SC_V2_TEST / label).glob("*.wav"))[:2]]
    waves = torch.from_numpy(np.stack([load_audio(p) for p in paths]))
    return waves, torch.tensor([LABELS.index(p.parent.name) for p in paths])


def test_a_mix_weighs_waves_losses_and_labels_alike():
    waves, labels = real_batch()
    mix = Mix(perm=torch.tensor([1, 0, 3, 2, 5, 4]), lam=torch.tensor([1.0, 0.0, 0.7, 0.3, 0.5, 0.5]))
    mixed = mix.waves(waves)
    assert torch.equal(mixed[0], waves[0]) and torch.equal(mixed[1], waves[0])  # lam 1 keeps, 0 takes the partner
    torch.testing.assert_close(mixed[2], 0.7 * waves[2] + 0.3 * waves[3])
    assert mix.labels(labels).tolist() == [labels[0], labels[0], labels[2], labels[2], labels[4], labels[5]]
    own, partner = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), torch.zeros(6)
    torch.testing.assert_close(mix.loss(own, partner), (own * mix.lam).mean())
    drawn = draw_mix(1000, 0.4, torch.device("cpu"))
    assert sorted(drawn.perm.tolist()) == list(range(1000))
    assert 0.45 < float(drawn.lam.mean()) < 0.55 and float((drawn.lam < 0.1).float().mean()) > 0.2  # Beta(0.4, 0.4)


def test_the_training_step_mixes_waves_and_loss(monkeypatch):
    waves, labels = real_batch()
    module = KeywordModule(labels=LABELS, classifier=RecurrentConfig(hidden_size=8, num_layers=1, input_channels=8),
                           spec_augment=SpecAugmentConfig(freq_masks=0, time_masks=0, vtlp=0.1), mixup_alpha=0.4)
    module.recogniser.frontend.fit_normaliser(waves)
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    module.train()
    torch.manual_seed(3)
    loss = module.training_step((waves, labels), 0)
    torch.manual_seed(3)  # the same draws by hand: the mix, then the warp
    mix = draw_mix(len(labels), 0.4, waves.device)
    warp = module.spec_augment.warp_factors(len(labels), waves.device)
    assert warp is not None and not torch.allclose(warp, torch.ones(len(labels)))
    logits = module.recogniser.classifier(module.recogniser.frontend(mix.waves(waves), warp))
    per_label = [nn.functional.cross_entropy(logits, t, reduction="none", label_smoothing=0.1)
                 for t in (labels, labels[mix.perm])]
    torch.testing.assert_close(loss, mix.loss(*per_label))
    assert not torch.allclose(loss, nn.functional.cross_entropy(logits, labels, label_smoothing=0.1))
