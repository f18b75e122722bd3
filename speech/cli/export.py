"""``speech export CKPT [CKPT ...] --onnx FILE.onnx [--opset N] [--overwrite]``: the classifier as ONNX (dynamic
batch), with labels, front-end settings and feature normaliser in the file's metadata, checked against PyTorch
after export. Several checkpoints (e.g. the same recipe trained with different seeds) are exported as one ensemble
that averages their probabilities (:mod:`speech.ensemble`).
"""

from __future__ import annotations

import argparse
import sys

from speech.export import DEFAULT_OPSET


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", nargs="+",
                        help="training checkpoint (.ckpt); two or more: one ensemble averaging their probabilities")
    parser.add_argument("--onnx", required=True, metavar="FILE.onnx", help="output file")
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from speech.export import export_onnx
    from speech.model_file import CheckpointError, OnnxModelError
    from speech.report import check_can_create
    from speech.scorers import OnnxScorer

    try:
        target = Path(args.onnx)
        if target.is_dir():
            raise FileExistsError(f"{target}: is a folder; --onnx takes a file name (e.g. {target / 'model.onnx'})")
        if not target.exists() or args.overwrite:
            check_can_create(target, "ONNX file")
        path = export_onnx(args.checkpoint, args.onnx, opset=args.opset, overwrite=args.overwrite)
    except FileExistsError as exc:
        print(f"speech export: error: {exc} (choose another name or pass --overwrite)", file=sys.stderr)
        return 2
    except (CheckpointError, OnnxModelError, PermissionError, ValueError) as exc:
        print(f"speech export: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"speech export: error: cannot write {args.onnx}: {exc}", file=sys.stderr)
        return 1
    scorer = OnnxScorer(path)
    members = len(args.checkpoint)
    print(
        f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, opset {args.opset}"
        + (f", an ensemble of {members} models" if members > 1 else "") + f"): {len(scorer.labels)} classes "
        f"{scorer.labels}, {scorer.num_parameters:,} parameters; checked against PyTorch"
    )
    return 0
