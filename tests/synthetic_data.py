"""Generated data trees for tests and benchmarks: small trees from real clips, large trees of tiny WAVs, bad files.

Everything is written under a folder the caller gives (a tmp dir); clips are hard-linked when possible.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf


def link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def full_layout_tree(
    root: Path, sc_v2_clips: dict[str, list[Path]], per_word: int = 6, lists: bool = False
) -> Path:
    """A small full-dataset tree ``<word>/<speaker>_nohash_<n>.wav`` + ``_background_noise_/`` from real clips.

    The 10 command words come from the shared test-set portion; ``_unknown_`` clips become their own words
    (``backward``, ``bed``, ...) as in the training archive. With ``lists`` the two list files are written
    (every fifth speaker listed for validation, the next one for testing).
    """
    validation, testing = [], []
    for label, paths in sc_v2_clips.items():
        if label == "_silence_":
            continue
        for src in paths[:per_word]:
            if label == "_unknown_":
                word, rest = src.name.split("_", 1)
                name = rest[: -len(".wav")]  # "<speaker>_nohash_<n>.wav"
            else:
                word, name = label, src.name
            link_or_copy(src, root / word / name)
    noise = root / "_background_noise_"
    noise.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sf.write(
        noise / "white_noise.wav",
        (rng.standard_normal(16000 * 3) * 0.1).astype(np.float32),
        16000,
        subtype="PCM_16",
    )
    for src in sc_v2_clips["_silence_"][:2]:
        link_or_copy(src, noise / f"real_{src.name}")
    (noise / "README.md").write_text("noise\n")
    if lists:
        clips = sorted(p for p in root.glob("*/*.wav") if not p.parent.name.startswith("_"))
        speakers = sorted({p.name.split("_nohash_")[0] for p in clips})
        for path in clips:
            rank = speakers.index(path.name.split("_nohash_")[0])
            rel = f"{path.parent.name}/{path.name}"
            if rank % 5 == 0:
                validation.append(rel)
            elif rank % 5 == 1:
                testing.append(rel)
        (root / "validation_list.txt").write_text("\n".join(validation) + "\n")
        (root / "testing_list.txt").write_text("\n".join(testing) + "\n")
    return root


def write_bad_files(folder: Path, good: Path) -> dict[str, str]:
    """Write awkward and broken files into ``folder`` and return ``{name: "ok" | "bad"}`` (what should decode).

    ``good`` is a real 16-bit 16 kHz clip used as the source material.
    """
    folder.mkdir(parents=True, exist_ok=True)
    wave, rate = sf.read(good, dtype="float32")
    raw = good.read_bytes()
    expected = {}

    def write(name, data, samplerate, subtype, fmt=None):
        sf.write(folder / name, data, samplerate, subtype=subtype, format=fmt)
        expected[name] = "ok"

    write("s1_nohash_0.wav", wave, rate, "PCM_U8")  # 8-bit
    write("s2_nohash_0.wav", wave * 3.0, rate, "FLOAT")  # float, beyond full scale
    write("s3_nohash_0.wav", np.stack([wave, -wave * 0.5], axis=1), rate, "PCM_16")  # stereo
    write(
        "s4_nohash_0.wav",
        np.interp(np.arange(44100) * rate / 44100, np.arange(len(wave)), wave),
        44100,
        "PCM_16",
    )
    write("s5_nohash_0.wav", wave, rate, "PCM_24")
    write("s6_nohash_0.flac", wave, rate, "PCM_16", "FLAC")
    write("s7_nohash_0.ogg", wave, rate, "VORBIS", "OGG")
    (folder / "s8_nohash_0.wav").write_bytes(raw[: len(raw) // 2])  # truncated: header says more
    expected["s8_nohash_0.wav"] = "bad"  # a damaged file: skipped and counted, never padded silently
    (folder / "s9_nohash_0.wav").write_bytes(raw[:44])  # header only: no samples
    expected["s9_nohash_0.wav"] = "bad"
    (folder / "s10_nohash_0.wav").write_bytes(b"this is not audio at all, just text\n" * 20)
    expected["s10_nohash_0.wav"] = "bad"
    (folder / "s11_nohash_0.wav").write_bytes(b"RIFF\x00\x00")  # a few bytes of header
    expected["s11_nohash_0.wav"] = "bad"
    return expected


def tiny_wav_tree(root: Path, files: int, words: int = 35, speakers: int = 2618, samples: int = 1600) -> Path:
    """A full-dataset-layout tree of ``files`` tiny WAVs (``samples`` long), fast: one WAV written, then hard links.

    ``word<k>/<speaker>_nohash_<n>.wav`` with ``words`` words and ``speakers`` speakers shared across the words
    (8-hex-digit ids as in Speech Commands), plus ``_background_noise_/noise.wav``.
    """
    root.mkdir(parents=True, exist_ok=True)
    source = root / ".source.wav"
    rng = np.random.default_rng(0)
    sf.write(source, (rng.standard_normal(samples) * 0.05).astype(np.float32), 16000, subtype="PCM_16")
    ids = [f"{(s + 1) * 2654435761 % 2**32:08x}" for s in range(speakers)]
    per_word = -(-files // words)
    place = os.link
    made = 0
    for w in range(words):
        folder = root / f"word{w:02d}"
        folder.mkdir(exist_ok=True)
        for i in range(min(per_word, files - made)):
            target = os.path.join(folder, f"{ids[i % speakers]}_nohash_{i // speakers}.wav")
            try:
                place(source, target)
            except OSError:  # no hard links here (another file system): copy instead
                place = shutil.copyfile
                place(source, target)
            made += 1
    noise = root / "_background_noise_"
    noise.mkdir(exist_ok=True)
    sf.write(
        noise / "noise.wav",
        (rng.standard_normal(16000 * 2) * 0.1).astype(np.float32),
        16000,
        subtype="PCM_16",
    )
    return root
