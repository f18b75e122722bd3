"""``speech hard-negatives MODEL --running-speech DIR --out FILE.npy``: windows of the train readers' running speech
on which a trained model (nearly) fires, for ``--data.running_speech_hard_negatives`` (the mining:
:mod:`speech.evaluation.streams.hard_negatives`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speech.cli.live import MODEL_HELP

FLAG_HINTS = {"out": "--out"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    parser.add_argument("--running-speech", required=True, type=Path, metavar="DIR",
                        help="running-speech folder (LibriSpeech layout); only its train readers are mined")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE.npy",
                        help="new .npy file for the windows (a .json beside it describes them)")
    parser.add_argument("--threshold", type=float, default=0.5, help="raw keyword score a window must exceed (0.5)")
    parser.add_argument("--min-gap", type=float, default=0.5, help="seconds between kept windows (0.5)")
    parser.add_argument("--max-windows", type=int, help="keep at most this many (the highest scores)")
    parser.add_argument("--max-minutes", type=float, help="mine at most this many minutes of speech (default: all)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from speech.errors import OutputExistsError, SettingError
    from speech.evaluation.streams.hard_negatives import mine
    from speech.models import resolve_model
    from speech.runtime.scorers import load_scorer
    from speech.utils.files import check_can_create

    out, meta = args.out, args.out.with_suffix(".json")
    if out.suffix != ".npy":
        raise SettingError(f"{out}: the windows file must end in .npy", param="out")
    for path in (out, meta):
        if path.exists():
            raise OutputExistsError(f"{path} exists; refusing to overwrite it", param="out")
        check_can_create(path, "output file", param="out")
    model = resolve_model(args.model).path
    windows, info = mine(load_scorer(model), args.running_speech, threshold=args.threshold, min_gap_s=args.min_gap,
                         max_windows=args.max_windows, max_minutes=args.max_minutes)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, windows)
    meta.write_text(json.dumps({**info, "model": str(model)}, indent=2) + "\n")
    print(f"{len(windows)} windows of {len(info['readers'])} train readers ({info['stream_seconds'] / 3600:.2f} h, "
          f"{info['windows_over_threshold_per_hour']:.0f} hops/h over {args.threshold:g}) as "
          f"{info['as_keyword']} -> {out}")
    return 0
