"""Mixup of training examples (Zhang et al. 2018), for the module's training step.

Each example ``i`` is mixed with a partner ``perm[i]`` of the same batch: ``lam * a + (1 - lam) * b`` with ``lam``
drawn from Beta(alpha, alpha) per example, and the loss is mixed with the same weights. With teachers
(:mod:`speech.training.distillation`) the teachers score the mixed waveform too, so the student matches their function on
inputs between the training examples ("function matching", Beyer et al. 2022).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Mix:
    """A drawn mix: partners ``perm`` and the weights ``lam`` ``(batch,)`` of each example's own label."""

    perm: torch.Tensor
    lam: torch.Tensor

    def waves(self, waves: torch.Tensor) -> torch.Tensor:
        lam = self.lam.to(waves.dtype).unsqueeze(1)
        return lam * waves + (1.0 - lam) * waves[self.perm]

    def loss(self, per_example_a: torch.Tensor, per_example_b: torch.Tensor) -> torch.Tensor:
        """Mean of the mixed per-example losses: ``a`` against each example's own label, ``b`` its partner's."""
        return (self.lam * per_example_a + (1.0 - self.lam) * per_example_b).mean()

    def labels(self, labels: torch.Tensor) -> torch.Tensor:
        """The label that weighs more in each mixed example (for the training accuracy)."""
        return torch.where(self.lam >= 0.5, labels, labels[self.perm])


def draw_mix(batch: int, alpha: float, device: torch.device) -> Mix:
    """Random partners and Beta(alpha, alpha) weights for a batch of ``batch`` examples."""
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    lam = beta.sample((batch,)).to(device)
    return Mix(torch.randperm(batch, device=device), lam)
