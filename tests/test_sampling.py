"""What an epoch is made of when classes are unequal (speech/data/sampling.py, issue #34)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from speech.data.sampling import (
    StratifiedEpochSampler,
    check_balance,
    class_shares,
    epoch_counts,
    loss_weights,
)
from speech.errors import SettingError

# the training split of cpu-small.yaml with sc-v2-train-4words beside it: _silence_, _unknown_ (running speech
# included), the four words with 1,907 speakers, the six with 107
COUNTS = np.array([209, 1690, 2790, 2710, 2533, 2703, 199, 186, 198, 180, 192, 185])
KEYWORD = np.array([False, False] + [True] * 10)


def test_balance_pulls_keyword_classes_to_the_median_and_keeps_the_others():
    median = np.median(COUNTS[2:])  # 198.5: the six words' middle
    full = class_shares(COUNTS, KEYWORD, 1.0)
    assert full[2:] == pytest.approx(np.full(10, median))
    assert full[:2].tolist() == [209, 1690]  # _silence_ and _unknown_ keep their size
    half = class_shares(COUNTS, KEYWORD, 0.5)
    assert half[2] == pytest.approx(np.sqrt(2790 * median))  # the geometric middle of own size and median
    assert class_shares(COUNTS, KEYWORD, 0.0).tolist() == COUNTS.tolist()
    # the non-keyword share of the epoch is what it was before the four words grew (~44 %)
    assert full[:2].sum() / full.sum() == pytest.approx((209 + 1690) / (209 + 1690 + 10 * median))


def test_epoch_counts_sum_exactly_and_follow_the_shares():
    shares = class_shares(COUNTS, KEYWORD, 1.0)
    counts = epoch_counts(shares, None)
    assert counts.sum() == round(shares.sum())
    assert np.abs(counts - shares).max() < 1
    scaled = epoch_counts(shares, 10_000)
    assert scaled.sum() == 10_000
    assert np.abs(scaled - shares / shares.sum() * 10_000).max() < 1


def test_loss_weights_give_the_natural_epoch_the_balanced_priors():
    shares = class_shares(COUNTS, KEYWORD, 1.0)
    weights = loss_weights(COUNTS, shares)
    effective = weights * COUNTS  # the loss each class carries in an epoch of the clips as they are
    assert effective / effective.sum() == pytest.approx(shares / shares.sum())
    assert (weights * COUNTS).sum() == pytest.approx(COUNTS.sum())  # mean weight per example is 1


def test_sampler_draws_each_class_its_share_and_every_clip_before_any_twice():
    rng = np.random.default_rng(3)
    labels = rng.permutation(np.repeat(np.arange(3), [50, 7, 400]))
    per_class = np.array([20, 20, 20])
    sampler = StratifiedEpochSampler(labels, per_class, batch_size=16, seed=1)
    assert len(sampler) == 4  # 60 examples in batches of 16
    seen: Counter[int] = Counter()
    for epoch in range(10):
        batches = list(sampler)
        assert [len(b) for b in batches] == [16, 16, 16, 12]
        drawn = np.concatenate(batches)
        assert Counter(labels[drawn].tolist()) == {0: 20, 1: 20, 2: 20}
        seen.update(drawn[labels[drawn] == 2].tolist())
        if epoch == 9:  # 200 draws of class 2's 400 clips: 200 distinct clips, none twice
            assert len(seen) == 200 and max(seen.values()) == 1
    # class 1 has 7 clips and 20 draws an epoch: each clip comes 2-3 times, evenly (a cycle per 7 draws)
    small = Counter(np.concatenate(list(StratifiedEpochSampler(labels, per_class, 16, seed=2))).tolist())
    assert sorted({small[i] for i in np.flatnonzero(labels == 1)}) == [2, 3]


def test_sampler_is_seeded_so_ddp_processes_agree():
    labels = np.repeat(np.arange(4), 30)
    a = StratifiedEpochSampler(labels, np.full(4, 10), 8, seed=5)
    b = StratifiedEpochSampler(labels, np.full(4, 10), 8, seed=5)
    for _ in range(3):
        assert list(a) == list(b)
    assert list(StratifiedEpochSampler(labels, np.full(4, 10), 8, seed=6)) != list(
        StratifiedEpochSampler(labels, np.full(4, 10), 8, seed=5))


def test_bad_settings_are_setting_errors():
    for args, text in (((1.5, "sampling", None), "class_balance"), ((0.5, "weights", None), "balance_by"),
                       ((0.5, "loss", 0), "epoch_examples")):
        with pytest.raises(SettingError, match=text):
            check_balance(*args)
    with pytest.raises(ValueError, match="no examples"):
        StratifiedEpochSampler(np.zeros(5, int), np.array([3, 2]), 4)
