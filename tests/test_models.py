"""The embedded models: GE2E rebuilt without torch must give resemblyzer's embeddings; the shipped encoder must hear
voices through a radio channel better than GE2E; VAD must find speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voxwatch import ModelError, SileroVad, load_audio, load_backend
from voxwatch.audio import RATE_HZ
from voxwatch.embedding import DEFAULT_MODEL, EmbeddingBackend
from voxwatch.features import mel_filterbank, mel_spectrogram
from voxwatch.ge2e import export, read_legacy_state, resemblyzer_weights
from voxwatch.vad import FRAME, VadState

# resemblyzer's VoiceEncoder (torch) on 1.6 s of 2033-164914-0000.flac from 1.0 s, volume-normalised to -30 dBFS:
# the first 8 values and the embedding's dot product with arange(256).
GOLDEN_HEAD = [0.270997, 0.0, 0.047131, 0.0, 0.0, 0.0, 0.0, 0.043344]
GOLDEN_DOT = 971.7413720311597


@pytest.fixture(scope="module")
def ge2e() -> EmbeddingBackend:
    return load_backend("ge2e")


def test_ge2e_matches_resemblyzer_golden(data: Path, ge2e) -> None:
    backend = ge2e
    audio = load_audio(data / "resemblyzer/audio_data/librispeech_test-other/2033/2033-164914-0000.flac")
    e = backend.embed(audio[None, RATE_HZ : RATE_HZ + 25600])[0]
    assert backend.dimension == 256 and backend.window_s == 1.6
    np.testing.assert_allclose(e[:8], GOLDEN_HEAD, atol=2e-5)
    assert abs(float(e @ np.arange(256)) - GOLDEN_DOT) < 0.01
    assert abs(np.linalg.norm(e) - 1) < 1e-5


def _numpy_lstm_embedding(state: dict[str, np.ndarray], mels: np.ndarray) -> np.ndarray:
    """An independent reference: torch's LSTM equations (gates i, f, g, o) in plain numpy."""

    def sigmoid(x: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-x))

    x = mels.astype(np.float64)
    for layer in range(3):
        w_ih, w_hh = state[f"lstm.weight_ih_l{layer}"], state[f"lstm.weight_hh_l{layer}"]
        b = state[f"lstm.bias_ih_l{layer}"] + state[f"lstm.bias_hh_l{layer}"]
        h, c, out = np.zeros(256), np.zeros(256), []
        for t in range(len(x)):
            i, f, g, o = np.split(w_ih @ x[t] + w_hh @ h + b, 4)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            out.append(h)
        x = np.array(out)
    e = np.maximum(state["linear.weight"] @ h + state["linear.bias"], 0)
    return e / np.linalg.norm(e)


def test_onnx_graph_equals_reference_lstm(data: Path, ge2e) -> None:
    backend = ge2e
    audio = load_audio(data / "resemblyzer/audio_data/librispeech_test-other/1688/1688-142285-0000.flac")[:25600]
    gain = max(1.0, 10 ** (-30 / 20) / float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))))  # raise to -30 dBFS, never lower
    mels = mel_spectrogram(audio * gain)[:160]
    reference = _numpy_lstm_embedding(read_legacy_state(resemblyzer_weights()), mels)
    np.testing.assert_allclose(backend.embed(audio[None])[0], reference, atol=1e-4)


def test_mel_filterbank_is_slaney_normalised() -> None:
    fb = mel_filterbank()
    assert fb.shape == (201, 40)
    peaks = fb.argmax(axis=0)
    assert np.all(np.diff(peaks) >= 0), "filters must rise in frequency"
    # Slaney normalisation: each triangle has unit area in Hz → heights shrink as filters widen.
    assert fb[:, 0].max() > fb[:, -1].max()


def test_exported_onnx_file_loads_as_a_plugged_in_model(tmp_path: Path, data: Path, ge2e) -> None:
    backend = ge2e
    path = export(tmp_path / "ge2e.onnx")
    plugged = load_backend(str(path))
    audio = load_audio(
        data
        / "resemblyzer/audio_data/librispeech_test-other/3005/"
        / min(p.name for p in (data / "resemblyzer/audio_data/librispeech_test-other/3005").iterdir())
    )
    windows = np.stack([audio[:25600], audio[8000:33600]])
    np.testing.assert_allclose(plugged.embed(windows), backend.embed(windows), atol=1e-6)
    assert plugged.dimension == 256
    path.with_suffix(".json").unlink()  # without its sidecar, the other contract (WeSpeaker's) is assumed
    with pytest.raises(ModelError, match=r"takes mels and gives embedding, not the 'feats' and 'embs' expected.*sidecar"):
        load_backend(str(path))


def test_model_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such model file"):
        load_backend(str(tmp_path / "missing.onnx"))
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load ONNX model"):
        load_backend(str(bogus))
    with pytest.raises(ModelError, match="unknown embedding model"):
        load_backend("ecapa-from-nowhere")


def test_vad_finds_speech_and_not_silence(data: Path, models) -> None:  # type: ignore[no-untyped-def]
    _, vad = models
    speech = load_audio(
        data
        / "resemblyzer/audio_data/librispeech_test-other/2414/"
        / min(p.name for p in (data / "resemblyzer/audio_data/librispeech_test-other/2414").iterdir())
    )
    n = len(speech) // FRAME
    signal = np.concatenate([np.zeros(n * FRAME, np.float32), speech[: n * FRAME]]).reshape(-1, FRAME)
    states = [VadState()] * len(signal)
    probs = vad.probabilities(signal, states)
    assert probs[:n].max() < 0.1, "digital silence is never speech"
    assert np.mean(probs[n:] > 0.5) > 0.5, "read speech is mostly speech"
    noise = np.random.default_rng(0).normal(0, 0.01, (n, FRAME)).astype(np.float32)
    assert np.mean(vad.probabilities(noise, [VadState()] * n) > 0.5) < 0.05, "white noise is not speech"


def test_vad_batches_streams_independently(data: Path, models) -> None:  # type: ignore[no-untyped-def]
    _, vad = models
    speech = load_audio(
        data
        / "resemblyzer/audio_data/librispeech_test-other/533/"
        / min(p.name for p in (data / "resemblyzer/audio_data/librispeech_test-other/533").iterdir())
    )
    frames = speech[: 40 * FRAME].reshape(40, FRAME)
    alone = vad.probabilities(frames, [VadState()] * 40)
    a, b = VadState(), VadState()
    mixed = np.empty((80, FRAME), np.float32)
    mixed[0::2], mixed[1::2] = frames, frames[::-1]
    together = vad.probabilities(mixed, [a, b] * 40)
    np.testing.assert_allclose(together[0::2], alone, atol=1e-5)


def test_silero_path_is_found() -> None:
    assert SileroVad().name == "silero-vad"


def _mean_embedding(backend: EmbeddingBackend, audio: np.ndarray) -> np.ndarray:
    windows = np.stack([audio[s : s + 25600] for s in range(0, len(audio) - 25600 + 1, 12800)])
    e = backend.embed(windows).mean(axis=0)
    return e / np.linalg.norm(e)


def test_shipped_encoder_hears_voices_through_a_radio_channel_better_than_ge2e(
    readers: dict[str, list[Path]], ge2e: EmbeddingBackend
) -> None:
    """Held-out readers enrolled on clean speech, tested on other readings through the walkie-talkie channel: the
    shipped encoder separates same-voice from other-voice trials by a wider margin than GE2E, and stays as good on
    clean speech."""
    from voxwatch import channels

    encoder = load_backend("voxwatch-enc")
    assert (encoder.name, encoder.dimension, encoder.window_s) == ("voxwatch-enc", 256, 1.6)
    rng = np.random.default_rng(5)
    names = sorted(readers)
    enroll = {n: np.concatenate([load_audio(f) for f in readers[n][:3]]) for n in names}
    tests = [(n, load_audio(f)) for n in names for f in readers[n][3:5]]
    gaps = {}
    for backend in (ge2e, encoder):
        prints = np.stack([_mean_embedding(backend, enroll[n]) for n in names])
        for condition in ("clean", "radio"):
            scores = np.array(
                [prints @ _mean_embedding(backend, x if condition == "clean" else channels.radio(x, rng)) for _, x in tests]
            )
            truth = np.array([[n == t for n in names] for t, _ in tests])
            gaps[backend.name, condition] = float(scores[truth].mean() - scores[~truth].mean())
    assert gaps["voxwatch-enc", "radio"] > gaps["ge2e", "radio"] + 0.05, gaps
    assert gaps["voxwatch-enc", "clean"] > gaps["ge2e", "clean"] - 0.03, gaps


def test_every_shipped_model_has_its_own_calibration() -> None:
    from voxwatch.scoring import SHIPPED_CALIBRATIONS, Calibration

    assert {"voxwatch-enc", "ge2e"} <= set(SHIPPED_CALIBRATIONS)
    assert Calibration.default("voxwatch-enc") != Calibration.default("ge2e")
    assert Calibration.default("voxwatch-enc").model == "voxwatch-enc"
    assert Calibration.from_json(Calibration.default("ge2e").to_json()) == Calibration.default("ge2e")
    with pytest.raises(ModelError, match="no shipped calibration for model 'someone-elses-model'.*voxwatch calibrate"):
        Calibration.default("someone-elses-model")
    borrowed = Calibration.borrowed("someone-elses-model")  # for scores that decide nothing
    assert borrowed.llr(0.7, 3.0) == Calibration.default(DEFAULT_MODEL).llr(0.7, 3.0)


def test_kaldi_fbank_matches_kaldi_native_fbank(data: Path) -> None:
    """The features of plugged-in WeSpeaker models are Kaldi's fbank with WeSpeaker's settings (Hamming window)."""
    knf = pytest.importorskip("kaldi_native_fbank", reason="kaldi-native-fbank is a test dependency")
    from voxwatch.features import kaldi_fbank, log_fbank

    audio = load_audio(data / "resemblyzer/audio_data/librispeech_test-other/1688/1688-142285-0000.flac")[: 3 * RATE_HZ]
    options = knf.FbankOptions()
    options.frame_opts.dither = 0.0
    options.frame_opts.window_type = "hamming"  # WeSpeaker: kaldi.fbank(..., dither=0.0, window_type="hamming")
    options.mel_opts.num_bins = 80
    reference = knf.OnlineFbank(options)
    reference.accept_waveform(RATE_HZ, (audio * 32768).tolist())
    reference.input_finished()
    expected = np.stack([reference.get_frame(i) for i in range(reference.num_frames_ready)])
    ours = kaldi_fbank(audio)
    assert ours.shape == expected.shape == (298, 80)
    np.testing.assert_allclose(ours, expected, atol=0.005)  # log energies from about -3 to 26
    np.testing.assert_allclose(log_fbank(audio), expected - expected.mean(axis=0), atol=0.005)
    options.frame_opts.window_type = "povey"  # and the window matters: Povey's differs by more than the tolerance
    povey = knf.OnlineFbank(options)
    povey.accept_waveform(RATE_HZ, (audio * 32768).tolist())
    povey.input_finished()
    assert np.abs(np.stack([povey.get_frame(i) for i in range(povey.num_frames_ready)]) - ours).max() > 0.1


def test_the_default_model_routes_each_channel_band_to_its_encoder(data: Path, ge2e) -> None:
    """ge2e+voxwatch-enc embeds wideband windows with GE2E, narrowband ones with voxwatch-enc, each in its own part of
    one vector, and a voiceprint's windows with both."""
    from voxwatch.embedding import BandRouted
    from voxwatch.scoring import Calibration

    routed = load_backend(DEFAULT_MODEL)
    assert DEFAULT_MODEL == "ge2e+voxwatch-enc" and isinstance(routed, BandRouted)
    calibration = Calibration.default(DEFAULT_MODEL)  # its parts: where each band's encoder writes in the vector
    assert (routed.dimension, routed.window_s) == (512, 1.6)
    assert (calibration.part, calibration.band("narrowband").part) == ((0, routed.wide.dimension), (256, routed.dimension))
    audio = load_audio(data / "resemblyzer/audio_data/librispeech_test-other/2033/2033-164914-0000.flac")
    batch = np.stack([audio[s : s + 25600] for s in (0, 16000, 32000)])
    encoder = load_backend("voxwatch-enc")
    wide, narrow, both = (routed.embed(batch, band) for band in ("wideband", "narrowband", None))
    np.testing.assert_allclose(wide[:, :256], ge2e.embed(batch), atol=1e-6)
    np.testing.assert_allclose(narrow[:, 256:], encoder.embed(batch), atol=1e-6)
    assert not wide[:, 256:].any() and not narrow[:, :256].any()
    np.testing.assert_allclose(both * np.sqrt(2), np.hstack([ge2e.embed(batch), encoder.embed(batch)]), atol=1e-5)
    with pytest.raises(ModelError, match="one per channel band: WIDE\\+NARROW"):
        load_backend("ge2e+voxwatch-enc+ge2e")
    with pytest.raises(ValueError, match="band must be"):
        routed.embed(batch, "ultrasonic")
