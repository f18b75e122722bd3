"""Label sets: the 12-class Speech Commands task, every word, a folder's own labels, or an explicit list.

Specs (``--data.labels``, ``speech data summary --labels``):

* ``"auto"`` (the default): ``"12"`` for a Speech Commands folder (one whose label folders include the ten
  command words: the full archive, its test set, the quickstart's synthetic set), else the folder's own labels as ``"all"`` gives them, plus a sampled
  ``_silence_`` class when it has no ``_silence_`` folder. A ``speech synth`` folder gives its keywords plus
  ``_unknown_`` and ``_silence_``.
* ``"all"``: one class per label folder: the word folders, plus ``_silence_`` and ``_unknown_`` when the folder
  has them (test-set layout, ``speech synth``). The words inside ``_unknown_`` stay ``_unknown_``.
* ``"35"``: every Speech Commands word as its own class, without ``_silence_``/``_unknown_``: the word folders
  and, in the test-set layout, the words the ``_unknown_`` file names carry (``bird_<speaker>_nohash_0``).
* ``"12"``: :data:`LABELS_12`; ``"w1,w2"`` or a list: those labels, in that order.

A model needs ``_unknown_`` (and ``_silence_``) to reject what is not a keyword: :func:`rejection_warning`.
"""

from __future__ import annotations

from collections.abc import Iterable

from speech.data.errors import DatasetError

SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"
SPECIAL_LABELS = (SILENCE_LABEL, UNKNOWN_LABEL)
COMMAND_WORDS_10 = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
LABELS_12 = [SILENCE_LABEL, UNKNOWN_LABEL, *COMMAND_WORDS_10]
NAMED_SPECS = ("auto", "12", "35", "all")


def parse_label_spec(spec: str | int | Iterable[str]) -> str | list[str]:
    """Normalise a label spec: ``"auto"``, ``"12"``, ``"35"``, ``"all"`` (case-insensitive; ``12``/``35`` may be
    ints), or ``"w1,w2"`` / a list -> the list of names (order kept, blanks and duplicates rejected)."""
    if isinstance(spec, int):
        spec = str(spec)
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() in NAMED_SPECS:
            return text.lower()
        names = [part.strip() for part in text.split(",")]
    else:
        names = [str(part).strip() for part in spec]
    if not names or any(not name for name in names):
        raise DatasetError(
            f"label list {spec!r}: expected 'auto', '12', '35', 'all' or comma-separated words, no blanks"
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DatasetError(f"label list {spec!r}: repeated labels {duplicates}")
    return names


def is_speech_commands(folders: Iterable[str]) -> bool:
    """Whether a scanned folder is Speech Commands data: its label folders include all ten command words."""
    return set(COMMAND_WORDS_10) <= set(folders)


def resolve_labels(
    spec: str | int | Iterable[str], words: list[str], folders: Iterable[str] | None = None, *,
    allow_missing: bool = False,
) -> list[str]:
    """Turn a label spec into the ordered class list.

    ``words``: every word the data holds (word folders and the words of ``_unknown_`` file names); ``folders``:
    the label folders that hold clips (default: ``words``). Orders: ``"12"`` ->
    :data:`LABELS_12`; ``"all"``/``"auto"`` -> ``_silence_``, ``_unknown_`` (when present), then the sorted word
    folders; ``"35"`` -> the sorted words; a list is kept as given and may name ``_silence_``/``_unknown_``.
    Every ordinary word asked for must be in ``words``; otherwise a :class:`DatasetError` names the missing
    words and what was found. ``allow_missing``: a list may name words the folder lacks (scoring a model on a
    folder that holds some of its labels: those classes get no clips).
    """
    parsed = parse_label_spec(spec)
    folders = list(words if folders is None else folders)
    if parsed == "auto":
        if is_speech_commands(folders):
            parsed = "12"
        else:
            own = _folder_labels(folders)
            return own if SILENCE_LABEL in own else [SILENCE_LABEL, *own]
    if parsed == "all":
        return _folder_labels(folders)
    if parsed == "35":
        labels = sorted(word for word in set(words) if word not in SPECIAL_LABELS)
        if not labels:
            raise DatasetError(f"label set '35': no word folders found (found only {sorted(set(words))})")
        return labels
    labels = list(LABELS_12) if parsed == "12" else list(parsed)
    available = set(words) | set(folders)
    missing = [name for name in labels if name not in SPECIAL_LABELS and name not in available]
    if missing and allow_missing and len(missing) < len([n for n in labels if n not in SPECIAL_LABELS]):
        return labels
    if missing:
        asked = "the 12 Speech Commands classes" if parsed == "12" else f"labels {list(parsed)}"
        raise DatasetError(
            f"{asked}: word(s) {missing} have no clips in this folder; its label folders are {sorted(folders)}. "
            "Name those (comma-separated), or use 'all' for one class per label folder",
            param="labels",
        )
    return labels


def _folder_labels(folders: list[str]) -> list[str]:
    specials = [label for label in (SILENCE_LABEL, UNKNOWN_LABEL) if label in folders]
    words = sorted(folder for folder in folders if folder not in SPECIAL_LABELS)
    if not words:
        raise DatasetError(f"no word folders found (only {sorted(folders)}): nothing to recognise")
    return [*specials, *words]


def rejection_warning(labels: Iterable[str]) -> str | None:
    """A warning when ``labels`` lack ``_unknown_`` or ``_silence_`` (None when both are there).

    Without ``_unknown_`` every word a model hears is scored as one of its keywords; without ``_silence_``,
    every noise. Streaming never reports either class, so they are what lets a model stay quiet.
    """
    labels = list(labels)
    missing = [label for label in (UNKNOWN_LABEL, SILENCE_LABEL) if label not in labels]
    if not missing:
        return None
    what = {
        UNKNOWN_LABEL: "any other word it hears",
        SILENCE_LABEL: "background noise",
    }
    heard = " and ".join(what[label] for label in missing)
    return (
        f"the model has no {' or '.join(missing)} class (labels {labels}): {heard} will be reported as one of its "
        "keywords. Train with an _unknown_ folder of other words and a _silence_ folder (speech synth writes both; "
        "labels 'auto' uses them)"
    )
