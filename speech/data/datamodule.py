"""LightningDataModule over the data layer: cached int16 waveforms in, augmented float batches out.

The DataLoader only slices the memory-mapped waveform cache (whole batches at a time, no per-clip
decoding); the batch is moved to the accelerator as int16 and augmented there
(:meth:`on_after_batch_transfer`), and the model's front end computes MFCC on the device.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from speech.audio.io import CLIP_SAMPLES, pcm_to_float
from speech.data import CachedSplit, DatasetIndex, Example, build_index, cached_waveforms, load_noise
from speech.data.augment import AugmentConfig, WaveAugment
from speech.data.cache import default_cache_dir
from speech.data.errors import DatasetError
from speech.data.record import DataRecord
from speech.data.running_windows import RunningSpeechSource
from speech.data.sampling import (
    StratifiedEpochSampler,
    check_balance,
    class_shares,
    epoch_counts,
    loss_weights,
)
from speech.data.sources import ExtraSource, check_disjoint, extra_split, read_extra_source
from speech.data.splits import SPLITS, SplitSettings, keep_speakers
from speech.utils.progress import ProgressCallback

log = logging.getLogger(__name__)

class BatchedWaves(Dataset):
    """Dataset whose items are whole batches: ``dataset[list_of_indices] -> (int16 waves, int64 labels)``."""

    def __init__(self, waves: np.ndarray, labels: np.ndarray) -> None:
        self.waves, self.labels = waves, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        order = np.sort(np.asarray(indices))  # sorted reads are sequential on the memmap
        return torch.from_numpy(np.asarray(self.waves[order])), torch.from_numpy(self.labels[order])


class SpeechCommandsDataModule(L.LightningDataModule):
    """Speech Commands (v0.01/v0.02, 12 or 35 labels) or any ``<label>/*.wav`` folder.

    Args:
        root: data folder in any layout :func:`speech.data.build_index` reads.
        labels: ``"auto"`` (default: the folder's own labels, keywords + ``_unknown_`` + ``_silence_`` for a
            ``speech synth`` folder; the 12 classes for Speech Commands), ``"12"``, ``"35"``, ``"all"``,
            ``"w1,w2,..."`` or a list of labels (see :mod:`speech.data.labels`).
        split_rule: split rule, ``"auto"`` (official lists, else TensorFlow's hash), ``"lists"``, ``"hash"`` or
            ``"speaker"`` (seeded speaker-disjoint split; use it for the official test-set layout).
        validation_percent, testing_percent: split sizes in percent (hash and speaker rules).
        silence_percent, unknown_percent: ``_silence_``/``_unknown_`` examples added per split, in percent of
            the split's keyword examples (full and folder layouts).
        split_seed: seed of the split, of the ``_unknown_``/``_silence_`` sampling and of the noise generator.
        training_speakers_percent: the share of the training split's speakers trained on (whole speakers, seeded
            by ``split_seed``; 100: all), to measure how the figures grow with speakers. The rest is not used.
        extra_roots: more folders (more speakers of some words, synthetic speech, ...) read with their own label
            folders (:mod:`speech.data.sources`). Each is split by speaker with ``extra_validation_percent`` and
            ``extra_testing_percent`` (seeded by ``split_seed``; 0 and 0: every clip trains); its validation and
            test parts join the run's, and it is recorded in the model (folder, fingerprint, split), so
            ``evaluate``/``stream-test`` score its test part and refuse its training speakers. A speaker trained on
            in one folder and held out in another is refused. ``extra_other_words``: its label folders the model
            has no class for become ``_unknown_`` (``"unknown"``) or are left out (``"skip"``).
            ``extra_training_speakers_percent``: the share of its training speakers used (a learning curve).
        class_balance: how an epoch is drawn when the classes are unequal (:mod:`speech.data.sampling`): 0 (default)
            the clips as they are; up to 1, each keyword class's share pulled towards the median keyword class's
            size (``_silence_``/``_unknown_`` keep theirs). ``balance_by``: ``"sampling"`` (each class's share drawn
            from a shuffled cycle through its clips) or ``"loss"`` (the clips' own frequencies, class-weighted loss).
            ``epoch_examples``: examples per epoch (default: the balanced classes' sum; with ``class_balance`` 0,
            every training clip once).
        cache_dir: where decoded-waveform caches live (default ``$SPEECH_CACHE`` or ``~/.cache/speech``).
        batch_size: clips per batch (per device under DDP).
        num_workers: DataLoader workers; batches are memmap slices, so 0-2 are enough.
        augment: training-time waveform augmentation.
        window_samples: the length every clip is decoded to (zero-padded or cropped), the model's window at
            16 kHz; ``speech train`` sets it from ``--model.frontend.window_ms``.
        crop: which part of a clip longer than the window is kept: ``"center"``, ``"start"`` or ``"end"``.
        normaliser_clips: training clips used to fit the feature normaliser.
        running_speech: a LibriSpeech-style folder of running speech (:mod:`speech.data.running_speech`): its
            readers are split into train / calibration / test (seeded by ``running_speech_seed``, recorded in the
            model's data record) and ``running_speech_windows`` windows of the train readers' sentences that
            say none of the keywords are added to training as ``_unknown_`` (they get the clips' augmentation);
            ``running_speech_sentences: all`` cuts them from every sentence of those readers, keywords said inside
            sentences included (a keyword inside a sentence is not a command).
            ``running_speech_hard_negatives``: a ``.npy`` of mined windows (:mod:`speech.evaluation.streams.hard_negatives`) added
            as ``_unknown_`` too, each ``running_speech_hard_negatives_repeat`` times (every copy is augmented anew).
    """

    def __init__(
        self,
        root: str = "data/speech_commands_v0.02",
        labels: str | list[str] = "auto",
        split_rule: str = SplitSettings.rule,
        validation_percent: float = SplitSettings.validation_percent,
        testing_percent: float = SplitSettings.testing_percent,
        silence_percent: float = SplitSettings.silence_percent,
        unknown_percent: float = SplitSettings.unknown_percent,
        split_seed: int = SplitSettings.seed,
        training_speakers_percent: float = 100.0,
        extra_roots: list[str] | None = None,
        extra_validation_percent: float = 0.0,
        extra_testing_percent: float = 0.0,
        extra_other_words: str = "unknown",
        extra_training_speakers_percent: float = 100.0,
        class_balance: float = 0.0,
        balance_by: str = "sampling",
        epoch_examples: int | None = None,
        cache_dir: str | None = None,
        batch_size: int = 256,
        num_workers: int = 1,
        augment: AugmentConfig | None = None,
        window_samples: int = CLIP_SAMPLES,
        crop: str = "center",
        normaliser_clips: int = 4096,
        running_speech: str | None = None,
        running_speech_windows: int = 1500,
        running_speech_seed: int = 0,
        running_speech_hard_negatives: str | None = None,
        running_speech_hard_negatives_repeat: int = 4,
        running_speech_sentences: Literal["keyword_free", "all"] = "keyword_free",
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.label_spec = labels
        # the flat arguments are the command line's (--data.split_rule ... --data.split_seed); one bundle inside
        self.split = SplitSettings(split_rule, validation_percent, testing_percent, silence_percent, unknown_percent,
                                   split_seed)
        self.training_speakers_percent = float(training_speakers_percent)
        keep_speakers([], self.training_speakers_percent)  # refuse a bad share before any scan
        self.extra_roots = [Path(r) for r in (extra_roots or [])]
        self.extra_split = extra_split(extra_validation_percent, extra_testing_percent, split_seed)
        self.extra_other_words = extra_other_words
        self.extra_training_speakers_percent = float(extra_training_speakers_percent)
        keep_speakers([], self.extra_training_speakers_percent)
        check_balance(class_balance, balance_by, epoch_examples)
        self.class_balance, self.balance_by, self.epoch_examples = float(class_balance), balance_by, epoch_examples
        self._extras: list[ExtraSource] | None = None
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.progress: ProgressCallback | bool = True  # cache building: see speech.utils.progress (the CLI draws bars)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.augment_config = augment or AugmentConfig()
        self.window_samples = int(window_samples)
        self.crop = crop
        self.normaliser_clips = normaliser_clips
        self._index: DatasetIndex | None = None
        self._examples: dict[str, list[Example]] = {}
        self.data: dict[str, CachedSplit] = {}
        self.augment: WaveAugment | None = None
        self.running = (RunningSpeechSource(running_speech, running_speech_windows, running_speech_seed,
                                            running_speech_hard_negatives, running_speech_hard_negatives_repeat,
                                            self.window_samples, running_speech_sentences)
                        if running_speech else None)

    # -- index and labels ---------------------------------------------------------------------------
    def _build(self, root: Path, labels) -> DatasetIndex:
        return build_index(root, labels, self.split)

    @property
    def index(self) -> DatasetIndex:
        if self._index is None:
            self._index = self._build(self.root, self.label_spec)  # build_index names each bad file once
        return self._index

    @property
    def labels(self) -> list[str]:
        """The class list, in model output order (scans the data folder on first use)."""
        return self.index.labels

    def examples(self, split: str) -> list[Example]:
        """The examples of ``split`` (training includes the extra roots); built once, then reused."""
        if split not in self._examples:
            self._examples[split] = self._collect(split)
        return self._examples[split]

    def _main_examples(self, split: str) -> list[Example]:
        examples = list(self.index.splits[split])
        if split == "training":
            examples = keep_speakers(examples, self.training_speakers_percent, self.split.seed)
        return examples

    @property
    def extras(self) -> list[ExtraSource]:
        """The extra folders, split and relabelled (read once); a speaker both trained on and held out is refused."""
        if self._extras is None:
            extras = [read_extra_source(root, self.labels, self.extra_split, other_words=self.extra_other_words,
                                        training_speakers_percent=self.extra_training_speakers_percent)
                      for root in self.extra_roots]
            check_disjoint({str(self.index.root): {part: self._main_examples(part) for part in SPLITS},
                            **{str(extra.root): extra.parts for extra in extras}})
            self._extras = extras
        return self._extras

    def _collect(self, split: str) -> list[Example]:
        examples = self._main_examples(split)
        for extra in self.extras:
            examples += extra.parts[split]
        return examples

    # -- Lightning hooks ---------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Build the waveform caches once (rank 0); other ranks then open them read-only."""
        for split in SPLITS:
            self._cache(split, progress=self.progress)
        if self.running is not None:
            self.running.windows(self.labels, self.cache_dir)

    def _cache(self, split: str, progress: ProgressCallback | bool = False) -> CachedSplit:
        return cached_waveforms(
            self.examples(split), self.cache_dir, samples=self.window_samples, crop=self.crop, progress=progress
        )

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("training", "validation"), "validate": ("validation",), "test": ("testing",)}
        for split in wanted.get(stage, SPLITS):
            if split not in self.data:
                self.data[split] = self._cache(split)
                if split == "training" and self.running is not None:
                    self.data[split] = self.running.add_to(self.data[split], self.labels, self.cache_dir)
        if stage in (None, "fit") and self.augment is None:
            if not len(self.data["training"].labels):
                raise DatasetError(
                    f"{self.root}: the training split is empty (split rule {self.split.rule!r}); a folder in the "
                    "official test-set layout (or made by 'speech synth') needs split_rule 'speaker'"
                )
            noise = torch.from_numpy(load_noise(self.training_noise_index(), seed=self.split.seed))
            silence = self.labels.index("_silence_") if "_silence_" in self.labels else None
            unknown = self.labels.index("_unknown_") if "_unknown_" in self.labels else None
            self.augment = WaveAugment(noise, self.augment_config, silence_label=silence, unknown_label=unknown)

    def training_noise_index(self) -> DatasetIndex:
        """The index with its ``_silence_`` noise files cut to those of the training split.

        In the test-set layout the ``_silence_`` clips are both a class and the noise source; mixing the
        validation split's silence clips into training examples would let the model hear them before scoring.
        """
        training = {ex.path for ex in self.index.splits["training"] if ex.path}
        kept = [path for path in self.index.silence_files if str(path) in training]
        return dataclasses.replace(self.index, silence_files=kept)

    def record(self) -> DataRecord:
        """What this module trains on (settings, split sizes, training speakers), for the checkpoint."""
        return DataRecord.from_index(
            self.index,
            labels=self.label_spec,
            split=self.split,
            training=self.examples("training"),
            sources=[extra.record() for extra in self.extras],
            running_speech=self.running.describe(self.labels) if self.running is not None else None,
            training_speakers_percent=self.training_speakers_percent,
        )

    # -- what an epoch is made of (speech.data.sampling) ---------------------------------------------------
    def _shares(self) -> tuple[np.ndarray, np.ndarray]:
        """Training clips per class and the balanced epoch's examples per class (floats)."""
        from speech.data.labels import SPECIAL_LABELS

        counts = np.bincount(self.data["training"].labels, minlength=len(self.labels))
        keyword = np.array([label not in SPECIAL_LABELS for label in self.labels])
        return counts, class_shares(counts, keyword, self.class_balance)

    def epoch_plan(self) -> np.ndarray | None:
        """Examples of each class per training epoch, or None: every training clip once, in a random order."""
        if self.epoch_examples is None and (self.class_balance == 0 or self.balance_by == "loss"):
            return None
        counts, shares = self._shares()
        return epoch_counts(counts if self.balance_by == "loss" else shares, self.epoch_examples)

    def loss_weights(self) -> torch.Tensor | None:
        """Per-class weights of the training loss (``balance_by: loss``), else None."""
        if self.balance_by != "loss" or self.class_balance == 0:
            return None
        counts, shares = self._shares()
        return torch.tensor(loss_weights(counts, shares), dtype=torch.float32)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.data[split]
        if not len(data.labels):
            raise DatasetError(f"{self.root}: the {split} split is empty (split rule {self.split.rule!r})")
        dataset = BatchedWaves(data.waves, data.labels)
        plan = self.epoch_plan() if shuffle else None
        if plan is not None:
            sampler = StratifiedEpochSampler(data.labels, plan, self.batch_size, seed=self.split.seed)
        else:
            sampler_cls = RandomSampler if shuffle else SequentialSampler
            sampler = BatchSampler(sampler_cls(dataset), self.batch_size, drop_last=False)
        return DataLoader(
            dataset,
            sampler=sampler,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("training", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("testing", shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        waves, labels = batch
        waves = pcm_to_float(waves)
        if self.trainer is not None and self.trainer.training and self.augment is not None:
            if self.augment.noise.device != waves.device:
                self.augment.to(waves.device)
            waves, labels = self.augment(waves, labels)
        return waves, labels

    def normaliser_waves(self) -> torch.Tensor:
        """A fixed, evenly spaced subset of clean training clips (float, ``(clips, samples)``)."""
        waves = self.data["training"].waves
        take = np.linspace(0, len(waves) - 1, num=min(self.normaliser_clips, len(waves))).astype(int)
        return pcm_to_float(torch.from_numpy(np.asarray(waves[np.unique(take)])))
