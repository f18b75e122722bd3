"""Issue #36 row 5: the commands the README shows run as written.

Every ``speech ...`` line of the README's code blocks is parsed by its command's own parser (``train``: to its
resolved config), so no README line names an option or a value the command refuses. The ones that can run here
(the shared data, no network, no GPU) run as written, with the README's placeholders filled: the "Live microphone
and streaming" block with the quickstart's model (trained on synthetic voices, so ``sc-v2-test-fit`` is a folder
it never saw, whose own split has no validation speakers), and the Python block's ``speech.train`` on a ``speech
synth`` folder. The quickstart's own "Next:" lines: test_next_commands.py.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SC_V2_TEST

from speech.cli import COMMANDS, command_parser

README = REPO / "README.md"
SCRIPT = Path(sys.executable).parent / "speech"


def readme_commands() -> list[tuple[int, list[str]]]:
    """``(line number, argv after 'speech')`` of every speech command in the README's code blocks (continuation
    lines joined, the part after a pipe, comments and shell redirections left out)."""
    found, inside, pending, start = [], False, "", 0
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            inside = not inside
            continue
        if not inside:
            continue
        text = (pending + " " + line.strip()) if pending else line.strip()
        start = start if pending else number
        if text.endswith("\\"):
            pending = text[:-1]
            continue
        pending = ""
        code = re.sub(r"(^|\s)#.*$", "", text)  # the comment first: it may hold a ';' or a '|'
        command = re.split(r"\|\|?|&&|;", code)[-1].strip()
        if not re.match(r"(\.venv/bin/)?speech ", command):
            continue
        words = shlex.split(command)
        words = words[: next((i for i, w in enumerate(words) if w in (">", "<", ">>")), len(words))]
        found.append((start, words[1:]))
    return found


def test_the_readme_shows_the_commands_this_test_reads():
    lines = {number: argv[0] for number, argv in readme_commands()}
    assert len(lines) > 40 and set(lines.values()) <= set(COMMANDS)
    assert {"quickstart", "train", "evaluate", "export", "live", "stream-test", "calibrate", "data", "synth"} <= set(
        lines.values())


def test_every_readme_command_parses(capsys):
    import importlib

    from speech.cli.train import main as train_main

    for number, argv in readme_commands():
        name, rest = argv[0], argv[1:]
        if name == "train":
            with pytest.raises(SystemExit) as stop:
                train_main([*rest, "--print_config"])
            assert stop.value.code == 0, f"README line {number}: speech {' '.join(argv)}: {capsys.readouterr().err}"
        else:
            parser = command_parser(f"speech {name}")
            parser.add_argument("-v", "--verbose", action="store_true")
            importlib.import_module(COMMANDS[name][0]).add_arguments(parser)
            try:
                parser.parse_args(rest)
            except SystemExit:
                pytest.fail(f"README line {number}: speech {' '.join(argv)}: {capsys.readouterr().err}")
        capsys.readouterr()


def readme_line(pattern: str) -> list[str]:
    (argv,) = [argv for _, argv in readme_commands() if re.fullmatch(pattern, " ".join(argv))]
    return argv


@pytest.fixture(scope="module")
def quickstart_model(tiny_quickstart) -> Path:
    """The quickstart's ONNX model, at a tiny size (the model the README's Live section is tried with first)."""
    out, _ = tiny_quickstart
    return out / "runs" / "quickstart" / "version_0" / "model.onnx"


def test_the_live_section_runs_as_written_with_the_quickstart_model(quickstart_model, tmp_path):
    """README "Live microphone and streaming": stream-test, calibrate (it stopped: "the 'validation' split is empty
    with split rule 'test_set'"), then live with the calibrated model. ``model.onnx``, ``st/``, ``st.json`` and
    ``model-calibrated.onnx`` are files of a scratch copy; ``talk.wav`` is a real recording."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "model.onnx").symlink_to(quickstart_model)
    (work / "talk.wav").symlink_to(next((SC_V2_TEST / "yes").glob("*.wav")))
    shared = os.path.relpath(SC_V2_TEST, work)  # ../shared/data/sc-v2-test-fit, as from the checkout
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(argv: list[str]) -> subprocess.CompletedProcess:
        argv = [shared if a == "../shared/data/sc-v2-test-fit" else a for a in argv]
        return subprocess.run([sys.executable, "-m", "speech", *argv], cwd=work, env=env, capture_output=True,
                              text=True, timeout=900)

    stream_test = readme_line(r"stream-test model\.onnx .* --sweep --out st/ --json st\.json")
    calibrate = readme_line(r"calibrate model\.onnx --data \S+ --out model-calibrated\.onnx")
    live = readme_line(r"live model-calibrated\.onnx --wav talk\.wav --json")
    done = run(stream_test)
    assert done.returncode == 0 and (work / "st" / "det_curve.png").is_file(), done.stderr[-2000:]
    done = run(calibrate)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "has no validation clips under its own split rule (test_set)" in done.stderr  # said, in one line
    assert "used the validation speakers of a seeded speaker split" in done.stderr
    report = json.loads((work / next(line.split("report: ")[1].split(", ")[-1] for line in done.stdout.splitlines()
                                     if line.startswith("report: "))).read_text())
    assert report["calibrated_on"]["partition"] == "validation" and report["calibrated_on"]["split"] == "speaker"
    done = run(live)
    assert done.returncode == 0 and "calibrated per keyword" in done.stderr, done.stderr[-2000:]


def python_block_call(start: str) -> ast.Call:
    """The call of the README's Python block that begins with ``start`` (over as many lines as it takes)."""
    block = README.read_text(encoding="utf-8").split("```python", 1)[1].split("```")[0]
    text, depth = block[block.index(start):], 0
    for end, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ")" and depth == 0:
            return ast.parse(text[: end + 1]).body[0].value
    raise AssertionError(f"no complete {start}...) in the README's Python block")


def test_the_python_block_trains_on_a_synth_folder_as_written(tmp_path):
    """README "Use it from Python": ``speech.train("configs/quickstart.yaml", {...})`` on the folder ``speech synth``
    writes (README "Use your own keywords"). Without ``"data.labels": "all"`` it stopped: the 12 labels of the
    config have no clips there. Run from the checkout as written; only where the run and its cache go is added."""
    mine = tmp_path / "mine"
    done = subprocess.run([str(SCRIPT) if SCRIPT.is_file() else sys.executable, *([] if SCRIPT.is_file() else
                           ["-m", "speech"]), "synth", "--words", "lights on,lights off,music", "--per-word", "12",
                           "--out", str(mine)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    call = python_block_call("speech.train(")
    config, overrides = (ast.literal_eval(arg) for arg in call.args)
    assert overrides["data.root"] == "data/mine"
    overrides = {**overrides, "data.root": str(mine), "trainer.default_root_dir": str(tmp_path / "runs"),
                 "data.cache_dir": str(tmp_path / "cache")}
    code = (f"import json, logging, speech; logging.basicConfig(level=logging.INFO); "
            f"run = speech.train({config!r}, {overrides!r}); "
            "print(json.dumps([str(run), sorted(json.loads((run / 'labels.json').read_text()) if (run / "
            "'labels.json').exists() else [])]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    run = Path(json.loads(done.stdout.strip().splitlines()[-1])[0])
    assert run == tmp_path / "runs" / "quickstart" / "version_0" and list((run / "checkpoints").glob("best-*.ckpt"))
    assert "CPU thread(s) for PyTorch (threads auto)" in done.stderr  # "threads": "auto", as 'speech train' has it
