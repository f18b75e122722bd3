"""Shared fixtures. Real audio comes from ``../shared/data`` beside the repository (never copied in)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

# One thread for the BLAS and OpenMP pools of this process and of every command it starts (before numpy loads
# them): the tests check behaviour, not speed, and on a machine another job keeps busy a pool's threads wait on
# each other (a test helper once took 11 min instead of 1 s beside a training run, bench_train.py 50 s instead of 11).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch

import speech.utils.threads as speech_threads

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SC_V2_TEST = SHARED_DATA / "sc-v2-test-fit"
SC_V1_SAMPLE = SHARED_DATA / "sc-v1-sample"
FSDD = SHARED_DATA / "fsdd"
LABELS_12 = ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def pytest_configure(config):
    if not SC_V2_TEST.is_dir():
        raise pytest.UsageError(f"the tests need the shared data at {SHARED_DATA} (see ../shared/README.md)")


TEST_THREADS = 1  # PyTorch threads in the pytest process, and what ``--threads auto`` resolves to in it
AUTO_THREADS = speech_threads.default_threads  # the real ``auto`` rule (idle CPUs), for the test of that rule


@pytest.fixture(scope="session", autouse=True)
def fixed_threads():
    """One PyTorch thread for every test, whatever the machine's load and the order the tests run in.

    Commands called in this process (``main([...])``, ``speech.train``) default to ``--threads auto``: the CPUs minus
    the load average, so their thread count (and their float results, and their speed beside another job) would
    follow the load of the moment and, through ``torch.set_num_threads``, leak into every later test. Here ``auto``
    resolves to :data:`TEST_THREADS`; the rule itself is tested with its inputs given (test_cli_promises.py).
    Commands run as subprocesses keep their own ``auto``.
    """

    def fixed(cpus: int | None = None, load: float | None = None) -> int:
        return TEST_THREADS if cpus is None and load is None else AUTO_THREADS(cpus, load)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(speech_threads, "default_threads", fixed)
        torch.set_num_threads(TEST_THREADS)
        yield


@pytest.fixture(autouse=True)
def threads_stay_fixed():
    """Fails the test that leaves PyTorch on another thread count than :data:`TEST_THREADS` (the next tests would
    run on it)."""
    yield
    assert torch.get_num_threads() == TEST_THREADS, f"the test left PyTorch on {torch.get_num_threads()} threads"


@pytest.fixture(scope="session")
def sc_v2_clips() -> dict[str, list[Path]]:
    """label -> sorted clip paths of the shared v0.02 test-set portion."""
    return {label: sorted((SC_V2_TEST / label).glob("*.wav")) for label in LABELS_12}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, sc_v2_clips) -> Path:
    """A small BiGRU trained for a few epochs on real clips (plain torch loop, about a minute on 2 cores).

    Its accuracy is well above chance but far from good: enough to test evaluation, export and streaming.
    """
    from speech.audio.io import load_audio
    from speech.classifiers.recurrent import RecurrentConfig
    from speech.model.checkpoint import save_checkpoint
    from speech.model.recogniser import Recogniser

    torch.manual_seed(0)
    rng = random.Random(0)
    paths, labels = [], []
    for index, label in enumerate(LABELS_12):
        chosen = sc_v2_clips[label][:]
        rng.shuffle(chosen)
        paths += chosen[:60]
        labels += [index] * len(chosen[:60])
    waves = torch.from_numpy(np.stack([load_audio(p) for p in paths]))
    targets = torch.tensor(labels)
    model = Recogniser(LABELS_12, classifier=RecurrentConfig(hidden_size=48, num_layers=1, input_channels=32))
    model.frontend.fit_normaliser(waves)
    feats = model.frontend(waves).detach()
    optimiser = torch.optim.AdamW(model.classifier.parameters(), lr=3e-3)
    model.train()
    for _ in range(12):
        order = torch.randperm(len(targets))
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            loss = torch.nn.functional.cross_entropy(model.classifier(feats[batch]), targets[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")


# -- a real 'speech train' run, shared by the training tests -------------------------------------------
SMALL_MODEL = [
    "--model.classifier.hidden_size", "32",
    "--model.classifier.num_layers", "1",
    "--model.classifier.input_channels", "32",
]


def linked_tree(root: Path, per_label: int) -> Path:
    """The official test-set layout in ``root`` with the first ``per_label`` clips of each of the 12 labels of
    sc-v2-test-fit (symlinks, no copies)."""
    for label in LABELS_12:
        (root / label).mkdir()
        for path in sorted((SC_V2_TEST / label).glob("*.wav"))[:per_label]:
            (root / label / path.name).symlink_to(path)
    return root


@pytest.fixture(scope="session")
def small_tree(tmp_path_factory) -> Path:
    """The official test-set layout with 24 clips per label (:func:`linked_tree`)."""
    return linked_tree(tmp_path_factory.mktemp("sc-small"), 24)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def train_args(root: Path, runs: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "--config", str(REPO / "configs" / "cpu-small.yaml"),
        "--data.root", str(root),
        "--data.cache_dir", str(cache),
        "--data.batch_size", "32",
        "--data.extra_roots", "null",  # cpu-small.yaml's 12,440 clips of four words: not for a tiny test tree
        "--trainer.default_root_dir", str(runs),
        "--trainer.enable_progress_bar", "false",
        "--run_name", "test",
        *SMALL_MODEL,
        *extra,
    ]


@pytest.fixture(scope="session")
def trained_run(small_tree, cache_dir, tmp_path_factory) -> Path:
    """A 4-epoch ``speech train`` run of a small model on :func:`small_tree` (test_train, test_distillation)."""
    from speech.cli.train import main as train_main

    runs = tmp_path_factory.mktemp("runs")
    train_main(train_args(small_tree, runs, cache_dir, "--trainer.max_epochs", "4", "--model.lr", "0.01"))
    return runs / "test" / "version_0"


def script_module(name: str):
    """``scripts/NAME`` imported as a module (the scripts are not a package), to call its functions or its
    ``main(argv) -> exit code`` in this process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"script_{name.removesuffix('.py')}", REPO / "scripts" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the README's first command at a tiny size, shared by test_next_commands and test_readme_commands ----------
SPEECH_SCRIPT = Path(sys.executable).parent / "speech"  # where scripts/setup.sh installs it (.venv/bin/speech)
PLAIN_PATH = "/usr/bin:/bin"  # the PATH of a shell after the README's set-up: no .venv/bin on it


@pytest.fixture(scope="session")
def tiny_quickstart(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``speech quickstart`` run as the README's first command runs it (from the checkout, as ``.venv/bin/speech``
    when installed so, ``.venv/bin`` off the PATH), at a tiny size (6 clips a word, 1 epoch, no real clips):
    its output folder and the finished process (its printed lines)."""
    out = tmp_path_factory.mktemp("quickstart") / "q"
    program = ([os.path.relpath(SPEECH_SCRIPT, REPO)] if SPEECH_SCRIPT.is_file() else [sys.executable, "-m", "speech"])
    done = subprocess.run([*program, "quickstart", "--out", str(out), "--per-word", "6", "--epochs", "1",
                           "--stream-minutes", "0.5", "--real-data", str(out.parent / "none")], cwd=REPO,
                          env={**os.environ, "PATH": PLAIN_PATH, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return out, done


def clips_the_model_knows(checkpoint: Path, clips: dict[str, list[Path]], count: int) -> list[tuple[str, Path]]:
    """``count`` (word, clip) pairs, each of a different word, that ``checkpoint`` scores above 0.9 offline."""
    from speech.audio.io import load_audio
    from speech.runtime.scorers import load_scorer

    scorer = load_scorer(checkpoint)
    chosen = []
    for word in ["yes", "stop", "no", "off", "left", "on", "right", "up", "down", "go"]:
        candidates = clips[word][:30]
        probs = scorer.scores(np.stack([load_audio(p) for p in candidates]))[:, LABELS_12.index(word)]
        if probs.max() > 0.9:
            chosen.append((word, candidates[int(probs.argmax())]))
        if len(chosen) == count:
            return chosen
    raise AssertionError("the tiny checkpoint should know a few clips well")


@pytest.fixture
def other_user():
    """:class:`other_user.OtherUser`: run the CLI unable to write into its read-only folders (even as root)."""
    from other_user import OtherUser

    user = OtherUser()
    try:
        yield user
    finally:
        user.close()
