"""``model.ema_decay``: Lightning's weight averaging with the recipe's decay ramp, on a tiny model and a few steps."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from speech.classifiers.recurrent import RecurrentConfig
from speech.model.model_file import read_checkpoint
from speech.training.module import EMA_SWAPPED, EMAWeights, KeywordModule

LABELS = ["a", "b", "c"]
TINY = RecurrentConfig(hidden_size=8, num_layers=1, input_channels=8)


def tiny_module(ema_decay: float) -> KeywordModule:
    torch.manual_seed(0)
    module = KeywordModule(labels=LABELS, classifier=TINY, ema_decay=ema_decay, schedule="constant", lr=0.05)
    module.recogniser.frontend.fit_normaliser(torch.randn(8, 16000) * 0.1)  # fitted: on_fit_start keeps it
    return module


def loader() -> DataLoader:
    generator = torch.Generator().manual_seed(1)
    waves, labels = torch.randn(24, 16000, generator=generator) * 0.1, torch.arange(24) % len(LABELS)
    return DataLoader(TensorDataset(waves, labels), batch_size=8)


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


class Recorder(L.Callback):
    """The raw weights when training starts and after each step, and the weights each validation runs on."""

    def __init__(self) -> None:
        self.raw: list[dict[str, torch.Tensor]] = []
        self.validated: list[tuple[int, dict[str, torch.Tensor]]] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.raw.append(weights(pl_module))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.raw.append(weights(pl_module))

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0 and not trainer.sanity_checking:
            self.validated.append((trainer.global_step, weights(pl_module)))


def expected_average(raw: list[dict[str, torch.Tensor]], decay: float) -> dict[str, torch.Tensor]:
    """The recipe by hand: start from the first weights, then lerp with min(decay, (1+step)/(10+step))."""
    average = {name: value.clone() for name, value in raw[0].items()}
    for step, current in enumerate(raw[1:], start=1):
        d = min(decay, (1.0 + step) / (10.0 + step))
        average = {name: average[name].lerp(current[name], 1.0 - d) for name in average}
    return average


def fit(module, tmp_path, steps_per_epoch: int, epochs: int, ckpt_path=None) -> tuple[L.Trainer, Recorder]:
    recorder = Recorder()
    trainer = L.Trainer(
        max_epochs=epochs, limit_train_batches=steps_per_epoch, limit_val_batches=1, num_sanity_val_steps=1,
        default_root_dir=tmp_path, enable_progress_bar=False, enable_model_summary=False, logger=False,
        callbacks=[recorder], accelerator="cpu",
    )  # fmt: skip
    trainer.fit(module, loader(), loader(), ckpt_path=ckpt_path)
    return trainer, recorder


def assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)


def test_the_average_follows_the_recipe_and_is_what_validation_and_checkpoints_use(tmp_path):
    decay = 0.9
    module = tiny_module(decay)
    trainer, recorder = fit(module, tmp_path, steps_per_epoch=3, epochs=2)
    assert len(recorder.raw) == 1 + 6
    # validation after epoch 1 (step 3) ran on the average of the first 3 steps, not on the raw weights
    (step, validated), (_, last_validated) = recorder.validated
    assert step == 3
    assert_close(validated, expected_average(recorder.raw[:4], decay))
    assert max((validated[n] - recorder.raw[3][n]).abs().max() for n in validated) > 1e-4  # differs from the raw
    # the checkpoint: recogniser.* is the average (what evaluation, export and the runtime read); raw to resume
    (ckpt_file,) = (tmp_path / "checkpoints").glob("*.ckpt")
    ckpt = read_checkpoint(ckpt_file)
    average = expected_average(recorder.raw, decay)
    assert_close({n: v for n, v in ckpt["state_dict"].items() if n in average}, average)
    assert_close({n: v for n, v in ckpt["current_model_state"].items() if n in average}, recorder.raw[-1])
    assert_close(last_validated, average)
    assert_close(weights(module), average)  # after fit the module holds the average
    assert [type(c) for c in trainer.callbacks].count(EMAWeights) == 1


def test_resuming_continues_the_average(tmp_path):
    decay = 0.9
    _, first = fit(tiny_module(decay), tmp_path / "a", steps_per_epoch=3, epochs=1)
    (ckpt_file,) = (tmp_path / "a" / "checkpoints").glob("*.ckpt")
    module = tiny_module(decay)
    _, resumed = fit(module, tmp_path / "b", steps_per_epoch=3, epochs=2, ckpt_path=ckpt_file)
    # the resumed run starts from the raw weights and goes on averaging from the stored average
    assert_close(resumed.raw[0], first.raw[-1])
    assert_close(weights(module), expected_average(first.raw + resumed.raw[1:], decay))


def test_ema_decay_zero_trains_without_averaging(tmp_path):
    module = tiny_module(0.0)
    trainer, recorder = fit(module, tmp_path, steps_per_epoch=3, epochs=1)
    assert not any(isinstance(c, EMAWeights) for c in trainer.callbacks)
    (ckpt_file,) = (tmp_path / "checkpoints").glob("*.ckpt")
    ckpt = read_checkpoint(ckpt_file)
    assert "current_model_state" not in ckpt
    assert_close({n: v for n, v in ckpt["state_dict"].items() if n in recorder.raw[-1]}, recorder.raw[-1])


def legacy_layout(ckpt: dict) -> dict:
    """A checkpoint as versions before Lightning's weight averaging wrote it: the average as recogniser.*, the raw
    weights as ema.*, the EMA_SWAPPED flag."""
    old = {k: v for k, v in ckpt.items() if k not in ("current_model_state", "averaging_state")}
    state = dict(ckpt["state_dict"])
    for key, value in ckpt["current_model_state"].items():
        if key.startswith("recogniser."):
            state["ema." + key[len("recogniser."):]] = value
    old["state_dict"], old[EMA_SWAPPED] = state, True
    # the average was a submodule: its parameters (never stepped, so without state) followed the recogniser's in
    # every optimiser group
    optimisers = []
    for optimiser in ckpt["optimizer_states"]:
        groups, states, index = [], {}, 0
        for group in optimiser["param_groups"]:
            ids = []
            for original in group["params"]:
                if original in optimiser["state"]:
                    states[index] = optimiser["state"][original]
                ids.append(index)
                index += 1
            ids += list(range(index, index + len(ids)))
            index += len(group["params"])
            groups.append({**group, "params": ids})
        optimisers.append({"state": states, "param_groups": groups})
    old["optimizer_states"] = optimisers
    old["callbacks"] = {k: v for k, v in ckpt["callbacks"].items() if "EMAWeights" not in k}
    return old


def test_checkpoints_of_the_hand_written_average_still_load_and_resume(tmp_path):
    from speech.model.checkpoint import load_recogniser

    decay = 0.9
    _, first = fit(tiny_module(decay), tmp_path / "a", steps_per_epoch=3, epochs=1)
    (ckpt_file,) = (tmp_path / "a" / "checkpoints").glob("*.ckpt")
    old_file = tmp_path / "old.ckpt"
    torch.save(legacy_layout(read_checkpoint(ckpt_file)), old_file)
    average = expected_average(first.raw, decay)
    # evaluation and export read recogniser.*: the average
    served = load_recogniser(old_file)
    assert_close({f"recogniser.{n}": p.detach() for n, p in served.named_parameters()}, average)
    # resuming takes the raw weights and continues the stored average
    module = tiny_module(decay)
    _, resumed = fit(module, tmp_path / "b", steps_per_epoch=3, epochs=2, ckpt_path=old_file)
    assert_close(resumed.raw[0], first.raw[-1])
    assert_close(weights(module), expected_average(first.raw + resumed.raw[1:], decay))
    # without averaging now, training goes on from the raw weights
    plain = tiny_module(0.0)
    _, again = fit(plain, tmp_path / "c", steps_per_epoch=3, epochs=2, ckpt_path=old_file)
    assert_close(again.raw[0], first.raw[-1])


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_the_callback_refuses_decays_outside_0_1(decay):
    with pytest.raises(ValueError, match="decay must be in"):
        EMAWeights(decay)
