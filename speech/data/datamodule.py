"""LightningDataModule over the data layer: cached int16 waveforms in, augmented float batches out.

The DataLoader only slices the memory-mapped waveform cache (whole batches at a time, no per-clip
decoding); the batch is moved to the accelerator as int16 and augmented there
(:meth:`on_after_batch_transfer`), and the model's front end computes MFCC on the device.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from speech.audio import CLIP_SAMPLES, pcm_to_float
from speech.data import CachedSplit, DatasetIndex, Example, build_index, cached_waveforms, load_noise
from speech.data.augment import AugmentConfig, WaveAugment
from speech.data.cache import default_cache_dir
from speech.data.errors import DatasetError
from speech.data.record import DataRecord
from speech.data.running_windows import RunningSpeechSource
from speech.data.splits import SPLITS, SplitSettings, keep_speakers
from speech.progress import ProgressCallback

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


def remap_examples(examples: list[Example], source_labels: list[str], target_labels: list[str]) -> list[Example]:
    """Re-express examples labelled in ``source_labels`` in ``target_labels``.

    Words missing from the target become ``_unknown_`` when the target has it, else they are dropped;
    ``_silence_`` clips are dropped when the target has no ``_silence_`` class.
    """
    target = {label: i for i, label in enumerate(target_labels)}
    unknown = target.get("_unknown_")
    out = []
    for ex in examples:
        name = source_labels[ex.label]
        index = target.get(name, None if name == "_silence_" else unknown)
        if index is not None:
            out.append(Example(ex.path, index, ex.speaker, ex.word))
    return out


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
        extra_roots: more folders (e.g. synthetic speech) whose clips are added to training only.
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
            say none of the keywords are added to training as ``_unknown_`` (they get the clips' augmentation).
            ``running_speech_hard_negatives``: a ``.npy`` of mined windows (:mod:`speech.data.hard_negatives`) added
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
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.progress: ProgressCallback | bool = True  # cache building: see speech.progress (the CLI draws bars)
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
                                            self.window_samples)
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

    def _collect(self, split: str) -> list[Example]:
        examples = list(self.index.splits[split])
        if split == "training":
            examples = keep_speakers(examples, self.training_speakers_percent, self.split.seed)
            for root in self.extra_roots:
                extra = self._build(root, "all")  # every label folder, _unknown_ and _silence_ included
                for part in SPLITS:
                    examples += remap_examples(extra.splits[part], extra.labels, self.labels)
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
            extra_roots=self.extra_roots,
            running_speech=self.running.describe(self.labels) if self.running is not None else None,
        )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.data[split]
        if not len(data.labels):
            raise DatasetError(f"{self.root}: the {split} split is empty (split rule {self.split.rule!r})")
        dataset = BatchedWaves(data.waves, data.labels)
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
