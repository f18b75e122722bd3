"""CTC pretraining of the encoder on the running speech of the train readers (and the keyword clips of a training
config's training split), and a keyword model started from it."""

from __future__ import annotations

import dataclasses
import logging
import re

import pytest
import torch
from conftest import LABELS_12, REPO, SHARED_DATA, train_args
from conftest import SMALL_MODEL as SMALL_MODEL_ARGS

from speech.classifiers.recurrent import RecurrentClassifier, RecurrentConfig
from speech.cli import main as speech_main
from speech.cli.train import main as train_main
from speech.data.record import DataRecord
from speech.data.running_speech import read_running_speech, split_readers
from speech.data.splits import SplitSettings
from speech.errors import SettingError
from speech.frontend.features import FrontEnd, FrontEndConfig
from speech.model.checkpoint import load_recogniser
from speech.model.model_file import read_checkpoint
from speech.training.config_data import read_training_config
from speech.training.pretraining import (
    ALPHABET,
    check_encoder_readers,
    check_encoder_speakers,
    decode_greedy,
    edit_distance,
    encode_text,
    keyword_clips,
    load_encoder,
    pretrain,
)

LIBRISPEECH_MINI = SHARED_DATA / "librispeech-mini"
SMALL = RecurrentConfig(hidden_size=32, num_layers=1, input_channels=32)  # conftest.SMALL_MODEL


def test_characters_round_trip_through_the_best_path():
    target = encode_text(["DON'T", "GO"])
    assert "".join(ALPHABET[i - 1] for i in target) == "DON'T GO" and 0 not in target
    # frames: blank D D O blank N ' T space G blank O O -> repeats merged, blanks dropped
    path = [0, *target[:1], *target[:1], target[1], 0, *target[2:], target[-1]]
    log_probs = torch.full((len(path), len(ALPHABET) + 1), -10.0)
    log_probs[torch.arange(len(path)), torch.tensor(path)] = 0.0
    assert decode_greedy(log_probs) == "DON'T GO"
    assert edit_distance("KITTEN", "SITTING") == 3 and edit_distance("", "ABC") == 3 and edit_distance("AB", "AB") == 0


class EpochLosses(logging.Handler):
    """The CTC loss of each epoch, from the one log line per epoch pretraining writes."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.losses: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = re.match(r"epoch (\d+)/\d+, CTC loss ([\d.]+)", record.getMessage())
        if found:
            assert int(found.group(1)) == len(self.losses) + 1
            self.losses.append(float(found.group(2)))


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    out = tmp_path_factory.mktemp("enc") / "encoder.pt"
    logger, handler = logging.getLogger("speech.training.pretraining"), EpochLosses()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        info = pretrain(LIBRISPEECH_MINI, out, epochs=3, classifier=SMALL, max_minutes=3, accelerator="cpu")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return out, {**info, "epoch_losses": handler.losses}


def test_pretraining_learns_from_the_train_readers_only_and_writes_a_new_file(encoder):
    out, info = encoder
    split = split_readers(read_running_speech(LIBRISPEECH_MINI).readers, seed=0)
    assert info["readers"] == split.readers("train") and info["sentences"] > 0 and 0 < info["hours"] < 0.1
    # it learns: the CTC loss falls every epoch, and the file records the last
    losses = info["epoch_losses"]
    assert len(losses) == 3 and all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
    assert losses[-1] < 0.8 * losses[0] and info["final_ctc_loss"] == pytest.approx(losses[-1], abs=1e-3)
    assert 0 <= info["calibration_readers_cer"] <= 1.5  # a few minutes spell nothing yet (test_pretraining_spells)
    payload = torch.load(out, weights_only=True)
    assert set(payload["encoder"]) and all(k.startswith(("input.", "rnn.")) for k in payload["encoder"])
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        pretrain(LIBRISPEECH_MINI, out, epochs=1, classifier=SMALL, max_minutes=1)
    assert out.read_bytes() == before


@pytest.mark.slow  # by default: test_pretraining_learns_from_the_train_readers_only_and_writes_a_new_file
def test_pretraining_spells_some_of_the_calibration_readers_sentences(tmp_path):
    """Long enough to leave the all-blank stage (an empty output scores CER 1.0; a few epochs stay there, and
    between the two the output is chance): 30 epochs of 3 minutes in small batches on one thread.
    Measured with seeds 0-3: CER 0.76-0.83 on the 4 unseen readers' sentences, final CTC loss 0.74-0.95."""
    out = tmp_path / "encoder.pt"
    info = pretrain(LIBRISPEECH_MINI, out, epochs=30, classifier=SMALL, max_minutes=3, accelerator="cpu", lr=0.02,
                    max_batch_seconds=10.0)
    assert info["final_ctc_loss"] < 1.5 and info["calibration_sentences"] >= 4
    assert info["calibration_readers_cer"] < 0.9, info


def test_the_encoder_weights_go_into_a_matching_classifier_only(encoder):
    out, _ = encoder
    classifier = RecurrentClassifier(40, 12, SMALL)
    head = classifier.head[1].weight.clone()
    load_encoder(classifier, FrontEnd(FrontEndConfig()), out)
    state = torch.load(out, weights_only=True)["encoder"]
    assert all(torch.equal(classifier.state_dict()[k], v) for k, v in state.items())
    assert torch.equal(classifier.head[1].weight, head)  # the head stays as it was
    # it ran on whole sentences, so a model of a longer window takes it; other features do not
    load_encoder(RecurrentClassifier(40, 12, SMALL), FrontEnd(FrontEndConfig(window_ms=1500.0)), out)
    with pytest.raises(SettingError, match=r"settings \(frontend\) differ"):
        load_encoder(RecurrentClassifier(40, 12, SMALL), FrontEnd(FrontEndConfig(n_mels=64)), out)
    wider = RecurrentClassifier(40, 12, RecurrentConfig(hidden_size=48, num_layers=1, input_channels=32))
    with pytest.raises(SettingError, match=r"settings \(hidden_size\) differ"):
        load_encoder(wider, FrontEnd(FrontEndConfig()), out)
    centred = RecurrentClassifier(40, 12, dataclasses.replace(SMALL, window_mean=True))  # sees other features
    with pytest.raises(SettingError, match=r"settings \(window_mean\) differ"):
        load_encoder(centred, FrontEnd(FrontEndConfig()), out)


def test_a_keyword_model_trains_from_the_encoder_and_refuses_one_of_held_out_readers(encoder, small_tree, cache_dir,
                                                                                   tmp_path, capsys):
    out, info = encoder
    runs = tmp_path / "runs"
    # a run that cannot move its weights (learning rate 0) ends where it started: its input layer and GRU are the
    # encoder file's, its head a fresh one
    code = train_main([*train_args(small_tree, runs, cache_dir), "--trainer.max_epochs", "1", "--model.lr", "0",
                       "--trainer.limit_train_batches", "2", "--model.encoder", str(out)])
    assert code == 0, capsys.readouterr().err[-2000:]
    checkpoint = next((runs / "test" / "version_0" / "checkpoints").glob("best*.ckpt"))
    assert read_checkpoint(checkpoint)["hyper_parameters"]["encoder"] == str(out)
    classifier = load_recogniser(checkpoint).classifier
    saved = torch.load(out, weights_only=True)["encoder"]
    weights = {k: v for k, v in classifier.named_parameters() if k.startswith(("input.", "rnn."))}
    assert weights and set(weights) <= set(saved)  # the file also holds the batch-norm statistics (buffers)
    assert [k for k, v in weights.items() if not torch.equal(v, saved[k])] == []
    # without running speech in its data, the model trains on none of the encoder's readers: refused
    code = train_main([*train_args(small_tree, runs, cache_dir), "--trainer.max_epochs", "1",
                       "--model.encoder", str(out), "--data.running_speech", "null"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("speech train: error:")]
    assert code == 2 and len(lines) == 1 and "does not train on" in lines[0] and "Traceback" not in err, err[-2000:]
    assert sorted(p.name for p in (runs / "test").iterdir()) == ["version_0"]  # refused before any run folder


def test_readers_outside_the_record_are_refused():
    info = {"root": str(LIBRISPEECH_MINI), "readers": ["19", "26"]}
    record = {"root": str(LIBRISPEECH_MINI), "training_readers": ["19", "26", "27"]}
    check_encoder_readers(info, record)  # a subset of the trained readers: fine
    with pytest.raises(SettingError, match="does not train on"):
        check_encoder_readers({**info, "readers": ["19", "32"]}, record)
    for other in ({**info, "root": "/elsewhere"}, None):
        with pytest.raises(SettingError, match="does not train on"):
            check_encoder_readers(other if other else info, record if other else None)


def test_the_command_line_refuses_bad_input_in_one_line(tmp_path, capsys):
    existing, new = tmp_path / "encoder.pt", tmp_path / "new.pt"
    existing.write_bytes(b"mine")
    for folder, out, expected in ((tmp_path, new, "no transcripts"), (LIBRISPEECH_MINI, existing, "refusing to overwrite")):
        code = speech_main(["pretrain", "--running-speech", str(folder), "--out", str(out)])
        err = capsys.readouterr().err
        assert err.startswith("speech pretrain: error: "), err
        assert code == 2 and expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert existing.read_bytes() == b"mine" and not new.exists()


# -- every speaker: the keyword clips of a training config's training split (issue #34, item 6) ------------------

def small_config(small_tree, cache_dir, *extra: str):
    """cpu-small.yaml on the small tree, with the tests' small model (as ``train_args`` gives it to training)."""
    settings = [f"data.root={small_tree}", f"data.cache_dir={cache_dir}", "data.extra_roots=null",
                *(f"{SMALL_MODEL_ARGS[i][2:]}={SMALL_MODEL_ARGS[i + 1]}" for i in range(0, len(SMALL_MODEL_ARGS), 2)),
                *extra]
    return read_training_config(REPO / "configs" / "cpu-small.yaml", settings)


def test_a_training_config_is_read_with_its_base_and_overrides(small_tree, cache_dir):
    config = small_config(small_tree, cache_dir)
    assert config.data.root == small_tree and config.data.extra_roots == [] and config.data.class_balance == 1.0
    assert config.data.split.validation_percent == 10.0 and config.data.split.rule == "speaker"  # cpu-small.yaml's
    assert tuple(config.data.augment_config.gain_db) == (-12, 6) and config.data.batch_size == 64
    assert config.frontend == {"window_ms": 1500.0} and config.classifier["hidden_size"] == 32
    for bad, expected in ((["data.root"], "expected data.KEY=VALUE"), (["trainer.max_epochs=1"], "expected data.KEY"),
                          (["data.no_such_setting=1"], "no_such_setting"), (["data.root=[unclosed"], "not valid YAML")):
        with pytest.raises(SettingError, match=re.escape(expected)) as caught:
            read_training_config(REPO / "configs" / "cpu-small.yaml", bad)
        assert "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def clip_encoder(tmp_path_factory, small_tree, cache_dir):
    out = tmp_path_factory.mktemp("enc-clips") / "encoder.pt"
    config = small_config(small_tree, cache_dir)
    info = pretrain(LIBRISPEECH_MINI, out, epochs=1, keywords=config, max_minutes=1, accelerator="cpu")
    return out, info, config


def test_pretraining_hears_the_training_speakers_of_every_word_and_no_held_out_one(clip_encoder):
    out, info, config = clip_encoder
    training = config.data.examples("training")
    spoken = [ex for ex in training if ex.path and not ex.word.startswith("_")]
    held_out = {ex.speaker for part in ("validation", "testing") for ex in config.data.examples(part)}
    assert info["keyword_clips"] == len(spoken) > 100
    assert info["keyword_speakers"] == sorted({ex.speaker for ex in spoken}) and not held_out & set(info["keyword_speakers"])
    assert info["keyword_roots"] == [str(config.data.index.root)]
    # every keyword by its word, _unknown_ clips by the words they say, no _silence_ clip
    words = info["keyword_words"]
    assert {"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"} <= set(words)
    assert sum(words.values()) == len(spoken) and not any(w.startswith("_") for w in words)
    unknown_words = {ex.word for ex in spoken if config.data.labels[ex.label] == "_unknown_"}
    assert unknown_words and unknown_words <= set(words) and not unknown_words & set(LABELS_12)
    # the model settings are the config's
    payload = torch.load(out, weights_only=True)
    assert payload["classifier"]["hidden_size"] == 32 and payload["frontend"]["window_ms"] == 1500.0
    assert info["hours"] > info["running_speech_hours"] > 0
    # --max-clips: a seeded sample of the same clips, the same each time
    sample, sampled = keyword_clips(config.data, max_clips=50)
    assert sampled["keyword_clips"] == len(sample.waves) == 50 and sampled == keyword_clips(config.data, 50)[1]
    assert set(sampled["keyword_speakers"]) <= set(info["keyword_speakers"]) and sample.texts[0] in words


def test_a_keyword_model_refuses_an_encoder_that_heard_its_held_out_speakers(clip_encoder, small_tree, cache_dir,
                                                                             tmp_path, capsys):
    out, info, _ = clip_encoder
    runs = tmp_path / "runs"
    # the same split: accepted, and the run starts from the encoder
    code = train_main([*train_args(small_tree, runs, cache_dir), "--trainer.max_epochs", "1", "--model.lr", "0",
                       "--trainer.limit_train_batches", "1", "--model.encoder", str(out)])
    assert code == 0, capsys.readouterr().err[-2000:]
    capsys.readouterr()
    # another split seed holds out speakers the encoder heard: refused in one line, before any run folder
    code = train_main([*train_args(small_tree, runs, cache_dir), "--trainer.max_epochs", "1",
                       "--data.split_seed", "1", "--model.encoder", str(out)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("speech train: error:")]
    assert code == 2 and len(lines) == 1 and "speakers this model does not train on" in lines[0], err[-2000:]
    assert "Traceback" not in err and sorted(p.name for p in (runs / "test").iterdir()) == ["version_0"]


def test_speaker_check_of_an_encoder_file():
    record = DataRecord(root="/d", layout="test-set", labels="12", split=SplitSettings(), split_method="speaker",
                        training_speakers=["a", "b", "c"])
    check_encoder_speakers({"keyword_speakers": ["a", "c"]}, record)
    check_encoder_speakers({"readers": ["19"]}, record)  # an encoder of running speech only
    with pytest.raises(SettingError, match=r"heard 1 speakers this model does not train on \(e.g. z\)"):
        check_encoder_speakers({"keyword_speakers": ["a", "z"]}, record)
    with pytest.raises(SettingError, match="heard 2 speakers"):
        check_encoder_speakers({"keyword_speakers": ["a", "z"]}, None)


def test_the_command_line_refuses_bad_training_settings_in_one_line(tmp_path, capsys):
    for args, expected in ((["--set", "data.root=x"], "give --config"),
                           (["--config", str(tmp_path / "none.yaml")], "no such training config"),
                           (["--config", str(REPO / "configs" / "cpu-small.yaml"), "--set", "model=1"],
                            "expected data.KEY=VALUE"),
                           (["--config", str(REPO / "configs" / "cpu-small.yaml"), "--hidden-size", "64"],
                            "--hidden-size: with --config the model settings are the config's")):
        code = speech_main(["pretrain", "--running-speech", str(LIBRISPEECH_MINI), "--out", str(tmp_path / "enc.pt"),
                            *args])
        err = capsys.readouterr().err
        assert code == 2 and expected in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1 and err.startswith("speech pretrain: error: ")
    assert not (tmp_path / "enc.pt").exists()
