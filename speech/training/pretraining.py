"""CTC pretraining of the keyword model's encoder on transcribed running speech (issue #18, item 4).

The keyword model meets few speakers (about 100 in ``configs/cpu-small.yaml``) and fails most on voices it never
heard. The transcribed running speech of the training readers holds more speech than all keyword clips together.
Here the encoder (the input layer and BiGRU of :class:`speech.classifiers.recurrent.RecurrentClassifier`) first learns to spell those
sentences with a CTC loss over characters (Graves et al. 2006), and ``speech train --model.encoder FILE`` starts the
keyword model from it (:func:`load_encoder`). The attention pooling and the head stay fresh.

Only the *train* readers of the folder's seeded reader split (:func:`speech.data.running_speech.split_readers`, the
split that training records) are used, all of their sentences. The calibration and test readers stay unseen: the
greedy character error rate printed at the end is measured on the calibration readers' sentences and picks
nothing. A keyword model refuses an encoder whose readers are not train readers of its own record
(:func:`check_encoder_readers`).

The file is a ``torch.save`` dict (:data:`FORMAT`): the front-end and classifier settings, the encoder's weights, the
feature normaliser it was trained with (for reference; the keyword model fits its own on its clips), the folder, the
reader split and the readers, and the figures.

**Every speaker** (issue #34, item 6): with a training config (``--config configs/cpu-small.yaml``,
:mod:`speech.training.config_data`) the encoder also learns to spell the keyword clips of that config's *training*
split, each transcribed as its word (``_unknown_`` clips by the word they say; ``_silence_`` left out), so it hears
every training speaker of every folder the config reads, and the model settings are the config's. The file records
those speakers and folders, and a keyword model refuses an encoder that heard a speaker it does not train on
(:func:`check_encoder_speakers`).

Command line: ``speech pretrain --running-speech DIR --out encoder.pt [--epochs 20] [--config CONFIG]``
(:mod:`speech.cli.pretrain`).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from speech.classifiers import classifier_settings, kind_of, settings_dict
from speech.classifiers.recurrent import RecurrentClassifier, RecurrentConfig
from speech.errors import InputFileError, OutputExistsError, SettingError
from speech.frontend.features import FrontEnd, FrontEndConfig, SpecAugment, SpecAugmentConfig
from speech.training.schedule import warmup_cosine

log = logging.getLogger(__name__)

FORMAT = "speech-ctc-encoder-v1"
ALPHABET = " 'ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # index + 1; 0 is the CTC blank
ENCODER_PREFIXES = ("input.", "rnn.")
ENCODER_SETTINGS = ("cell", "bidirectional", "hidden_size", "num_layers", "input_layer", "input_channels", "input_stride",
                    "window_mean")


def encode_text(words: tuple[str, ...] | list[str]) -> list[int]:
    """Upper-case words -> character indices (1-based; characters outside :data:`ALPHABET` are dropped)."""
    text = " ".join(words).upper()
    return [ALPHABET.index(ch) + 1 for ch in text if ch in ALPHABET]


def decode_greedy(log_probs: torch.Tensor) -> str:
    """Best path of one example's ``(frames, classes)`` log probabilities: repeats merged, blanks dropped."""
    best = log_probs.argmax(dim=-1).tolist()
    out, previous = [], 0
    for index in best:
        if index != previous and index != 0:
            out.append(ALPHABET[index - 1])
        previous = index
    return "".join(out)


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


class Sentences(torch.utils.data.Dataset):
    """Whole sentences: float32 waveforms and their character targets."""

    def __init__(self, waves: list[np.ndarray], texts: list[str]) -> None:
        self.waves, self.texts = waves, texts
        self.targets = [torch.tensor(encode_text(t.split()), dtype=torch.long) for t in texts]

    def __len__(self) -> int:
        return len(self.waves)

    def __getitem__(self, i: int):
        return torch.from_numpy(self.waves[i]), self.targets[i]


PAD_LEVEL = 1e-3  # -60 dBFS: the pause a padded sentence ends in


def collate(items):
    """Sentences padded to the longest with a faint noise (a pause, which CTC spells as blanks: no packed sequences,
    whose backward pass is ~8x slower on the CPU), their samples, targets and target lengths."""
    waves, targets = zip(*items, strict=True)
    samples = torch.tensor([len(w) for w in waves])
    padded = torch.randn(len(waves), int(samples.max())) * PAD_LEVEL
    for i, w in enumerate(waves):
        padded[i, : len(w)] = w
    return padded, samples, torch.cat(targets), torch.tensor([len(t) for t in targets])


class LengthBatches(torch.utils.data.Sampler):
    """Batches of sentences of similar length, at most ``max_seconds`` of audio each, in a new seeded order every
    epoch (so a batch pads little)."""

    def __init__(self, lengths: list[int], max_seconds: float, seed: int, shuffle: bool = True) -> None:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        limit = max_seconds * 16_000
        self.batches, batch = [], []
        for i in order:
            if batch and (len(batch) + 1) * lengths[i] > limit:
                self.batches.append(batch)
                batch = []
            batch.append(i)
        if batch:
            self.batches.append(batch)
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        batches = list(self.batches)
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(batches)
            self.epoch += 1
        return iter(batches)


class EpochLog(L.Callback):
    """One log line per epoch: the mean CTC loss and the time so far."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        loss = float(trainer.callback_metrics.get("train/ctc", torch.tensor(math.nan)))
        log.info("epoch %d/%d, CTC loss %.3f, %.0f s", trainer.current_epoch + 1, trainer.max_epochs, loss,
                 time.monotonic() - self.start)


class CTCPretraining(L.LightningModule):
    """The encoder of a :class:`RecurrentClassifier` with a linear CTC head over :data:`ALPHABET`."""

    def __init__(self, frontend: FrontEndConfig, classifier: RecurrentConfig, lr: float = 3e-3,
                 weight_decay: float = 1e-2, warmup_fraction: float = 0.05,
                 spec_augment: SpecAugmentConfig | None = None) -> None:
        super().__init__()
        self.frontend = FrontEnd(frontend)
        self.encoder = RecurrentClassifier(self.frontend.config.n_mfcc, 1, classifier)
        self.ctc_head = nn.Linear(2 * classifier.hidden_size, len(ALPHABET) + 1)
        self.spec_augment = SpecAugment(spec_augment)
        self.ctc = nn.CTCLoss(blank=0, zero_infinity=True)
        self.lr, self.weight_decay, self.warmup_fraction = lr, weight_decay, warmup_fraction

    def log_probs(self, waves: torch.Tensor) -> torch.Tensor:
        """Padded waveforms ``(batch, samples)`` -> ``(batch, frames, classes)`` log probabilities (every example
        has all frames: the padding is a pause)."""
        out, _ = self.encoder.encode(self.spec_augment(self.frontend(waves)))
        return self.ctc_head(out).float().log_softmax(-1)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        waves, samples, targets, target_lengths = batch
        log_probs = self.log_probs(waves)
        lengths = torch.full((len(samples),), log_probs.shape[1], dtype=torch.long)
        loss = self.ctc(log_probs.transpose(0, 1), targets, lengths, target_lengths)
        self.log("train/ctc", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(samples))
        return loss

    def configure_optimizers(self):
        optimiser = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = max(1, int(total * self.warmup_fraction))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: warmup_cosine(s, warmup, total, 0.01))
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    @torch.no_grad()
    def character_error_rate(self, data: Sentences, max_seconds: float = 120.0) -> float:
        """Greedy-decoding character error rate on ``data`` (edits / reference characters)."""
        self.eval()
        edits = chars = 0
        batches = LengthBatches([len(w) for w in data.waves], max_seconds, 0, shuffle=False)
        for batch in batches:
            waves, samples, _, _ = collate([data[i] for i in batch])
            log_probs = self.log_probs(waves.to(self.device))
            for row, i in enumerate(batch):
                reference = " ".join(data.texts[i].split())
                edits += edit_distance(decode_greedy(log_probs[row]).strip(), reference)
                chars += len(reference)
        return edits / max(1, chars)

    def encoder_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.encoder.state_dict().items()
                if k.startswith(ENCODER_PREFIXES)}


def _sentences(utterances, what: str, max_seconds: float | None = None) -> Sentences:
    """The sentences of ``utterances`` in order, until ``max_seconds`` of audio are in (None: all)."""
    from speech.audio.io import AudioError
    from speech.data.running_speech import SAMPLE_RATE, load_sentence

    waves, texts, seconds = [], [], 0.0
    for u in utterances:
        if max_seconds is not None and seconds >= max_seconds:
            break
        try:
            waves.append(load_sentence(u.path))
        except AudioError as exc:  # skipped and named, as the clip cache does
            log.warning("%s: cannot decode, skipped (%s)", u.path, exc)
            continue
        texts.append(" ".join(u.words))
        seconds += len(waves[-1]) / SAMPLE_RATE
    if not waves:
        raise InputFileError(f"no readable sentence of the {what} readers", param="running_speech")
    return Sentences(waves, texts)


def keyword_clips(data, max_clips: int | None = None) -> tuple[Sentences, dict]:
    """The spoken clips of the training split of ``data`` (a :class:`~speech.data.datamodule.SpeechCommandsDataModule`:
    its main folder and extra folders), 1 s each, transcribed as their words; ``_silence_`` and noise clips are left
    out. ``max_clips``: a seeded sample of that many. Returns the clips and what the encoder file records of them."""
    from speech.data.cache import cached_waveforms

    examples = [ex for ex in data.examples("training") if ex.path and ex.word and not ex.word.startswith("_")]
    if max_clips is not None and len(examples) > max_clips:
        examples = random.Random(0).sample(examples, max_clips)
    if not examples:
        raise InputFileError(f"{data.root}: the training split has no spoken keyword clips to pretrain on",
                             param="config")
    cached = cached_waveforms(examples, data.cache_dir, samples=16_000, crop="center", progress=False)
    waves = [np.asarray(row, dtype=np.float32) / 32768.0 for row in cached.waves]
    texts = [ex.word.replace("_", " ") for ex in cached.examples]
    roots = [str(data.index.root), *(str(extra.root) for extra in data.extras)]
    speakers = sorted({ex.speaker for ex in cached.examples if ex.speaker})
    words = Counter(texts)
    return Sentences(waves, texts), {"keyword_roots": roots, "keyword_speakers": speakers,
                                     "keyword_clips": len(waves), "keyword_words": dict(sorted(words.items()))}


def pretrain(running_root: str | Path, out: str | Path, *, epochs: int = 20, seed: int = 0, split_seed: int = 0,
             frontend: FrontEndConfig | None = None, classifier: RecurrentConfig | None = None, lr: float = 3e-3,
             max_batch_seconds: float = 60.0, max_minutes: float | None = None, accelerator: str = "auto",
             keywords=None, max_clips: int | None = None) -> dict:
    """Train the encoder on the train readers of ``running_root`` (and, given ``keywords``, a training config's
    :class:`~speech.training.config_data.TrainingConfig`, on the spoken clips of its training split, with its
    front-end and classifier settings) and write it to ``out`` (a new file); returns the file's ``info`` (readers,
    speakers, hours, loss, character error rate on the calibration readers)."""
    from speech.data.running_speech import read_running_speech, split_readers

    out = Path(out)
    if out.exists():
        raise OutputExistsError(f"{out} exists; refusing to overwrite it", param="out")
    if epochs < 1:
        raise SettingError(f"epochs must be 1 or more, got {epochs}", param="epochs")
    if keywords is not None:
        frontend = FrontEndConfig.from_dict(keywords.frontend)
        classifier = classifier_settings(keywords.classifier)
        if not isinstance(classifier, RecurrentConfig):
            raise SettingError(f"CTC pretraining serves the recurrent classifier only, not the config's "
                               f"{kind_of(classifier)!r} kind", param="config")
    frontend, classifier = frontend or FrontEndConfig(), classifier or RecurrentConfig()
    speech = read_running_speech(running_root)
    split = split_readers(speech.readers, seed=split_seed)
    train_utts = speech.of_readers(split.readers("train"))
    L.seed_everything(seed, verbose=False)
    train = _sentences(train_utts, "train", None if max_minutes is None else 60.0 * max_minutes)
    sentence_hours = sum(len(w) for w in train.waves) / 16_000 / 3600
    held = _sentences(speech.of_readers(split.readers("calibration"))[: len(train.waves) // 4 or 1], "calibration")
    clips_info: dict = {}
    if keywords is not None:
        clips, clips_info = keyword_clips(keywords.data, max_clips)
        train = Sentences(train.waves + clips.waves, train.texts + clips.texts)
    module = CTCPretraining(frontend, classifier, lr=lr)
    module.frontend.fit_normaliser(train.waves)
    loader = torch.utils.data.DataLoader(
        train, batch_sampler=LengthBatches([len(w) for w in train.waves], max_batch_seconds, seed), collate_fn=collate)
    hours = sum(len(w) for w in train.waves) / 16_000 / 3600
    log.info("CTC pretraining on %.2f h of %d train readers of %s and %d keyword clips of %d speakers, %d epochs",
             sentence_hours, len(split.readers("train")), speech.root, clips_info.get("keyword_clips", 0),
             len(clips_info.get("keyword_speakers", [])), epochs)
    trainer = L.Trainer(max_epochs=epochs, accelerator=accelerator, devices=1, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, gradient_clip_val=5.0,
                        enable_progress_bar=False, num_sanity_val_steps=0, callbacks=[EpochLog()])
    trainer.fit(module, train_dataloaders=loader)
    loss = float(trainer.callback_metrics.get("train/ctc", torch.tensor(math.nan)))
    cer = module.character_error_rate(held)
    info = {
        "root": str(speech.root),
        "reader_split": split.to_dict(),
        "readers": split.readers("train"),
        "sentences": len(train.waves) - clips_info.get("keyword_clips", 0),
        "hours": round(hours, 3),
        "running_speech_hours": round(sentence_hours, 3),
        **clips_info,
        "epochs": epochs,
        "seed": seed,
        "final_ctc_loss": round(loss, 4),
        "calibration_readers_cer": round(cer, 4),
        "calibration_sentences": len(held.waves),
    }
    payload = {
        "format": FORMAT,
        "frontend": frontend.to_dict(),
        "classifier": settings_dict(classifier),
        "encoder": module.encoder_state(),
        "normaliser": {"mean": module.frontend.mean.tolist(), "std": module.frontend.std.tolist()},
        "info": info,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(out)
    return info


def read_encoder(path: str | Path) -> dict:
    """The pretrained-encoder file at ``path`` (:data:`FORMAT`), or a one-line :class:`InputFileError`."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        raise InputFileError(f"{path}: cannot read the pretrained encoder ({exc})", param="encoder") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputFileError(f"{path}: not a pretrained encoder (expected a file of python -m speech.training.pretraining)",
                             param="encoder")
    return payload


def load_encoder(classifier: RecurrentClassifier, frontend: FrontEnd, path: str | Path) -> dict:
    """Copy the encoder weights of ``path`` into ``classifier`` (input layer and GRU); its settings and the front
    end's must match. Returns the file's ``info``."""
    if not isinstance(classifier, RecurrentClassifier):
        raise SettingError(f"{path}: CTC pretraining serves the recurrent classifier only, not the model's "
                           f"{kind_of(classifier.config)!r} kind", param="encoder")
    payload = read_encoder(path)
    saved = classifier_settings(payload["classifier"])  # fills in settings newer than the file
    mismatched = [k for k in ENCODER_SETTINGS if getattr(saved, k) != getattr(classifier.config, k)]
    features = FrontEndConfig.from_dict(payload["frontend"])  # the window does not matter: it ran on sentences
    if replace(features, window_ms=frontend.config.window_ms) != frontend.config:
        mismatched.append("frontend")
    if mismatched:
        raise SettingError(f"{path}: the pretrained encoder's settings ({', '.join(mismatched)}) differ from the model's "
                           f"(pretrain with the model's settings)", param="encoder")
    missing, unexpected = classifier.load_state_dict(payload["encoder"], strict=False)
    if unexpected or any(k.startswith(ENCODER_PREFIXES) for k in missing):
        raise SettingError(f"{path}: the encoder's weights do not fit the model", param="encoder")
    return dict(payload["info"])


def check_encoder_speakers(info: dict, record) -> None:
    """Refuse an encoder pretrained on keyword clips of a speaker the keyword model (its data record ``record``)
    does not train on: that speaker's held-out clips would no longer be unseen."""
    heard = info.get("keyword_speakers") or []
    if not heard:
        return
    others = set(heard) - set(record.training_speakers if record is not None else [])
    if others:
        raise SettingError(
            f"the pretrained encoder heard {len(others)} speakers this model does not train on (e.g. "
            f"{', '.join(sorted(others)[:3])}); pretrain with the model's own training config (--config)",
            param="encoder")


def check_encoder_readers(info: dict, running: dict | None) -> None:
    """Refuse an encoder pretrained on readers (or a folder) that the keyword model's running speech (its data
    record's ``running_speech``) does not train on: its held-out readers would no longer be unseen."""
    import os

    running = running or {}
    others = set(info.get("readers") or []) - set(running.get("training_readers") or [])
    same_folder = bool(running.get("root")) and os.path.realpath(running["root"]) == os.path.realpath(info["root"])
    if others or not same_folder:
        raise SettingError(
            f"the pretrained encoder learnt from readers {', '.join(sorted(others or info['readers'])[:4])} of "
            f"{info['root']}, which this model's data does not train on (give --data.running_speech the same folder "
            "and reader split)", param="encoder")
