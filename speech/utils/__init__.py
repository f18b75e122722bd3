"""Small helpers every layer may use: atomic file writes (:mod:`~speech.utils.files`), progress and timing,
CPU threads, optional-install checks (:mod:`~speech.utils.extras`), settings <-> dicts, and figures without pyplot.

Nothing here imports another part of ``speech`` except :mod:`speech.errors`.
"""
