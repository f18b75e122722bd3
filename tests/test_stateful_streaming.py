"""The stream mode of a unidirectional recurrent model (issue #35, item 3): each hop feeds only its new frames and
carries the recurrent state; speech.streaming.stateful."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import LABELS_12, SC_V2_TEST

from speech.audio.io import load_audio
from speech.cli import main
from speech.errors import SettingError
from speech.frontend.mfcc import FrontEndConfig
from speech.model.recogniser import Recogniser
from speech.runtime.export import export_onnx
from speech.runtime.scorers import OnnxScorer, TorchScorer
from speech.streaming import StreamingConfig, StreamingRecogniser, stream_array

UNI = {"bidirectional": False, "pooling": "last", "hidden_size": 32, "input_channels": 16}


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("input_layer", ["conv", "linear", "none"])
@pytest.mark.parametrize("pooling", ["last", "attention"])
def test_a_step_over_a_padded_window_is_the_window_model(cell, input_layer, pooling):
    torch.manual_seed(0)
    settings = {**UNI, "cell": cell, "input_layer": input_layer, "pooling": pooling}
    classifier = Recogniser(LABELS_12, classifier=settings).classifier.eval()
    left, stride, right = classifier.streaming_context()
    rows, hidden = classifier.streaming_state_shape()
    window = torch.randn(3, 151, 40)
    padded = torch.cat([torch.zeros(3, left, 40), window, torch.zeros(3, right, 40)], dim=1)
    with torch.no_grad():
        logits, state = classifier.streaming_step(padded, torch.zeros(rows, 3, hidden))
        torch.testing.assert_close(logits, classifier(window), atol=1e-5, rtol=0)
        assert state.shape == (rows, 3, hidden)
        # calls carrying the state are one call over all parts: step j reads padded frames from stride * j
        head, carried = classifier.streaming_step(padded[:, : stride * 29 + left + right + 1], torch.zeros(rows, 3, hidden))
        middle, carried = classifier.streaming_step(padded[:, stride * 30 : stride * 31 + left + right + 1], carried)
        tail, _ = classifier.streaming_step(padded[:, stride * 32 :], carried)
        torch.testing.assert_close(tail, logits, atol=1e-5, rtol=0)
        assert not torch.allclose(head, logits, atol=1e-3) and not torch.allclose(middle, logits, atol=1e-3)


def test_streaming_attention_survives_scores_far_from_zero():
    """The online softmax starts from an all-zero state (a restart): a head whose scores are all far below or above
    zero must neither divide by an underflowed sum nor overflow, in one call or across calls."""
    torch.manual_seed(0)
    classifier = Recogniser(LABELS_12, classifier={**UNI, "pooling": "attention"}).classifier.eval()
    left, stride, right = classifier.streaming_context()
    rows, hidden = classifier.streaming_state_shape()
    assert rows == 2 + 4 + 2  # two GRU layers, four heads' sums, the largest score and the sum of weights
    window = torch.randn(2, 151, 40)
    padded = torch.cat([torch.zeros(2, left, 40), window, torch.zeros(2, right, 40)], dim=1)
    for shift in (-500.0, 500.0):
        with torch.no_grad():
            classifier.attention.bias.fill_(shift)
            whole, _ = classifier.streaming_step(padded, torch.zeros(rows, 2, hidden))
            zeros = torch.zeros(rows, 2, hidden)
            _, carried = classifier.streaming_step(padded[:, : stride * 9 + left + right + 1], zeros)
            tail, _ = classifier.streaming_step(padded[:, stride * 10 :], carried)
            assert torch.isfinite(whole).all() and torch.isfinite(tail).all()
            torch.testing.assert_close(whole, classifier(window), atol=1e-5, rtol=0)
            torch.testing.assert_close(tail, whole, atol=1e-5, rtol=0)


@pytest.fixture(scope="module", params=["last", "attention"])
def uni_model(sc_v2_clips, request) -> Recogniser:
    torch.manual_seed(0)
    model = Recogniser(LABELS_12, classifier={**UNI, "pooling": request.param})
    waves = torch.from_numpy(np.stack([load_audio(sc_v2_clips[w][i]) for w in LABELS_12[2:] for i in range(4)]))
    model.frontend.fit_normaliser(waves)
    return model.eval()


@pytest.fixture(scope="module")
def speech_stream(sc_v2_clips) -> np.ndarray:
    return np.concatenate([load_audio(sc_v2_clips[w][7]) for w in ["yes", "no", "left", "stop", "go"]])


def test_every_stateful_hop_equals_one_step_over_the_whole_stream_so_far(uni_model, speech_stream, tmp_path):
    """The engine's bookkeeping (which frames each hop feeds, the carried state, the buffer it keeps) loses and
    repeats nothing: hop after hop, with chunks of odd sizes, it equals one call over every frame from the start."""
    onnx = export_onnx(uni_model, tmp_path / "uni.onnx")
    padded = np.concatenate([speech_stream, np.zeros(16_000, np.float32)])  # the engine's flush
    for scorer in (TorchScorer(uni_model), OnnxScorer(onnx)):
        hops = []
        engine = StreamingRecogniser(scorer, StreamingConfig(stateful=True, stream_states=0, gate_db=None, lead_ms=0.0),
                                     on_hop=hops.append)  # one state, never restarted
        stream_array(engine, speech_stream, chunk_samples=1_234)
        feats = scorer.features(padded[None])[0]
        left, stride, right = scorer.stream_context
        rows, hidden = scorer.stream_state_shape
        assert len(hops) > 40
        for hop in hops[::6]:
            end = engine.window_frames + int(round((hop.time * 16_000 - engine.window_samples) / engine.frame_hop))
            last = (end - 1 - right) // stride
            frames = np.concatenate([np.zeros((left, feats.shape[1]), np.float32), feats[: stride * last + right + 1]])
            probs, _ = scorer.stream_step(frames[None], np.zeros((rows, 1, hidden), np.float32))
            np.testing.assert_allclose(hop.scores, probs[0], atol=2e-5)


@pytest.mark.parametrize("pooling", ["last", "attention"])
def test_a_state_per_hop_restarted_every_window_is_the_window_model(sc_v2_clips, speech_stream, pooling):
    """With as many staggered states as hops in a window, every hop is scored by a state that has seen exactly its
    window: the window model's scores (exact for an input layer without context; the conv layer reads real frames
    where a window is zero-padded at its edges). Fewer states, fewer steps: measured in docs/recurrent-cells.md."""
    torch.manual_seed(0)
    # a window of 100 frames (16,400 samples), 10 hops of 10 frames
    settings = {**UNI, "input_layer": "linear", "pooling": pooling}
    model = Recogniser(LABELS_12, FrontEndConfig(window_ms=1025.0), classifier=settings)
    assert model.frontend.config.window_frames == 100
    waves = torch.from_numpy(np.stack([load_audio(sc_v2_clips[w][i]) for w in LABELS_12[2:] for i in range(4)]))
    model.frontend.fit_normaliser(waves)
    scorer = TorchScorer(model.eval())
    runs = {}
    for states in (None, 10):  # None: the window re-run; the window is 10 hops of 100 ms
        hops = []
        config = StreamingConfig(gate_db=None, stateful=states is not None, stream_states=states or 0)
        engine = StreamingRecogniser(scorer, config, on_hop=hops.append)
        stream_array(engine, speech_stream, chunk_samples=1_600)
        runs[states] = np.stack([h.scores for h in hops])
    np.testing.assert_allclose(runs[10], runs[None], atol=2e-5)
    # fewer states: the stream's first window is still heard whole (the oldest state runs all of it)
    for states in (1, 3):
        hops = []
        engine = StreamingRecogniser(scorer, StreamingConfig(gate_db=None, stateful=True, stream_states=states),
                                     on_hop=hops.append)
        stream_array(engine, speech_stream, chunk_samples=1_600)
        np.testing.assert_allclose(hops[0].scores, runs[None][0], atol=2e-5)
    with pytest.raises(SettingError, match=r"stream states must be 0 \(one, never restarted\) to 10"):
        StreamingRecogniser(scorer, StreamingConfig(stateful=True, stream_states=11))


def test_a_model_without_a_stream_mode_is_refused_in_one_line(tiny_checkpoint, capsys):
    scorer = TorchScorer(Recogniser(LABELS_12, classifier={"hidden_size": 8, "num_layers": 1}))
    assert not scorer.streams
    with pytest.raises(SettingError, match="needs a unidirectional model pooled by its last state or by attention"):
        StreamingRecogniser(scorer, StreamingConfig(stateful=True))
    code = main(["stream-test", str(tiny_checkpoint), "--data", str(SC_V2_TEST), "--stateful", "--minutes", "0.5"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(lines) == 1 and "needs a unidirectional model" in lines[0], err[-1500:]
