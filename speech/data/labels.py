"""Label sets: the 12-class Speech Commands task, every word, or an explicit list."""

from __future__ import annotations

from collections.abc import Iterable

from speech.data.errors import DatasetError

SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"
SPECIAL_LABELS = (SILENCE_LABEL, UNKNOWN_LABEL)
COMMAND_WORDS_10 = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
LABELS_12 = [SILENCE_LABEL, UNKNOWN_LABEL, *COMMAND_WORDS_10]


def parse_label_spec(spec: str | int | Iterable[str]) -> str | list[str]:
    """Normalise a label spec: ``"12"`` / ``12`` -> ``"12"``; ``"35"`` / ``"all"`` -> ``"all"``;
    ``"w1,w2"`` or a list -> the list of names (order kept, blanks and duplicates rejected)."""
    if isinstance(spec, int):
        spec = str(spec)
    if isinstance(spec, str):
        text = spec.strip()
        if text == "12":
            return "12"
        if text.lower() in ("35", "all"):
            return "all"
        names = [part.strip() for part in text.split(",")]
    else:
        names = [str(part).strip() for part in spec]
    if not names or any(not name for name in names):
        raise DatasetError(
            f"label list {spec!r}: expected '12', '35', 'all' or comma-separated words, no blanks"
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DatasetError(f"label list {spec!r}: repeated labels {duplicates}")
    return names


def resolve_labels(spec: str | int | Iterable[str], words: list[str]) -> list[str]:
    """Turn a label spec into the ordered class list for a data set whose word folders are ``words``.

    ``"12"`` -> :data:`LABELS_12`; ``"35"``/``"all"`` -> every word in ``words`` (sorted, without the
    ``_silence_``/``_unknown_`` classes); an explicit list (python list or ``"w1,w2"``) is kept in its order and
    may name ``_silence_``/``_unknown_``. Every ordinary word asked for must be in ``words``; otherwise a
    :class:`DatasetError` names the missing words and what was found.
    """
    parsed = parse_label_spec(spec)
    available = set(words)
    if parsed == "all":
        labels = sorted(word for word in available if word not in SPECIAL_LABELS)
        if not labels:
            raise DatasetError(f"label set 'all': no word folders found (found only {sorted(available)})")
        return labels
    labels = list(LABELS_12) if parsed == "12" else list(parsed)
    missing = [name for name in labels if name not in SPECIAL_LABELS and name not in available]
    if missing:
        raise DatasetError(
            f"requested word(s) {missing} have no clips; the words found are {sorted(available)}"
        )
    return labels
