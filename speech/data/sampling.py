"""What an epoch is made of when the classes are unequal (issue #34): class shares and a stratified sampler.

Adding a folder of 1,907 speakers of four words gives those four classes ten times the clips of the other six.
Left as it is, an epoch is 4.3 times longer and the model learns that those four words are what it mostly hears.
:func:`class_shares` says how many examples of each class an epoch should hold:

* ``balance`` (alpha, 0..1) pulls each keyword class from its own size ``n`` towards the median keyword class
  ``m``: ``n ** (1 - alpha) * m ** alpha``. 0 keeps the sizes; 1 makes every keyword class as large as the median
  one. ``_silence_`` and ``_unknown_`` (running speech included) keep their own size, so the share of non-keyword
  speech the recipe was tuned with stays as it was;
* ``epoch_examples`` scales the shares to that many examples an epoch (default: their sum).

:class:`StratifiedEpochSampler` draws each class's share from a shuffled cycle through its clips (every clip of a
big class is heard in turn across epochs, none twice before all were heard once) and shuffles the epoch. The
other way to the same priors, ``balance_by: loss``, keeps the examples' own frequencies and weighs each class's
loss by ``target / size`` instead (:func:`loss_weights`).
"""

from __future__ import annotations

import math

import numpy as np

from speech.errors import SettingError

BALANCE_BY = ("sampling", "loss")


def check_balance(balance: float, balance_by: str, epoch_examples: int | None) -> None:
    """:class:`SettingError` for a balance outside [0, 1], an unknown ``balance_by`` or an epoch of < 1 example."""
    if not 0.0 <= balance <= 1.0:
        raise SettingError(f"class_balance must be in [0, 1] (0: the classes' own sizes, 1: every keyword class as "
                           f"large as the median one), got {balance}", param="class_balance")
    if balance_by not in BALANCE_BY:
        raise SettingError(f"balance_by must be one of {BALANCE_BY}, got {balance_by!r}", param="balance_by")
    if epoch_examples is not None and epoch_examples < 1:
        raise SettingError(f"epoch_examples must be 1 or more (or null: the balanced classes' sum), got "
                           f"{epoch_examples}", param="epoch_examples")


def class_shares(counts: np.ndarray, keyword: np.ndarray, balance: float) -> np.ndarray:
    """Examples per class of a balanced epoch (floats, before scaling): keyword classes (``keyword[c]`` True, with
    clips) pulled towards the median keyword class by ``balance``; the others as they are. ``counts``: clips per
    class."""
    counts = np.asarray(counts, dtype=np.float64)
    keyword = np.asarray(keyword, dtype=bool) & (counts > 0)
    shares = counts.copy()
    if keyword.any() and balance > 0:
        median = float(np.median(counts[keyword]))
        shares[keyword] = counts[keyword] ** (1.0 - balance) * median**balance
    return shares


def epoch_counts(shares: np.ndarray, epoch_examples: int | None) -> np.ndarray:
    """Integer examples per class summing to ``epoch_examples`` (default: the rounded sum of ``shares``), in
    proportion to ``shares`` (largest remainders get the leftover examples)."""
    shares = np.asarray(shares, dtype=np.float64)
    total = int(round(shares.sum())) if epoch_examples is None else int(epoch_examples)
    exact = shares / shares.sum() * total
    counts = np.floor(exact).astype(np.int64)
    left = total - int(counts.sum())
    if left > 0:
        counts[np.argsort(-(exact - counts), kind="stable")[:left]] += 1
    return counts


def loss_weights(counts: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Per-class loss weights that give an epoch of the classes' own frequencies the priors of ``shares``:
    ``shares / counts``, scaled so the mean weight over the examples is 1 (0 for a class without clips)."""
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.divide(shares, counts, out=np.zeros_like(counts), where=counts > 0)
    return weights * counts.sum() / float((weights * counts).sum())


class StratifiedEpochSampler:
    """Batches of indices (for a ``DataLoader`` with ``batch_size=None``): ``per_class[c]`` examples of class ``c``
    an epoch, each class drawn from a shuffled cycle through its examples, the epoch shuffled and cut into batches
    of ``batch_size`` (the last may be shorter). Seeded: every process of a DDP run draws the same epochs."""

    def __init__(self, labels: np.ndarray, per_class: np.ndarray, batch_size: int, seed: int = 0) -> None:
        labels = np.asarray(labels)
        self.per_class = np.asarray(per_class, dtype=np.int64)
        self.pools = [np.flatnonzero(labels == c) for c in range(len(self.per_class))]
        empty = [c for c, pool in enumerate(self.pools) if not len(pool) and self.per_class[c] > 0]
        if empty:
            raise ValueError(f"classes {empty} have no examples to draw")
        self.batch_size = int(batch_size)
        self.rng = np.random.default_rng(seed)
        self.cycles = [self.rng.permutation(pool) for pool in self.pools]
        self.positions = [0] * len(self.pools)

    @property
    def epoch_examples(self) -> int:
        return int(self.per_class.sum())

    def _take(self, c: int, count: int) -> np.ndarray:
        taken = []
        while count > 0:
            if self.positions[c] == len(self.cycles[c]):
                self.cycles[c], self.positions[c] = self.rng.permutation(self.pools[c]), 0
            part = self.cycles[c][self.positions[c] : self.positions[c] + count]
            self.positions[c] += len(part)
            count -= len(part)
            taken.append(part)
        return np.concatenate(taken) if taken else np.zeros(0, np.int64)

    def __iter__(self):
        epoch = np.concatenate([self._take(c, int(n)) for c, n in enumerate(self.per_class)])
        self.rng.shuffle(epoch)
        for start in range(0, len(epoch), self.batch_size):
            yield epoch[start : start + self.batch_size].tolist()

    def __len__(self) -> int:
        return math.ceil(self.epoch_examples / self.batch_size)
