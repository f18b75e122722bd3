#!/usr/bin/env python
"""Recurrent cells side by side (issue #35): parameters, training cost and the cost per 100 ms hop of each cell and
direction, on random weights (the costs do not depend on them), one CPU thread.

For each classifier (``--set`` rows, default: GRU, LSTM and plain RNN, bidirectional and not, at hidden 128 and at
the GRU's parameter count, and the unidirectional GRU pooled by attention) it prints:
  * parameters (12 classes);
  * train ms/batch: one training step (forward, cross-entropy, backward, AdamW) on a batch of ``--batch`` normalised
    feature windows of ``--window-ms`` (the live recipe's 1.5 s), PyTorch, median of ``--steps`` after warm-up: the
    network's share of an epoch (the front end, augmentation and data loading are the same for every cell);
  * window ms/hop: ONNX Runtime scoring one window, what the window re-run costs every hop;
  * stream ms/hop: ONNX Runtime running one hop's new frames (100 ms: 5 recurrent steps) for ``--states`` staggered
    states in one call (:mod:`speech.streaming.stateful`), unidirectional rows only.
Times are the calling thread's CPU time (what the work costs even when other processes share the cores).

  python scripts/bench_cells.py
  python scripts/bench_cells.py --set '{"cell": "lstm", "bidirectional": false, "pooling": "last"}' --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from speech.data.labels import LABELS_12  # noqa: E402
from speech.streaming.stateful import DEFAULT_STATES  # noqa: E402

BI, UNI = {"bidirectional": True, "pooling": "attention"}, {"bidirectional": False, "pooling": "last"}
DEFAULT_ROWS = [
    {"cell": c, "hidden_size": 128, **d} for d in (BI, UNI) for c in ("gru", "lstm", "rnn")
] + [  # equal parameters: the GRU's (471,696 bidirectional, 188,044 unidirectional)
    {"cell": "lstm", "hidden_size": 110, **BI}, {"cell": "rnn", "hidden_size": 225, **BI},
    {"cell": "lstm", "hidden_size": 110, **UNI}, {"cell": "rnn", "hidden_size": 229, **UNI},
    {"cell": "gru", "hidden_size": 128, "bidirectional": False, "pooling": "attention"},  # streams too
]


def cpu_ms(fn, repeats: int) -> float:
    """Median CPU time of the calling thread per call of ``fn``, in ms, after 3 untimed calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        times.append(1000 * (time.thread_time() - start))
    return statistics.median(times)


def measure(settings: dict, args: argparse.Namespace, folder: Path) -> dict:
    from speech.frontend.mfcc import FrontEndConfig
    from speech.model.recogniser import Recogniser
    from speech.runtime.export import export_onnx
    from speech.runtime.scorers import OnnxScorer

    torch.manual_seed(0)
    model = Recogniser(LABELS_12, FrontEndConfig(window_ms=args.window_ms), classifier=settings)
    classifier = model.classifier
    frames = model.frontend.config.window_frames
    feats = torch.randn(args.batch, frames, model.frontend.config.n_mfcc)
    targets = torch.randint(0, len(LABELS_12), (args.batch,))
    optimiser = torch.optim.AdamW(classifier.parameters(), lr=1e-3)
    classifier.train()

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(classifier(feats), targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    row = {"settings": settings, "parameters": classifier.num_parameters,
           "train_ms_per_batch": cpu_ms(step, args.steps)}
    name = "-".join(str(v) for v in settings.values())
    scorer = OnnxScorer(export_onnx(model.eval(), folder / f"{name}.onnx"))
    window = np.random.default_rng(0).standard_normal((1, frames, model.frontend.config.n_mfcc)).astype(np.float32)
    row["window_ms_per_hop"] = cpu_ms(lambda: scorer.scores_from_features(window), args.repeat)
    if scorer.streams:
        from speech.streaming.stateful import frames_for_steps

        rows, hidden = scorer.stream_state_shape  # one 100 ms hop: 5 recurrent steps of stride 2
        chunk = np.zeros((args.states, frames_for_steps(scorer.stream_context, 5), window.shape[2]), np.float32)
        chunk[:] = window[0, : chunk.shape[1]]
        state = np.zeros((rows, args.states, hidden), np.float32)
        row["stream_ms_per_hop"] = cpu_ms(lambda: scorer.stream_step(chunk, state), args.repeat)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=json.loads, action="append", dest="rows", metavar="JSON",
                        help="classifier settings of one row (repeatable; default: the eleven of the docstring)")
    parser.add_argument("--window-ms", type=float, default=1500.0, help="the classifier's window (1500)")
    parser.add_argument("--batch", type=int, default=64, help="training batch (64)")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps (10)")
    parser.add_argument("--repeat", type=int, default=300, help="timed scoring calls (300)")
    parser.add_argument("--states", type=int, default=DEFAULT_STATES,
                        help=f"staggered states of the stream mode ({DEFAULT_STATES}, the engine's default)")
    parser.add_argument("--json", type=Path, help="also write the rows here (a new file)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    rows = []
    print(f"1 CPU thread; window {args.window_ms:g} ms; training batch {args.batch}; stream mode: {args.states} states")
    print(f"{'cell':<5} {'dir':<4} {'pooling':<9} {'hidden':>6} {'params':>9} {'train ms/batch':>15} {'window ms/hop':>14} "
          f"{'stream ms/hop':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for settings in args.rows or DEFAULT_ROWS:
            r = measure(settings, args, Path(tmp))
            rows.append(r)
            s = r["settings"]
            stream = f"{r['stream_ms_per_hop']:.3f}" if "stream_ms_per_hop" in r else "-"
            print(f"{s.get('cell', 'gru'):<5} {'bi' if s.get('bidirectional', True) else 'uni':<4} "
                  f"{s.get('pooling', 'attention'):<9} "
                  f"{s.get('hidden_size', 128):>6} {r['parameters']:>9,} {r['train_ms_per_batch']:>15.1f} "
                  f"{r['window_ms_per_hop']:>14.3f} {stream:>14}", flush=True)
    if args.json:
        with args.json.open("x") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
