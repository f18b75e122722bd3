"""Waveform I/O: every file the project reads goes through soundfile, never ``torchaudio.load``.

All waveforms inside the project are float32, mono, 16 kHz, in [-1, 1], shaped ``(samples,)``.

Bad samples, one rule for every path (a file, ``speech live --wav``, ``--stdin``, a microphone, ``Model.predict``,
``Model.stream`` / ``streamer``), applied by :func:`checked_samples` to the samples as they come, before any
downmix or resampling: a NaN or infinite sample, or a float sample beyond :data:`FAR_OVER_FULL_SCALE` (4, 12 dB
over full scale: not audio at a plausible level, e.g. integer PCM stored as float unscaled), is refused with an
:class:`AudioError` naming where the first one is; float samples a little over full scale (up to 4) are clipped
to [-1, 1], with a warning. Integer PCM is always finite and within full scale. So a file read whole and the
same file streamed in chunks of any size meet the same rule.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from speech.audio.resample import StreamResampler
from speech.errors import SpeechError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
CLIP_SAMPLES = SAMPLE_RATE  # one second
INT16_SCALE = 32768.0  # int16 PCM -> float: x / 32768 (soundfile's convention), float -> int16: round(x * 32768)
INT32_SCALE = 2147483648.0
FULL_SCALE_TOLERANCE = 1.001  # float peaks up to this are rounding, not clipping; beyond it a warning
FAR_OVER_FULL_SCALE = 4.0  # float samples beyond this (+12 dB) are refused as not audio (module docstring)
# WAV data-chunk sizes that streaming writers put in the header before they know the length
_PLACEHOLDER_SIZE = 0x7FFF0000
_WAV_FAST_FORMATS = (1, 3)  # PCM integer, IEEE float (also as the sub-format of WAVE_FORMAT_EXTENSIBLE)


class AudioError(SpeechError, ValueError):
    """A file that cannot be decoded as audio. The message names the file and the reason."""


def read_header(path: str | Path):
    """soundfile's header of ``path`` (frames, samplerate, channels; no decoding), or the reason it is unusable."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError/TypeError for bad headers
        return f"not a readable audio file ({exc})"
    if info.samplerate <= 0 or info.frames <= 0:
        return "holds no samples (empty or header only)"
    return info


def _soundfile_problem(path: str) -> str | None:
    """What soundfile's header parse says is wrong with ``path`` (None when it opens and holds samples)."""
    header = read_header(path)
    return header if isinstance(header, str) else None


def _wav_problem(fd: int, head: bytes, size: int) -> str | None | bool:
    """Check a RIFF/WAVE file's chunks; the reason it is unusable, None when usable, or False when only
    soundfile can tell (an unusual format, chunks in an unusual order)."""
    pos, fmt = 12, None
    while pos + 8 <= size:
        chunk = head[pos : pos + 8] if pos + 8 <= len(head) else os.pread(fd, 8, pos)
        if len(chunk) < 8:
            break
        cid, csize = chunk[:4], struct.unpack_from("<I", chunk, 4)[0]
        if cid == b"fmt ":
            want = min(csize, 40)
            body = head[pos + 8 : pos + 8 + want] if pos + 8 + want <= len(head) else os.pread(fd, want, pos + 8)
            if csize < 16 or len(body) < 16:
                return "broken WAV header (its 'fmt ' chunk is too short)"
            tag, channels, rate, _, block, _ = struct.unpack_from("<HHIIHH", body)
            if tag == 0xFFFE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[0]
            if channels < 1 or rate < 1 or block < 1:
                return f"broken WAV header ({channels} channels, {rate} Hz, {block} bytes per frame)"
            if tag not in _WAV_FAST_FORMATS:
                return False
            fmt = (rate, block)
        elif cid == b"data":
            if fmt is None:
                return False
            rate, block = fmt
            available = size - (pos + 8)
            declared = available if csize >= _PLACEHOLDER_SIZE else csize
            if min(declared, available) < block:
                return "holds no samples (header only)" if declared else "holds no samples (its header declares none)"
            if declared - available >= block:
                return (
                    f"truncated: its header declares {declared // block} samples ({declared / block / rate:.3f} s), "
                    f"the file holds {available // block} ({available / block / rate:.3f} s)"
                )
            return None
        pos += 8 + csize + (csize & 1)
    return "not a usable WAV file (no 'data' chunk with audio)" if fmt else "not a usable WAV file (no 'fmt ' chunk)"


def audio_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be used as a clip, judged from its header alone (no decoding); None when it is usable.

    The one rule the data layer applies to every file, at scan time, so that every command counts the same
    files as bad. WAV files (about 13 us each): no RIFF/WAVE header, no ``fmt ``/``data`` chunk, no samples, or
    a data chunk *truncated* below the size its header declares (placeholder sizes of streaming writers are
    accepted). FLAC, OGG and unusual WAV formats: soundfile's header parse.
    """
    path = str(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        return f"cannot open ({exc.strerror or exc})"
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return "empty file (0 bytes)"
        head = os.read(fd, 512)
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            verdict = _wav_problem(fd, head, size)
            if verdict is not False:
                return verdict
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    finally:
        os.close(fd)
    return _soundfile_problem(path)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode ``path`` to float32 with shape ``(samples, channels)`` and return it with its sample rate.

    Any PCM width (8/16/24/32-bit), float WAV, FLAC and OGG are accepted. Raises :class:`AudioError`
    naming the file for empty, truncated (see :func:`audio_problem`) or non-audio files.
    """
    path = Path(path)
    problem = audio_problem(path)
    if problem is not None:
        raise AudioError(f"{path}: {problem}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:  # soundfile raises these for bad headers
        raise AudioError(f"{path}: not a readable audio file ({exc})") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot open ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: holds no samples (empty or truncated file)")
    check_samples(data, rate, what=str(path))
    return data, int(rate)


def _first_at(mask: np.ndarray, rate: int | None, start: int) -> str:
    """Where the first True of ``mask`` (samples or ``(samples, channels)``) lies, as text: `` (the first at 1.234
    s)``; the sample index when the rate is unknown."""
    frame = int(np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))[0]) + start
    return f" (the first at {frame / rate:.3f} s)" if rate else f" (the first at sample {frame})"


def check_samples(samples: np.ndarray, rate: int | None = None, *, what: str = "the audio", start: int = 0) -> float:
    """Refuse bad samples (the module docstring's rule): :class:`AudioError` naming ``what`` and where the first
    bad one lies (``rate``: the samples' rate, for the time; ``start``: the index of ``samples[0]`` in its stream)
    when any is NaN or infinite, or a float sample's magnitude is beyond :data:`FAR_OVER_FULL_SCALE`. Returns the
    peak magnitude (0 for integer PCM, which cannot be bad)."""
    samples = np.asarray(samples)
    if samples.dtype.kind != "f" or samples.size == 0:
        return 0.0
    prose = what.startswith("the ")  # "the clip holds ...", "the clip's float samples ..."; "a.wav: holds ..."
    subject, owner = (what, f"{what}'s") if prose else (f"{what}:", f"{what}:")
    finite = np.isfinite(samples)
    if not finite.all():
        bad = ~finite
        raise AudioError(f"{subject} holds {int(np.count_nonzero(bad))} NaN or infinite samples"
                         f"{_first_at(bad, rate, start)}; expected audio samples within [-1, 1]")
    peak = float(np.abs(samples).max())
    if peak > FAR_OVER_FULL_SCALE:
        raise AudioError(f"{owner} float samples reach {peak:.3g}, {20 * np.log10(peak):.0f} dB above full scale"
                         f"{_first_at(np.abs(samples) > FAR_OVER_FULL_SCALE, rate, start)}; expected audio within "
                         f"[-1, 1] (integer PCM stored as float without scaling?)")
    return peak


def clip_to_full_scale(samples: np.ndarray, peak: float) -> np.ndarray:
    """``samples`` clipped to [-1, 1] when their ``peak`` (:func:`check_samples`) is over full scale by more than
    rounding (:data:`FULL_SCALE_TOLERANCE`); else unchanged."""
    return np.clip(samples, -1.0, 1.0) if peak > FULL_SCALE_TOLERANCE else samples


def check_sample_rate(sample_rate, param: str = "sample_rate") -> None:
    """A sample rate given to the API must be a positive whole number of Hz (None: the model's);
    :class:`~speech.errors.SettingError` otherwise."""
    from speech.errors import SettingError

    if sample_rate is not None and (isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer)
                                    or sample_rate <= 0):
        raise SettingError(f"{param} must be a positive whole number of Hz, got {sample_rate!r}", param=param)


def check_pcm(wave: np.ndarray, sample_rate: int | None, model_rate: int | None = None) -> float:
    """PCM handed to the API directly (not read from a file) must have a positive whole sample rate (None: the
    model's, ``model_rate``) and good samples (:func:`check_samples`); :class:`~speech.errors.SettingError` /
    :class:`AudioError` otherwise. Returns the peak magnitude."""
    check_sample_rate(sample_rate)
    return check_samples(wave, sample_rate or model_rate, what="the clip")


def pcm_to_float(samples):
    """PCM samples of any shape -> float32 in [-1, 1): int16 / 32768, int32 / 2**31; float stays (as float32).

    NumPy in, NumPy out (a copy only when the type changes); a torch tensor stays a tensor on its device.
    """
    if type(samples).__module__.partition(".")[0] == "torch":  # a tensor (torch is loaded if one exists)
        import torch

        scale = {torch.int16: INT16_SCALE, torch.int32: INT32_SCALE}.get(samples.dtype)
        return samples.float() if scale is None else samples.float() / scale
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return np.multiply(samples, np.float32(1.0 / INT16_SCALE), dtype=np.float32)  # one pass, no temp
    if samples.dtype == np.int32:
        return np.multiply(samples, np.float32(1.0 / INT32_SCALE), dtype=np.float32)
    if samples.dtype.kind != "f":
        raise AudioError(f"PCM samples must be int16, int32 or float, got {samples.dtype}")
    return samples.astype(np.float32, copy=False)


def float_to_int16(wave: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] -> int16 (``round(x * 32768)`` clipped to [-32768, 32767])."""
    return np.clip(np.rint(wave * INT16_SCALE), -32768, 32767).astype(np.int16)


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average the channels of a ``(samples, channels)`` array into ``(samples,)`` float32."""
    if data.ndim == 1:
        return data.astype(np.float32, copy=False)
    return data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0].copy()


def resample(wave: np.ndarray, orig_rate: int, new_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono ``(samples,)`` waveform to ``new_rate`` (Hz); float32 ``(ceil(samples * new / orig),)``.

    The same resampler as the live path (:class:`speech.audio.resample.StreamResampler`, soxr's), so a file given to
    ``evaluate`` and the same file streamed through ``live --wav`` reach the model as the same audio.
    """
    if orig_rate == new_rate:
        return wave.astype(np.float32, copy=False)
    resampler = StreamResampler(int(orig_rate), int(new_rate))
    return np.concatenate([resampler.process(wave), resampler.finish()])


def fix_length(wave: np.ndarray, samples: int = CLIP_SAMPLES, crop: str = "center") -> np.ndarray:
    """Zero-pad (at the end) or crop ``wave`` to exactly ``samples``.

    ``crop`` picks which part of a long clip is kept: ``"center"`` (default), ``"start"`` or ``"end"``.
    """
    n = wave.shape[0]
    if n == samples:
        return wave
    if n < samples:
        return np.pad(wave, (0, samples - n))
    extra = n - samples
    offset = {"center": extra // 2, "start": 0, "end": extra}.get(crop)
    if offset is None:
        raise ValueError(f"crop must be 'center', 'start' or 'end', got {crop!r}")
    return wave[offset : offset + samples]


def fit_window(wave: np.ndarray, samples: int = CLIP_SAMPLES, crop: str = "center") -> np.ndarray:
    """``wave`` as a model window of ``samples``: a clip at least as long is cropped (``crop``, as
    :func:`fix_length`); a shorter one is first padded at the end to 1 s (the rule of every 1 s model), then
    centred in a longer window with zeros either side, so a command clip has context before and after it."""
    n = wave.shape[0]
    if n >= samples or samples <= CLIP_SAMPLES:
        return fix_length(wave, samples, crop)
    body = fix_length(wave, max(n, CLIP_SAMPLES))
    left = (samples - body.shape[0]) // 2
    return np.pad(body, (left, samples - body.shape[0] - left))


def load_audio(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    samples: int | None = CLIP_SAMPLES,
    crop: str = "center",
) -> np.ndarray:
    """Decode ``path`` into float32 mono at ``sample_rate``; pad/crop to ``samples`` unless it is None."""
    data, rate = read_audio(path)
    source_peak = float(np.abs(data).max(initial=0.0))
    if source_peak > FULL_SCALE_TOLERANCE:  # only float files can; integer PCM stays within [-1, 1)
        log.warning(
            "%s: float samples reach %.3g, %.1f dB above full scale (expected within [-1, 1]); clipped at full scale",
            path,
            source_peak,
            20 * np.log10(source_peak),
        )
    wave = resample(to_mono(clip_to_full_scale(data, source_peak)), rate, sample_rate)
    peak = float(np.abs(wave).max(initial=0.0))
    if peak > 1.0:  # keep the model's input range (resampling overshoot)
        wave = wave / peak
    if samples is not None:
        wave = fix_length(wave, samples, crop)
    return np.ascontiguousarray(wave, dtype=np.float32)


def write_wav(path: str | Path, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write a mono float waveform as 16-bit PCM WAV."""
    sf.write(str(path), np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16")
