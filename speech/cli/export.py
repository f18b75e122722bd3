"""``speech export CKPT [CKPT ...] --onnx FILE.onnx [--opset N] [--overwrite]``: the classifier as ONNX (dynamic
batch), with labels, front-end settings and feature normaliser in the file's metadata, checked against PyTorch
after export. Several checkpoints (e.g. the same recipe trained with different seeds) are exported as one ensemble
that averages their probabilities (:mod:`speech.model.ensemble`).
"""

from __future__ import annotations

import argparse

from speech.runtime.export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET

FLAG_HINTS = {"opset": "--opset", "onnx": "--onnx", "overwrite": "choose another name or pass --overwrite"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", nargs="+",
                        help="training checkpoint (.ckpt); two or more: one ensemble averaging their probabilities")
    parser.add_argument("--onnx", required=True, metavar="FILE.onnx", help="output file")
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    from speech.errors import SettingError
    from speech.models import packaged_names, resolve_model
    from speech.runtime.export import export_onnx
    from speech.runtime.scorers import OnnxScorer

    for name in args.checkpoint:  # a packaged name, where no file of that name wins over it (resolve_model's rule)
        if name in packaged_names() and (choice := resolve_model(name)).name:
            raise SettingError(f"{name}: the packaged model, already an ONNX file ({choice.path}); export "
                               "takes a training checkpoint (.ckpt)")

    path = export_onnx(args.checkpoint, args.onnx, opset=args.opset, overwrite=args.overwrite)
    scorer = OnnxScorer(path)
    members = len(args.checkpoint)
    print(
        f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, opset {args.opset}"
        + (f", an ensemble of {members} models" if members > 1 else "") + f"): {len(scorer.labels)} classes "
        f"{scorer.labels}, {scorer.num_parameters:,} parameters; checked against PyTorch"
    )
    return 0
