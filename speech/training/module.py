"""The LightningModule: loss, metrics, optimiser and schedule around a :class:`~speech.model.recogniser.Recogniser`.

The networks themselves live in :mod:`speech.frontend.features` and :mod:`speech.model`; this file only trains them.
Checkpoints carry the label list, the front-end and classifier settings (under ``"speech"``) and the
feature normaliser (as buffers), so :func:`speech.model.checkpoint.load_recogniser` needs nothing else.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from speech.classifiers import ClassifierSettingsError, classifier_settings
from speech.data.record import DataRecord
from speech.errors import SettingError
from speech.frontend.features import FrontEndConfig, SpecAugment, SpecAugmentConfig
from speech.model.model_file import META_KEY, model_metadata
from speech.model.recogniser import Recogniser
from speech.training.distillation import Teachers, check_teachers, distillation_loss
from speech.training.mixup import draw_mix
from speech.training.schedule import warmup_cosine

log = logging.getLogger(__name__)

SCHEDULES = ("cosine", "onecycle", "constant")
# Checkpoints written before the averaging was Lightning's WeightAveraging flag it: recogniser.* holds the averaged
# weights, ema.* the raw ones. They still load (KeywordModule.on_load_checkpoint turns them into today's layout).
EMA_SWAPPED = "speech_ema_swapped"


class KeywordModule(L.LightningModule):
    """Trains a keyword recogniser.

    Args:
        labels: class names in output order; with ``speech train`` they come from the data module.
        frontend: MFCC settings.
        classifier: the network, by its kind and settings (:mod:`speech.classifiers`): a mapping such as
            ``{kind: recurrent, cell: lstm, bidirectional: false}`` (no ``kind``: the recurrent kind, a
            bidirectional GRU by default) or a settings object. An unknown kind or setting is one line naming the
            known ones.
        spec_augment: SpecAugment masks and vocal tract length perturbation of the training features.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        label_smoothing: cross-entropy label smoothing.
        schedule: ``"cosine"`` (linear warm-up then cosine decay to ``lr * final_lr_ratio``), ``"onecycle"``
            or ``"constant"``.
        warmup_epochs: warm-up length for the cosine schedule, in epochs (fractions allowed).
        final_lr_ratio: last learning rate of the cosine schedule as a fraction of ``lr``.
        ema_decay: when > 0, keep an exponential moving average of the weights (:class:`EMAWeights`, updated
            every step with this decay; buffers such as BatchNorm statistics are copied) and validate and save
            that average: the checkpoint's recogniser weights are the averaged ones (the raw ones travel along
            for resuming), and after ``fit`` the module holds the average.
        teachers: trained checkpoints to distil from (:mod:`speech.training.distillation`); the loss becomes
            ``(1 - distill_weight) * cross-entropy + distill_weight * T² KL(teachers || student)`` at temperature
            ``distill_temperature``. The teachers must have trained on the student's training split only.
        mixup_alpha: when > 0, every training example is mixed with another of its batch (:mod:`speech.training.mixup`,
            weights from Beta(alpha, alpha)); the labels' loss is mixed alike and the teachers score the mix.
        encoder: a pretrained encoder (:mod:`speech.training.pretraining`, CTC on the running speech of the train readers)
            whose input layer and GRU weights the classifier starts from; its readers must be train readers of this
            model's data.
    """

    def __init__(
        self,
        labels: list[str] | None = None,
        frontend: FrontEndConfig | None = None,
        classifier: dict | None = None,
        spec_augment: SpecAugmentConfig | None = None,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        label_smoothing: float = 0.1,
        schedule: str = "cosine",
        warmup_epochs: float = 1.0,
        final_lr_ratio: float = 0.01,
        ema_decay: float = 0.0,
        teachers: list[str] | None = None,
        distill_weight: float = 0.5,
        distill_temperature: float = 2.0,
        mixup_alpha: float = 0.0,
        encoder: str | None = None,
    ) -> None:
        super().__init__()
        if not labels:
            raise ValueError("KeywordModule needs the label list (speech train links it from the data module)")
        if len(labels) < 2:
            raise SettingError(
                f"a keyword model needs at least 2 classes, got {list(labels)}: add more label folders (or "
                "_unknown_ / _silence_ ones) to the data folder, or choose other labels",
                param="labels",
            )
        if not 0.0 <= ema_decay < 1.0:
            raise SettingError(f"ema_decay must be in [0, 1), got {ema_decay}", param="ema_decay")
        if not 0.0 <= distill_weight <= 1.0 or distill_temperature <= 0:
            raise SettingError(f"distill_weight must be in [0, 1] and distill_temperature > 0, got {distill_weight}, "
                               f"{distill_temperature}", param="distill_weight")
        if mixup_alpha < 0:
            raise SettingError(f"mixup_alpha must be >= 0 (0: off), got {mixup_alpha}", param="mixup_alpha")
        if schedule not in SCHEDULES:
            raise SettingError(f"schedule must be one of {SCHEDULES}, got {schedule!r}", param="schedule")
        if not 0.0 <= (spec_augment or SpecAugmentConfig()).vtlp < 1.0:
            raise SettingError(f"spec_augment.vtlp must be in [0, 1) (0: off), got {spec_augment.vtlp}",
                               param="spec_augment.vtlp")
        try:
            classifier = classifier_settings(classifier)
        except ClassifierSettingsError as exc:
            raise SettingError(str(exc), param="classifier") from None
        try:
            self.recogniser = Recogniser(labels, frontend, classifier)
        except ValueError as exc:  # front-end settings no front end can compute (FrontEndConfig.check)
            raise SettingError(str(exc), param="frontend") from None
        self.spec_augment = SpecAugment(spec_augment)
        self.encoder_info = None
        if encoder:
            from speech.training.pretraining import load_encoder

            self.encoder_info = load_encoder(self.recogniser.classifier, self.recogniser.frontend, encoder)
            log.info("encoder pretrained on %.2f h of %d readers and %d keyword speakers (%s)",
                     self.encoder_info["hours"], len(self.encoder_info["readers"]),
                     len(self.encoder_info.get("keyword_speakers") or []), encoder)
        self.labels = list(labels)
        self.lr, self.weight_decay, self.label_smoothing = lr, weight_decay, label_smoothing
        self.schedule, self.warmup_epochs, self.final_lr_ratio = schedule, warmup_epochs, final_lr_ratio
        self.ema_decay = ema_decay
        window = self.recogniser.frontend.config.window_samples
        self.teachers = Teachers(teachers, self.labels, window) if teachers else None
        self.distill_weight, self.distill_temperature = distill_weight, distill_temperature
        self.mixup_alpha = mixup_alpha
        # plain data only, so checkpoints stay loadable with torch.load(weights_only=True)
        self.save_hyperparameters(
            {
                **self.recogniser.settings(),
                "spec_augment": vars(self.spec_augment.config).copy(),
                "lr": lr,
                "weight_decay": weight_decay,
                "label_smoothing": label_smoothing,
                "schedule": schedule,
                "warmup_epochs": warmup_epochs,
                "final_lr_ratio": final_lr_ratio,
                "ema_decay": ema_decay,
                "teachers": self.teachers.paths if self.teachers else [],
                "distill_weight": distill_weight,
                "distill_temperature": distill_temperature,
                "mixup_alpha": mixup_alpha,
                "encoder": encoder,
            }
        )
        n = len(labels)
        self.class_weights: torch.Tensor | None = None  # the data module's (balance_by: loss), set at fit start
        self.train_acc = MulticlassAccuracy(n, average="micro")
        self.val_acc = MulticlassAccuracy(n, average="micro")
        self.val_f1 = MulticlassF1Score(n, average="macro")
        self.test_acc = MulticlassAccuracy(n, average="micro")
        self.test_f1 = MulticlassF1Score(n, average="macro")
        log.info("classifier parameters: %s", f"{self.recogniser.classifier.num_parameters:,}")

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.recogniser(waves)

    def check_held_out(self, record: DataRecord | None) -> None:
        """Refuse teachers or a pretrained encoder that learnt from speakers or readers ``record`` (what this model
        trains on) holds out. ``speech train`` calls it before any run folder is made; every fit calls it again."""
        if self.teachers is not None:
            check_teachers(self.teachers, record)
        if self.encoder_info is not None:
            from speech.training.pretraining import check_encoder_readers, check_encoder_speakers

            check_encoder_readers(self.encoder_info, record.running_speech if record is not None else None)
            check_encoder_speakers(self.encoder_info, record)

    # -- fit start: normaliser statistics ------------------------------------------------------------
    def on_fit_start(self) -> None:
        frontend = self.recogniser.frontend
        datamodule = getattr(self.trainer, "datamodule", None)
        record = datamodule.record() if datamodule is not None and hasattr(datamodule, "record") else None
        if record is not None:
            self.recogniser.sections["data"] = record.to_dict()
        self.check_held_out(record or DataRecord.from_dict(self.recogniser.sections.get("data")))  # else the weights' own
        weights = datamodule.loss_weights() if datamodule is not None and hasattr(datamodule, "loss_weights") else None
        self.class_weights = None if weights is None else weights.to(self.device)
        if self.class_weights is not None:
            log.info("class weights of the loss: %s", dict(zip(self.labels, self.class_weights.tolist(), strict=True)))
        if bool(frontend.fitted):
            return  # resumed or fine-tuned: keep the statistics the weights were trained with
        if datamodule is None or not hasattr(datamodule, "normaliser_waves"):
            raise RuntimeError("the feature normaliser is not fitted and no data module provides training clips")
        waves = datamodule.normaliser_waves()
        frontend.fit_normaliser(waves)
        log.info("fitted the feature normaliser on %d training clips", len(waves))

    def configure_callbacks(self) -> list:
        """The weight averaging ``ema_decay`` asks for, added to whatever trainer fits this module."""
        return [EMAWeights(self.ema_decay)] if self.ema_decay > 0 else []

    # -- steps ------------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        waves, labels = batch
        mix = draw_mix(len(labels), self.mixup_alpha, waves.device) if self.mixup_alpha > 0 else None
        if mix is not None:
            waves = mix.waves(waves)
        warp = self.spec_augment.warp_factors(len(waves), waves.device)
        feats = self.spec_augment(self.recogniser.frontend(waves, warp))
        logits = self.recogniser.classifier(feats)
        if mix is None:
            loss = nn.functional.cross_entropy(logits.float(), labels, weight=self.class_weights,
                                               label_smoothing=self.label_smoothing)
        else:
            own, partner = (nn.functional.cross_entropy(logits.float(), target, weight=self.class_weights,
                                                        reduction="none", label_smoothing=self.label_smoothing)
                            for target in (labels, labels[mix.perm]))
            loss = mix.loss(own, partner)
            labels = mix.labels(labels)
        if self.teachers is not None:
            targets = self.teachers.probabilities(waves, self.distill_temperature)
            soft = distillation_loss(logits, targets, self.distill_temperature)
            loss = (1.0 - self.distill_weight) * loss + self.distill_weight * soft
        self.train_acc(logits, labels)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(labels))
        self.log("train/acc", self.train_acc, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(labels))
        return loss

    def _eval_step(self, batch, stage: str, acc, f1) -> None:
        waves, labels = batch
        logits = self.recogniser(waves)
        loss = nn.functional.cross_entropy(logits.float(), labels)
        acc(logits, labels)
        f1(logits, labels)
        n = len(labels)
        self.log(f"{stage}/loss", loss, prog_bar=False, sync_dist=True, batch_size=n)
        self.log(f"{stage}/acc", acc, prog_bar=True, batch_size=n)
        self.log(f"{stage}/f1", f1, prog_bar=False, batch_size=n)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val", self.val_acc, self.val_f1)

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test", self.test_acc, self.test_f1)

    # -- optimiser ------------------------------------------------------------------------------------
    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            (no_decay if param.ndim < 2 or "bias" in name else decay).append(param)
        optimiser = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
        )
        if self.schedule == "constant":
            return optimiser
        total = max(1, int(self.trainer.estimated_stepping_batches))
        if self.schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=self.lr, total_steps=total)
        else:
            epochs = max(1, self.trainer.max_epochs or 1)
            warmup = min(total - 1, int(round(total * self.warmup_epochs / epochs)))
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimiser, lambda step: warmup_cosine(step, warmup, total, self.final_lr_ratio)
            )
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- checkpoints ----------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[META_KEY] = model_metadata(self.recogniser)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resuming: an older checkpoint's averaging (:data:`EMA_SWAPPED`) in :class:`EMAWeights`' layout; without
        averaging (``ema_decay: 0``) training goes on from the raw weights, not the average."""
        legacy_average(checkpoint)
        if self.ema_decay == 0 and "current_model_state" in checkpoint:
            checkpoint["state_dict"] = checkpoint.pop("current_model_state")
            checkpoint.pop("averaging_state", None)


class EMAWeights(WeightAveraging):
    """The recipe's exponential moving average of the weights, as Lightning's :class:`WeightAveraging`.

    After every optimiser step ``average += (1 - d) * (weights - average)`` with ``d = min(decay, (1 + step) /
    (10 + step))`` (TensorFlow's ``ExponentialMovingAverage(num_updates=step)`` warm-up: early averages forget
    faster); buffers (the feature normaliser, BatchNorm statistics) are copied, not averaged. The average starts
    from the weights training starts with (after the feature normaliser is fitted). Lightning's callback does the
    rest: validation runs on the average, checkpoints hold it as their ``state_dict`` (the raw weights under
    ``current_model_state``, to resume), resuming continues it, and the module holds it when ``fit`` ends.
    """

    def __init__(self, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        super().__init__(use_buffers=False, avg_fn=self._average)
        self.decay = decay
        self.step_decay = decay

    def _average(self, average: torch.Tensor, weights: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        return average.lerp(weights, 1.0 - self.step_decay)

    @torch.no_grad()
    def _start(self, pl_module: L.LightningModule) -> None:
        """The first average: the module's weights as training (or the sanity check) starts, buffers included."""
        if self._average_model is not None and int(self._average_model.n_averaged) == 0:
            self._average_model.update_parameters(pl_module)  # the first update copies the weights
            self._copy_buffers(pl_module)

    @torch.no_grad()
    def _copy_buffers(self, pl_module: L.LightningModule) -> None:
        for average, current in zip(self._average_model.module.buffers(), pl_module.buffers(), strict=True):
            average.copy_(current)

    def on_train_start(self, trainer, pl_module) -> None:
        self._start(pl_module)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._start(pl_module)
        super().on_validation_epoch_start(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        self.step_decay = min(self.decay, (1.0 + step) / (10.0 + step))
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._average_model is not None:
            self._copy_buffers(pl_module)


def legacy_average(checkpoint: dict) -> None:
    """An averaging checkpoint of older versions (:data:`EMA_SWAPPED`: the average as ``recogniser.*``, the raw
    weights as ``ema.*``) rewritten in place in :class:`EMAWeights`' layout; other checkpoints are left alone."""
    if not checkpoint.pop(EMA_SWAPPED, False):
        return
    state = checkpoint["state_dict"]
    average = {k: v for k, v in state.items() if not k.startswith("ema.")}
    raw = {k: state.get("ema." + k[len("recogniser.") :], v) if k.startswith("recogniser.") else v
           for k, v in average.items()}  # fmt: skip
    checkpoint["state_dict"], checkpoint["current_model_state"] = average, raw
    updates = max(1, int(checkpoint.get("global_step", 0)))  # the average began before the first step
    checkpoint["averaging_state"] = {"n_averaged": torch.tensor(updates, dtype=torch.long)}
    # The hand-written average was a submodule, so its (never updated) parameters followed the recogniser's in
    # each optimiser group: the second half of every group.
    for optimiser in checkpoint.get("optimizer_states", []):
        for group in optimiser["param_groups"]:
            half = len(group["params"]) // 2
            for index in group["params"][half:]:
                optimiser["state"].pop(index, None)
            group["params"] = group["params"][:half]

