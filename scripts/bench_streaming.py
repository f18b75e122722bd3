#!/usr/bin/env python
"""Benchmark the streaming engine: cost per hop, real-time factor, and the delay from word end to event.

Cost per hop: a stream of real speech (shared test-set clips) is fed one hop at a time (1,600 samples for
100 ms) on ONE CPU thread, with the energy gate off so that the model runs on every hop; each ``feed`` call
(resampling, MFCC of the new frames, the model on the 1 s window, detection) is timed, in wall-clock time
and in CPU time of the calling thread (what the hop costs even when other processes share the cores). Both back ends run:
PyTorch eager and ONNX Runtime (a temporary export via speech.runtime.export). ``rtf`` is hop length / mean cost.
A 48 kHz input row adds the resampler. ``model`` is the classifier call alone. Each row is timed
``--repeat`` times and the run with the lowest median is kept (other processes on a shared machine
inflate single runs).

Delay: a generated stream-test recording (a word every 3 s, as ``speech stream-test``) is streamed with the
default settings through a trained model (``--delay-ckpt``, default ``--ckpt``); for every correctly
detected word, ``event time - end of speech`` is the stream delay (the word must fill enough windows to lift
the 500 ms average over 0.7); the end-to-end delay adds the compute of one hop (the event is out when the
hop's ``feed`` returns) and, live, the capture block (20 ms).

    .venv/bin/python scripts/bench_streaming.py                              # default-size model, random weights
    .venv/bin/python scripts/bench_streaming.py --ckpt model.ckpt --json out.json
    .venv/bin/python scripts/bench_streaming.py --ckpt seed0.ckpt seed1.ckpt   # an ensemble (speech.model.ensemble)
    .venv/bin/python scripts/bench_streaming.py --members 2                    # default size, random weights
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
SC_V2_TEST = REPO.parent / "shared" / "data" / "sc-v2-test-fit"

from speech.data.labels import COMMAND_WORDS_10, LABELS_12  # noqa: E402


def default_checkpoints(folder: Path, members: int = 1, classifier: dict | None = None) -> list[Path]:
    """The project's default classifier (random weights, one seed per member; ``classifier``: other settings)
    behind a front end fitted on real clips."""
    from speech.audio.io import load_audio
    from speech.model.checkpoint import save_checkpoint
    from speech.model.recogniser import Recogniser

    clips = [p for w in COMMAND_WORDS_10 for p in sorted((SC_V2_TEST / w).glob("*.wav"))[:10]]
    waves = torch.from_numpy(np.stack([load_audio(p) for p in clips]))
    paths = []
    for seed in range(members):
        torch.manual_seed(seed)
        model = Recogniser(LABELS_12, classifier=classifier)
        model.frontend.fit_normaliser(waves)
        paths.append(save_checkpoint(model.eval(), folder / f"default-random-{seed}.ckpt"))
    return paths


def open_scorers(ckpts: list[Path], onnx: Path) -> dict:
    """PyTorch and ONNX Runtime scorers of one checkpoint, or of the ensemble of several."""
    from speech.model.ensemble import load_ensemble
    from speech.runtime.export import export_onnx
    from speech.runtime.scorers import TorchScorer, load_scorer

    model = load_ensemble(ckpts)
    export_onnx(model, onnx)
    return {"torch": TorchScorer(model), "onnx": load_scorer(onnx, "onnx", intra_op_threads=1)}


def speech_stream(seconds: float, seed: int = 0) -> np.ndarray:
    """Real keyword clips in noise, TF stream-test style (16 kHz float32)."""
    from speech.audio.io import load_audio
    from speech.evaluation.streams.recording import generate_long_recording

    clips = {w: sorted((SC_V2_TEST / w).glob("*.wav"))[:40] for w in COMMAND_WORDS_10}
    clips["_unknown_"] = sorted((SC_V2_TEST / "_unknown_").glob("*.wav"))[:40]
    noise = np.concatenate([load_audio(p, samples=None) for p in sorted((SC_V2_TEST / "_silence_").glob("*.wav"))[:60]])
    return generate_long_recording(clips, noise, seconds, np.random.default_rng(seed)).wave


def per_hop_costs(scorer, wave16: np.ndarray, hop_ms: float, input_rate: int = 16_000, stateful: bool = False) -> dict:
    """Time every ``feed`` of one hop of audio (after the first full window); milliseconds. ``stateful``: the
    stream mode (speech.streaming.stateful) instead of the window re-run."""
    from speech.audio.io import resample
    from speech.streaming import StreamingConfig, StreamingRecogniser

    wave = wave16 if input_rate == 16_000 else resample(wave16, 16_000, input_rate)
    pcm = np.round(np.clip(wave, -1, 1) * 32767).astype(np.int16)
    engine = StreamingRecogniser(scorer, StreamingConfig(hop_ms=hop_ms, gate_db=None, stateful=stateful),
                                 input_rate=input_rate)
    hop = int(round(input_rate * hop_ms / 1000))
    costs, cpu = [], []
    for start in range(0, pcm.shape[0] - hop + 1, hop):
        chunk = pcm[start : start + hop]
        scored = engine.windows_scored
        c0, t0 = time.thread_time(), time.perf_counter()
        engine.feed(chunk)
        cost, cpu_cost = time.perf_counter() - t0, time.thread_time() - c0
        if engine.windows_scored > scored and start > 2 * input_rate:  # warm: skip the first two seconds
            costs.append(cost * 1000)
            cpu.append(cpu_cost * 1000)
    model_ms = 1000 * engine.model_seconds / max(1, engine.windows_scored)
    return {
        "hop_ms": hop_ms,
        "input_rate": input_rate,
        "mode": "stateful" if stateful else "window",
        "hops": len(costs),
        "median_ms": statistics.median(costs),
        "p99_ms": float(np.percentile(costs, 99)),
        "mean_ms": statistics.fmean(costs),
        "cpu_median_ms": statistics.median(cpu),
        "cpu_p99_ms": float(np.percentile(cpu, 99)),
        "model_ms": model_ms,
        "rtf": hop_ms / statistics.fmean(costs),
        "cpu_rtf": hop_ms / statistics.fmean(cpu),
    }


def delays(scorer, seconds: float, block_ms: float, hop_cost_ms: float) -> dict:
    """Stream delay statistics on a generated stream-test recording (default engine settings)."""
    from speech.audio.io import load_audio
    from speech.evaluation.streams.matching import streaming_accuracy, window_start_ms
    from speech.evaluation.streams.recording import generate_long_recording
    from speech.streaming import StreamingRecogniser, stream_array

    clips = {w: sorted((SC_V2_TEST / w).glob("*.wav")) for w in COMMAND_WORDS_10}
    clips["_unknown_"] = sorted((SC_V2_TEST / "_unknown_").glob("*.wav"))
    noise = np.concatenate([load_audio(p, samples=None) for p in sorted((SC_V2_TEST / "_silence_").glob("*.wav"))])
    rec = generate_long_recording(clips, noise, seconds, np.random.default_rng(1))
    engine = StreamingRecogniser(scorer)
    found = stream_array(engine, rec.wave, 1600)
    stats = streaming_accuracy(rec.words, [type(rec.words[0])(d.label, window_start_ms(d.time)) for d in found])
    from_end = [1000 * found[d].time - rec.ends_ms[t] for d, t, ok in stats.pairs if ok]
    from_onset = [1000 * found[d].time - rec.onsets_ms[t] for d, t, ok in stats.pairs if ok]
    if not from_end:
        return {"correct_words": 0}
    stream = statistics.median(from_end)
    return {
        "correct_words": len(from_end),
        "words": stats.words,
        "stream_delay_from_end_ms": {"median": stream, "p10": float(np.percentile(from_end, 10)),
                                     "p90": float(np.percentile(from_end, 90))},
        "stream_delay_from_onset_ms": statistics.median(from_onset),
        "end_to_end_from_end_ms": stream + hop_cost_ms + block_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, nargs="+",
                        help="checkpoint to time; several: their ensemble (default: the default model size, random "
                        "weights)")
    parser.add_argument("--members", type=int, default=1,
                        help="without --ckpt: an ensemble of this many default-size random models (1)")
    parser.add_argument("--delay-ckpt", type=Path, nargs="+",
                        help="trained checkpoint(s) for the delay (default: --ckpt)")
    parser.add_argument("--seconds", type=float, default=60.0, help="stream length for the timing (60)")
    parser.add_argument("--delay-seconds", type=float, default=180.0, help="stream length for the delay (180)")
    parser.add_argument("--hops", default="100,20", help="hop lengths in ms, comma-separated (100,20)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="time each row this many times and keep the run with the lowest median (3)")
    parser.add_argument("--classifier", type=json.loads, default=None,
                        help="without --ckpt: classifier settings as JSON, e.g. '{\"bidirectional\": false, "
                        "\"pooling\": \"last\"}' (a model that streams with state also gets stateful rows)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    results: dict = {"threads": 1, "timing": []}
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = args.ckpt or default_checkpoints(Path(tmp), args.members, args.classifier)
        scorers = open_scorers(ckpts, Path(tmp) / "bench.onnx")
        what = " + ".join(map(str, args.ckpt)) if args.ckpt else (
            f"classifier {json.dumps(args.classifier or {})}, random weights")
        results["model"] = what if len(ckpts) == 1 else f"ensemble of {len(ckpts)}: {what}"
        results["parameters"] = scorers["torch"].num_parameters
        wave = speech_stream(args.seconds)
        print(f"model: {results['model']} ({results['parameters']:,} parameters); 1 thread; "
              f"{args.seconds:g} s of speech per row")
        print(f"{'':<22}{'---- wall clock ----':^34}  {'- CPU time (thread) -':^28}")
        print(f"{'backend':<8} {'mode':<8} {'input':>5} {'hop':>6} {'median':>8} {'p99':>8} {'model':>8} {'rtf':>7}  "
              f"{'median':>8} {'p99':>8} {'rtf':>8}")
        rows = [(b, h, 16_000, False) for h in map(float, args.hops.split(",")) for b in scorers]
        rows.append(("onnx", float(args.hops.split(",")[0]), 48_000, False))
        if scorers["onnx"].streams:
            rows += [(b, float(args.hops.split(",")[0]), 16_000, True) for b in scorers]
        for backend, hop_ms, rate, stateful in rows:
            runs = [per_hop_costs(scorers[backend], wave, hop_ms, rate, stateful) for _ in range(max(1, args.repeat))]
            r = min(runs, key=lambda run: run["median_ms"])
            r["backend"] = backend
            results["timing"].append(r)
            print(f"{backend:<8} {r['mode']:<8} {rate / 1000:>4.0f}k {hop_ms:>4.0f}ms {r['median_ms']:>6.2f}ms {r['p99_ms']:>6.2f}ms "
                  f"{r['model_ms']:>6.2f}ms {r['rtf']:>7.1f}  {r['cpu_median_ms']:>6.2f}ms {r['cpu_p99_ms']:>6.2f}ms "
                  f"{r['cpu_rtf']:>8.1f}")
        delay_ckpt = args.delay_ckpt or args.ckpt
        if delay_ckpt is None:
            print("delay: skipped (needs a trained model: --delay-ckpt or --ckpt)")
        else:
            delay_scorer = open_scorers(delay_ckpt, Path(tmp) / "delay.onnx")["onnx"]
            onnx_100 = next(r for r in results["timing"] if r["backend"] == "onnx" and r["input_rate"] == 16_000
                            and r["mode"] == "window")
            d = delays(delay_scorer, args.delay_seconds, 20.0, onnx_100["median_ms"])
            names = " + ".join(p.name for p in delay_ckpt)
            results["delay"] = {"model": names, **d}
            if d["correct_words"]:
                s = d["stream_delay_from_end_ms"]
                print(f"delay ({names}, {d['correct_words']}/{d['words']} words detected correctly, "
                      f"hop 100 ms): word end -> event median {s['median']:.0f} ms (p10 {s['p10']:.0f}, "
                      f"p90 {s['p90']:.0f}); speech onset -> event {d['stream_delay_from_onset_ms']:.0f} ms; "
                      f"end to end live (+ hop compute + 20 ms capture block) {d['end_to_end_from_end_ms']:.0f} ms")
            else:
                print("delay: the model detected no word correctly")
    if args.json:
        with args.json.open("x") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
