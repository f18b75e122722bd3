#!/usr/bin/env python
"""Benchmark what running a trained model costs: the base install (no torch) beside the full install.

For each row (base install + ``.onnx``, full install + ``.onnx``, full install + ``.ckpt``) it prints:

- install size: the whole virtual environment on disk (``du``), MB;
- cold start: wall time of ``speech live MODEL --wav one_clip.wav --json`` (a new process each run: imports,
  model load, one 1 s clip, exit); median, min and max of ``--runs``;
- peak RSS: the largest resident set of ``speech live MODEL --wav`` over a ``--listen-seconds`` recording
  (``os.wait4``), MB;
- cost per hop: the median CPU time of one ``feed`` of 100 ms (1,600 samples; resampler, MFCC of the new frames,
  the classifier on the 1 s window, detection) with the energy gate off, one thread, in that install's Python;
- CPU share: CPU time / wall time of ``speech live MODEL --wav --realtime`` (the file paced in real time), as
  a fraction of one core.

The base install is a fresh ``pip install .`` into a temporary virtual environment (its install time is printed
too) unless ``--base-venv`` names one. The model is the project's default-size classifier with random weights
behind a front end fitted on real clips, unless ``--ckpt`` names a trained checkpoint. Run it with the full
install's Python::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_runtime.py [--ckpt model.ckpt] [--base-venv /tmp/base]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SC_V2_TEST = REPO.parent / "shared" / "data" / "sc-v2-test-fit"

HOP_SNIPPET = """
import json, sys, time
import numpy as np, soundfile as sf
import speech
from speech.streaming.engine import StreamingConfig
model = speech.load(sys.argv[1], threads=1)
if model.scorer.backend == "torch":
    import torch
    torch.set_num_threads(1)
wave, rate = sf.read(sys.argv[2], dtype="float32")
engine = model.streamer(rate, config=StreamingConfig(gate_db=None))
costs = []
for start in range(0, wave.size - 1600 + 1, 1600):
    t0 = time.thread_time()
    engine.feed(wave[start : start + 1600])
    costs.append(time.thread_time() - t0)
costs = costs[20:]  # the first second fills the window (no classifier call yet)
print(json.dumps({"median_ms": 1e3 * float(np.median(costs)), "p99_ms": 1e3 * float(np.percentile(costs, 99))}))
"""


def du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1e6


# A process's peak RSS (ru_maxrss) includes what its parent had mapped when it forked (the kernel records the old
# address space's high-water mark at exec), so the measured commands are started by this small launcher, not by
# the benchmark itself, which holds torch. The launcher's own ~10 MB is then the most that can be over-counted.
LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
print(json.dumps([wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status),
                  proc.stderr.read().decode()[-2000:]]))
"""


def run_measured(command: list[str], cwd: Path) -> tuple[float, float, float]:
    """Run ``command``; return (wall seconds, CPU seconds, peak RSS in MB) of that process."""
    out = subprocess.run([sys.executable, "-c", LAUNCHER, *command], capture_output=True, text=True, cwd=cwd, check=True)
    wall, cpu, rss, code, err = json.loads(out.stdout)
    if code != 0:
        raise SystemExit(f"bench_runtime: {' '.join(command)} failed ({code}): {err}")
    return wall, cpu, rss


def make_inputs(folder: Path, listen_seconds: float) -> tuple[Path, Path]:
    """One real 1 s clip, and a longer recording of real clips back to back."""
    from speech.audio.io import load_audio, write_wav

    clips = sorted(SC_V2_TEST.glob("*/*.wav"))[::7]
    one = folder / "one_clip.wav"
    write_wav(one, load_audio(clips[0]))
    parts, total = [], 0
    for path in clips:
        parts.append(load_audio(path))
        total += 16000
        if total >= listen_seconds * 16000:
            break
    long = folder / "listen.wav"
    write_wav(long, np.concatenate(parts))
    return one, long


def default_model(folder: Path, ckpt: Path | None) -> tuple[Path, Path]:
    import torch

    from speech.audio.io import load_audio
    from speech.data.labels import COMMAND_WORDS_10, LABELS_12
    from speech.model.checkpoint import save_checkpoint
    from speech.model.recogniser import Recogniser
    from speech.runtime.export import export_onnx

    if ckpt is None:
        clips = [p for w in COMMAND_WORDS_10 for p in sorted((SC_V2_TEST / w).glob("*.wav"))[:10]]
        torch.manual_seed(0)
        model = Recogniser(LABELS_12)
        model.frontend.fit_normaliser(torch.from_numpy(np.stack([load_audio(p) for p in clips])))
        ckpt = save_checkpoint(model.eval(), folder / "default-random.ckpt")
    return ckpt, export_onnx(ckpt, folder / "model.onnx")


def make_base_venv(folder: Path) -> tuple[Path, float]:
    env = folder / "base-venv"
    start = time.perf_counter()
    venv.create(env, with_pip=True)
    subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    str(REPO)], check=True)
    return env, time.perf_counter() - start


def measure(env: Path, model: Path, one: Path, long: Path, runs: int, realtime_seconds: float, cwd: Path) -> dict:
    speech_bin = str(env / "bin" / "speech")
    cold = [run_measured([speech_bin, "live", str(model), "--wav", str(one), "--json"], cwd)[0] for _ in range(runs)]
    _, _, rss = run_measured([speech_bin, "live", str(model), "--wav", str(long), "--json"], cwd)
    hop = json.loads(subprocess.run([str(env / "bin" / "python"), "-c", HOP_SNIPPET, str(model), str(long)],
                                    capture_output=True, text=True, check=True, cwd=cwd).stdout)
    wall, cpu, _ = run_measured([speech_bin, "live", str(model), "--wav", str(long), "--json", "--realtime",
                                 "--seconds", str(realtime_seconds)], cwd)
    return {
        "install_mb": du_mb(env),
        "cold_start_s": {"median": statistics.median(cold), "min": min(cold), "max": max(cold)},
        "peak_rss_mb": rss,
        "hop_ms": hop,
        "cpu_share": cpu / wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, help="a trained checkpoint (default: default-size random weights)")
    parser.add_argument("--base-venv", type=Path, help="an existing base install (default: pip install . anew)")
    parser.add_argument("--runs", type=int, default=5, help="cold starts per row (5)")
    parser.add_argument("--listen-seconds", type=float, default=120.0, help="recording length for peak RSS (120)")
    parser.add_argument("--realtime-seconds", type=float, default=20.0, help="real-time run for the CPU share (20)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    full_env = Path(sys.prefix)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        one, long = make_inputs(tmp, args.listen_seconds)
        ckpt, onnx = default_model(tmp, args.ckpt)
        base_env, install_s = (args.base_venv, None) if args.base_venv else make_base_venv(tmp)
        rows = {
            "base install, .onnx": measure(base_env, onnx, one, long, args.runs, args.realtime_seconds, tmp),
            "full install, .onnx": measure(full_env, onnx, one, long, args.runs, args.realtime_seconds, tmp),
            "full install, .ckpt": measure(full_env, ckpt, one, long, args.runs, args.realtime_seconds, tmp),
        }
    if install_s is not None:
        print(f"base install: pip install . into a new venv took {install_s:.0f} s")
    print(f"{'':<22}{'install':>10}{'cold start (min-max)':>24}{'peak RSS':>10}{'hop median / p99':>20}{'CPU share':>11}")
    for name, r in rows.items():
        c, h = r["cold_start_s"], r["hop_ms"]
        print(f"{name:<22}{r['install_mb']:>8.0f}MB{c['median']:>10.2f} s ({c['min']:.2f}-{c['max']:.2f}){r['peak_rss_mb']:>8.0f}MB"
              f"{h['median_ms']:>10.2f} / {h['p99_ms']:.2f} ms{100 * r['cpu_share']:>10.1f}%")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "base_install_s": install_s}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
