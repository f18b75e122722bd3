"""``speech pretrain --running-speech DIR --out encoder.pt [--config CONFIG [--set data.KEY=VALUE ...]]``: CTC
pretraining of the recurrent classifier's encoder on the train readers' transcribed running speech and, with a
training config, on the keyword clips of its training split (:mod:`speech.training.pretraining`); ``speech train
--model.encoder FILE`` starts a keyword model from it."""

from __future__ import annotations

import argparse
from pathlib import Path

from speech.classifiers.recurrent import CELLS, RecurrentConfig
from speech.errors import SettingError

FLAG_HINTS = {"out": "--out", "encoder": "--out", "config": "--config", "set": "--set"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--running-speech", required=True, type=Path, metavar="DIR",
                        help="running-speech folder (LibriSpeech layout with transcripts); its train readers are used")
    parser.add_argument("--out", required=True, type=Path, help="new file for the encoder (e.g. encoder.pt)")
    parser.add_argument("--config", type=Path, metavar="CONFIG",
                        help="a training config (e.g. configs/cpu-small.yaml): also learn from the keyword clips of its "
                             "training split, with its model settings")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of --config, e.g. --set data.extra_roots=null (repeatable)")
    parser.add_argument("--max-clips", type=int, help="use a seeded sample of this many keyword clips")
    parser.add_argument("--epochs", type=int, default=20, help="epochs (20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (0.003)")
    defaults = RecurrentConfig()  # the model settings: None when not given (with --config the config's hold)
    parser.add_argument("--cell", choices=CELLS, help=f"recurrent cell ({defaults.cell})")
    parser.add_argument("--unidirectional", action="store_true", help="a unidirectional encoder (default: both ways)")
    parser.add_argument("--hidden-size", type=int, help=f"({defaults.hidden_size})")
    parser.add_argument("--num-layers", type=int, help=f"({defaults.num_layers})")
    parser.add_argument("--input-channels", type=int, help=f"({defaults.input_channels})")
    parser.add_argument("--batch-seconds", type=float, default=60.0, help="audio per batch, at most (60)")
    parser.add_argument("--max-minutes", type=float, help="use about this many minutes of the train readers")
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator (auto)")


def run(args: argparse.Namespace) -> int:
    import logging

    from speech.training.pretraining import pretrain

    logging.getLogger("lightning").setLevel(logging.WARNING)
    keywords = None
    if args.config is not None:
        from speech.training.config_data import read_training_config

        keywords = read_training_config(args.config, args.set)
    elif args.set:
        raise SettingError(f"--set {args.set[0]}: overrides a training config; give --config", param="set")
    given = {name: value for name, value in (("cell", args.cell), ("hidden_size", args.hidden_size),
                                             ("num_layers", args.num_layers), ("input_channels", args.input_channels))
             if value is not None}
    if args.unidirectional:
        given["bidirectional"] = False
    if keywords is not None and given:
        name = next(iter(given))
        raise SettingError(f"--{'unidirectional' if name == 'bidirectional' else name.replace('_', '-')}: with --config "
                           f"the model settings are the config's (--set model.classifier.{name}=...)", param="config")
    classifier = RecurrentConfig(**given)
    info = pretrain(args.running_speech, args.out, epochs=args.epochs, seed=args.seed, classifier=classifier,
                    lr=args.lr, max_batch_seconds=args.batch_seconds, max_minutes=args.max_minutes,
                    accelerator=args.accelerator, keywords=keywords, max_clips=args.max_clips)
    heard = (f" and {info['keyword_clips']:,} keyword clips of {len(info['keyword_speakers']):,} training speakers"
             if info.get("keyword_clips") else "")
    print(f"encoder of {len(info['readers'])} train readers{heard} ({info['hours']:.2f} h, {info['epochs']} epochs, "
          f"CTC loss {info['final_ctc_loss']:.3f}); greedy character error rate on {info['calibration_sentences']} "
          f"sentences of the calibration readers {100 * info['calibration_readers_cer']:.1f} % -> {args.out}")
    return 0
