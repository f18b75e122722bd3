#!/usr/bin/env python
"""Inference latency of one 1 s clip on ONE CPU thread: PyTorch eager, torch.compile and ONNX Runtime.

    python scripts/bench_latency.py [--ckpt CKPT] [--repeats 300] [--batch 64] [--json FILE]

Without ``--ckpt`` it builds the default-size recogniser (the code defaults of FrontEndConfig and RecurrentConfig) with
random weights: latency does not depend on the weights. For each back end it reports the median and p99 in ms
of the front end (waveform -> normalised MFCC), the classifier (MFCC -> probabilities) and the whole pipeline
(timed as one call, not summed), batch 1; and clips/s for the whole pipeline at ``--batch`` clips per call.
PyTorch runs with ``torch.set_num_threads(1)``, ONNX Runtime with ``intra_op_num_threads=1``.
``--onnx-frontend`` adds a row with the front end exported to ONNX too (dynamo exporter, ~10 s to export).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from speech.utils.timing import call_times_ms

REPO = Path(__file__).resolve().parents[1]
SHARED_CLIP_DIR = REPO.parent / "shared" / "data" / "sc-v2-test-fit" / "yes"
GOAL_MS = 3.0  # issue #10: one 1 s window may cost up to 3 ms with ONNX Runtime on one thread


def stats(ms: np.ndarray) -> dict:
    return {
        "median_ms": float(np.median(ms)),
        "p99_ms": float(np.percentile(ms, 99)),
        "min_ms": float(ms.min()),
    }


def measure(frontend, classifier, total, total_batch, batch: int, args, **extra) -> dict:
    """Batch-1 stats of the three stages (interleaved) and clips/s of ``total_batch`` on ``batch`` clips."""
    times = call_times_ms(
        {"frontend": frontend, "classifier": classifier, "total": total}, args.repeats, args.warmup
    )
    batch_ms = call_times_ms({"batch": total_batch}, args.batch_repeats, 2)["batch"]
    return {
        **{name: stats(ms) for name, ms in times.items()},
        "clips_per_s": batch / (float(np.median(batch_ms)) / 1e3),
        **extra,
    }


def load_clip() -> tuple[np.ndarray, str]:
    from speech.audio.io import load_audio

    files = sorted(SHARED_CLIP_DIR.glob("*.wav")) if SHARED_CLIP_DIR.is_dir() else []
    if files:
        return load_audio(files[0]), str(files[0])
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal(16000)).astype(np.float32), "random noise (no shared clip found)"


def _torch_row(frontend, classifier, clip, batch, args, **extra) -> dict:
    with torch.inference_mode():
        feats = frontend(clip)
        return measure(
            lambda: frontend(clip),
            lambda: torch.softmax(classifier(feats), -1),
            lambda: torch.softmax(classifier(frontend(clip)), -1),
            lambda: torch.softmax(classifier(frontend(batch)), -1),
            len(batch),
            args,
            **extra,
        )


def bench_eager(model, clip, batch, args) -> dict:
    return _torch_row(model.frontend, model.classifier, clip, batch, args)


def bench_compiled(model, clip, batch, args) -> dict:
    started = time.perf_counter()
    frontend = torch.compile(model.frontend, dynamic=False)
    classifier = torch.compile(model.classifier, dynamic=False)
    with torch.inference_mode():
        diff = float(
            (torch.softmax(classifier(frontend(clip)), -1) - torch.softmax(model(clip), -1)).abs().max()
        )
        classifier(frontend(batch))  # compile the batch shape too, outside the timing
    if diff > 1e-4:
        raise RuntimeError(f"compiled scores differ from eager by {diff:.2e}")
    note = f"compile {time.perf_counter() - started:.0f} s; max |diff| vs eager {diff:.1e}"
    return _torch_row(frontend, classifier, clip, batch, args, note=note)


def bench_onnx(model, clip, batch, args, folder: Path) -> dict:
    from speech.runtime.export import export_onnx
    from speech.runtime.scorers import OnnxScorer

    path = export_onnx(model, folder / "model.onnx")
    scorer = OnnxScorer(path, intra_op_threads=1)
    clip_np, batch_np = clip.numpy(), batch.numpy()
    feats = scorer.features(clip_np)
    diff = float(np.abs(scorer.scores(clip_np) - torch.softmax(model(clip), -1).detach().numpy()).max())
    return measure(
        lambda: scorer.features(clip_np),
        lambda: scorer.scores_from_features(feats),
        lambda: scorer.scores(clip_np),
        lambda: scorer.scores(batch_np),
        len(batch_np),
        args,
        note=f"front end in PyTorch; max |diff| vs eager {diff:.1e}",
    )


def bench_onnx_frontend(model, clip, batch, args, folder: Path) -> dict:
    """Front end exported too (dynamo exporter: ONNX DFT); the classifier session as in bench_onnx."""
    import onnxruntime as ort

    from speech.runtime.scorers import OnnxScorer

    path = folder / "frontend.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model.frontend.eval(),
            (clip.repeat(2, 1),),
            dynamo=True,
            verbose=False,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    program.save(str(path))
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    scorer = OnnxScorer(folder / "model.onnx", intra_op_threads=1)
    clip_np, batch_np = clip.numpy(), batch.numpy()
    feats = session.run(None, {name: clip_np})[0]
    diff = float(np.abs(feats - model.frontend(clip).detach().numpy()).max())

    def total(x):
        return scorer.scores_from_features(session.run(None, {name: x})[0])

    return measure(
        lambda: session.run(None, {name: clip_np}),
        lambda: scorer.scores_from_features(feats),
        lambda: total(clip_np),
        lambda: total(batch_np),
        len(batch_np),
        args,
        note=f"front end in ONNX too; max |feature diff| vs PyTorch {diff:.1e}",
    )


def classifier_overrides(items: list[str]) -> dict:
    """``["input_stride=2", "pooling=mean"]`` -> ``{"input_stride": 2, "pooling": "mean"}`` (ints/floats parsed)."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = value
    return out


def table(rows: dict[str, dict], batch: int) -> str:
    head = (
        f"| back end | front end ms (median / p99) | classifier ms (median / p99) | total ms (median / p99) "
        f"| clips/s at batch {batch} | note |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---|"]
    for name, row in rows.items():
        if "error" in row:
            lines.append(f"| {name} | - | - | - | - | {row['error']} |")
            continue
        cells = [
            f"{row[k]['median_ms']:.3f} / {row[k]['p99_ms']:.3f}" for k in ("frontend", "classifier", "total")
        ]
        lines.append(f"| {name} | {' | '.join(cells)} | {row['clips_per_s']:,.0f} | {row.get('note', '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", help="checkpoint to time (default: default-size model, random weights)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="RecurrentConfig override for the random-weight model, e.g. --set input_stride=2 (repeatable)",
    )
    parser.add_argument("--repeats", type=int, default=300, help="timed batch-1 calls per measurement")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64, help="batch size of the throughput measurement")
    parser.add_argument("--batch-repeats", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument(
        "--onnx-frontend", action="store_true", help="also time the front end exported to ONNX"
    )
    parser.add_argument("--json", help="write the numbers here (refuses an existing file)")
    args = parser.parse_args(argv)
    if args.json and Path(args.json).exists():
        print(f"{args.json} exists; refusing to overwrite it", file=sys.stderr)
        return 2

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    from speech.classifiers.recurrent import RecurrentConfig
    from speech.data import LABELS_12
    from speech.model.checkpoint import load_recogniser
    from speech.model.recogniser import Recogniser

    if args.ckpt and args.set:
        print("--set applies to the random-weight model only, not to --ckpt", file=sys.stderr)
        return 2
    if args.ckpt:
        model, what = load_recogniser(args.ckpt), args.ckpt
    else:
        torch.manual_seed(0)
        overrides = classifier_overrides(args.set)
        model = Recogniser(LABELS_12, classifier=RecurrentConfig(**overrides))
        what = "default-size Recogniser (RecurrentConfig defaults"
        what += "".join(f", {k}={v}" for k, v in overrides.items()) + "), random weights"
    model.eval()
    from speech.audio.io import fit_window

    wave, clip_name = load_clip()
    clip = torch.from_numpy(fit_window(wave, model.frontend.config.window_samples))[None]  # the model's window
    batch = clip.repeat(args.batch, 1) + 0.01 * torch.randn(
        args.batch, clip.shape[1], generator=torch.Generator().manual_seed(0)
    )

    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        benches = [("PyTorch eager", lambda: bench_eager(model, clip, batch, args))]
        if not args.no_compile:
            benches.append(("torch.compile", lambda: bench_compiled(model, clip, batch, args)))
        benches.append(("ONNX Runtime", lambda: bench_onnx(model, clip, batch, args, Path(tmp))))
        if args.onnx_frontend:
            benches.append(
                (
                    "ONNX Runtime, front end in ONNX",
                    lambda: bench_onnx_frontend(model, clip, batch, args, Path(tmp)),
                )
            )
        for name, bench in benches:
            print(f"timing {name} ...", file=sys.stderr, flush=True)
            try:
                rows[name] = bench()
            except Exception as exc:  # a back end that fails is reported, not fatal
                rows[name] = {
                    "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
                }

    machine = f"{platform.machine()}, {os.cpu_count()} CPU(s), {platform.processor() or platform.platform()}"
    try:
        load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load average unknown"
    print(f"model: {what} ({model.classifier.num_parameters:,} classifier parameters)")
    print(f"clip: {clip_name}, in the model's {model.frontend.config.window_ms:g} ms window; machine: {machine}; {load}; torch {torch.__version__}, 1 thread\n")
    print(table(rows, args.batch))
    onnx_row = rows.get("ONNX Runtime", {})
    if "total" in onnx_row:
        verdict = "meets" if onnx_row["total"]["median_ms"] < GOAL_MS else "misses"
        print(
            f"\nONNX Runtime total {onnx_row['total']['median_ms']:.2f} ms per {model.frontend.config.window_ms:g} ms window: "
            f"{verdict} the {GOAL_MS:g} ms goal"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"model": what, "clip": clip_name, "machine": machine, "load": load, "rows": rows}, indent=2
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
