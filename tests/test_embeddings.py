"""Tests for lasca_jax.encoders.baseline (window pooling) and lasca_jax.encoders.wav2vec2 (extraction)."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import scipy.io.wavfile
import scipy.signal

from lasca_jax.encoders import baseline as baseline_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _save(path, **arrays):
  np.savez(path, **arrays)
  return path


def test_pool_frames_by_hand():
  times = np.array([0.0, 1.0, 2.9, 3.0, 4.5, 9.2, -0.5])
  emb = np.array([[1, 0], [3, 0], [5, 0], [10, 1], [20, 3], [7, 7], [99, 99]], float)
  pooled, counts = baseline_lib.pool_frames(emb, times, 3.0)
  assert counts.tolist() == [3, 2, 0, 1]  # 3.0 opens window 1; t < 0 dropped
  np.testing.assert_allclose(pooled[0], [3, 0])
  np.testing.assert_allclose(pooled[1], [15, 2])
  assert np.isnan(pooled[2]).all()
  np.testing.assert_allclose(pooled[3], [7, 7])
  # A fixed number of windows (the core's count) truncates or pads.
  p2, c2 = baseline_lib.pool_frames(emb, times, 3.0, num_windows=2)
  assert p2.shape == (2, 2) and c2.tolist() == [3, 2]
  p6, c6 = baseline_lib.pool_frames(emb, times, 3.0, num_windows=6)
  assert c6.tolist() == [3, 2, 0, 1, 0, 0] and np.isnan(p6[4:]).all()


def test_pooling_matches_core_windows():
  """Same windows and means as lasca_jax.method.windows.make_windows on the same frames."""
  windows = pytest.importorskip("lasca_jax.method.windows")
  from lasca_jax.data import types as data
  times = np.arange(0, 10.5, 0.04)  # 25 fps; frames sit exactly on 3 s / 5 s boundaries
  feats = np.random.default_rng(0).normal(size=(times.size, 2)).astype(np.float32)
  label = np.zeros(times.size, np.float32)
  rec = data.Recording("r", "s", times, feats, ("f0", "f1"), ("face", "face"), label, label)
  frames = windows.frames_to_arrays([rec])
  for w in (3.0, 5.0):
    core = windows.make_windows(frames, w)
    pooled, counts = baseline_lib.pool_frames(feats, times, w)
    np.testing.assert_array_equal(core.position, np.arange(counts.size))
    np.testing.assert_allclose(pooled, core.features, rtol=1e-5)


def test_load_errors_name_the_file(tmp_path):
  ok = dict(embeddings=np.zeros((3, 4)), times=np.array([0.0, 0.1, 0.2]))
  bad = {
      "shape.npz": dict(embeddings=np.zeros(3), times=np.zeros(3)),
      "len.npz": dict(embeddings=np.zeros((3, 4)), times=np.zeros(2)),
      "nan.npz": dict(embeddings=np.where(np.eye(3, 4) > 0, np.nan, 0.0), times=ok["times"]),
      "inf.npz": dict(embeddings=np.full((3, 4), np.inf), times=ok["times"]),
      "order.npz": dict(embeddings=np.zeros((3, 4)), times=np.array([0.0, 0.2, 0.1])),
      "nokey.npz": dict(x=np.zeros((3, 4))),
      "notime.npz": dict(embeddings=np.zeros((3, 4))),
  }
  messages = {"shape.npz": "shape", "len.npz": "times have shape", "nan.npz": "NaN values",
              "inf.npz": "infinite", "order.npz": "decrease", "nokey.npz": "no 'embeddings'",
              "notime.npz": "neither"}
  for name, arrays in bad.items():
    path = _save(tmp_path / name, **arrays)
    with pytest.raises(ValueError, match=messages[name]) as e:
      baseline_lib.load_embedding_file(path)
    assert str(path) in str(e.value)
  with pytest.raises(FileNotFoundError, match="missing.npz"):
    baseline_lib.load_embedding_file(tmp_path / "missing.npz")
  track = baseline_lib.load_embedding_file(_save(tmp_path / "ok.npz", **ok))
  assert track.embeddings.dtype == np.float32 and track.dim == 4


def test_per_window_files(tmp_path):
  emb = np.arange(6, dtype=float).reshape(3, 2)
  path = _save(tmp_path / "r.npz", embeddings=emb, window_seconds=np.float64(5.0),
               starts=np.array([0.0, 10.0, 5.0]))
  track = baseline_lib.load_embedding_file(path)
  pooled, counts = baseline_lib.pool_track(track, 5.0, num_windows=4)
  np.testing.assert_array_equal(pooled[:3], emb[[0, 2, 1]])
  assert counts.tolist() == [1, 1, 1, 0] and np.isnan(pooled[3]).all()
  with pytest.raises(ValueError, match="3.0 s"):
    baseline_lib.pool_track(track, 3.0)
  bad = _save(tmp_path / "b.npz", embeddings=emb, window_seconds=np.float64(5.0),
              starts=np.array([0.0, 2.5, 5.0]))
  with pytest.raises(ValueError, match="multiples"):
    baseline_lib.load_embedding_file(bad)


def test_embeddings_for_core_windows(tmp_path):
  _save(tmp_path / "a.npz", embeddings=np.array([[1.0], [3.0], [10.0]]),
        times=np.array([0.5, 1.0, 3.5]))
  _save(tmp_path / "b.npz", embeddings=np.array([[4.0]]), times=np.array([6.1]))
  rec = np.array([0, 0, 1, 1, 1])
  pos = np.array([0, 1, 0, 1, 2])
  emb, counts = baseline_lib.embeddings_for_windows(tmp_path, ["a", "b"], rec, pos, 3.0)
  assert counts.tolist() == [2, 1, 0, 0, 1]
  np.testing.assert_allclose(emb[[0, 1, 4], 0], [2.0, 10.0, 4.0])
  assert np.isnan(emb[2:4]).all()
  _save(tmp_path / "c.npz", embeddings=np.zeros((1, 2)), times=np.zeros(1))
  with pytest.raises(ValueError, match="dimension 2 differs"):
    baseline_lib.embeddings_for_windows(tmp_path, ["a", "c"], np.array([0, 1]), np.zeros(2), 3.0)
  np.testing.assert_allclose(baseline_lib.frame_coverage([75, 30], 0.04, 3.0), [1.0, 0.4])


# ----------------------------------------------------------------------------- wav2vec2


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
  transformers = pytest.importorskip("transformers")
  import torch
  torch.manual_seed(0)
  config = transformers.Wav2Vec2Config(
      hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
      conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
      hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
      layerdrop=0.0, mask_time_prob=0.0)
  path = tmp_path_factory.mktemp("w2v")
  transformers.Wav2Vec2Model(config).save_pretrained(path)
  return path


def _tone(rate, seconds, seed=0):
  t = np.arange(int(rate * seconds)) / rate
  rng = np.random.default_rng(seed)
  return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32)


def _reference(model_dir, samples):
  import torch
  import transformers
  model = transformers.Wav2Vec2Model.from_pretrained(model_dir).eval()
  x = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
  with torch.no_grad():
    return model(torch.from_numpy(x.astype(np.float32))[None]).last_hidden_state[0].numpy()


def test_wav2vec2_extraction(tiny_model, tmp_path):
  from lasca_jax.encoders import wav2vec2
  audio = tmp_path / "audio"
  audio.mkdir()
  x8 = _tone(8000, 1.0)
  scipy.io.wavfile.write(audio / "rec_a.wav", 8000, (x8 * 32767).astype(np.int16))
  x16 = (_tone(16000, 0.5, 1) * 32767).astype(np.int16)
  scipy.io.wavfile.write(audio / "rec_b.wav", 16000, x16)
  out = tmp_path / "out"
  status = wav2vec2.extract_files(tiny_model, [audio], out, chunk_seconds=0)
  assert sorted(status.values()) == ["written", "written"]
  track = baseline_lib.load_embedding_file(out / "rec_a.npz")
  # 1 s at 16 kHz: floor((16000 - 400) / 320) + 1 = 49 frames, centres 12.5 ms + 20 ms k.
  assert track.embeddings.shape == (49, 32)
  np.testing.assert_allclose(track.times, 0.0125 + 0.02 * np.arange(49))
  # Same numbers as running the model on the decoded, resampled, normalised waveform.
  pcm = (x8 * 32767).astype(np.int16).astype(np.float32) / 32768
  ref = _reference(tiny_model, scipy.signal.resample_poly(pcm, 2, 1).astype(np.float32))
  np.testing.assert_allclose(track.embeddings, ref, atol=2e-3)
  assert baseline_lib.load_embedding_file(out / "rec_b.npz").embeddings.shape == (24, 32)
  # Existing outputs are skipped; overwrite recomputes.
  np.savez(out / "rec_a.npz", embeddings=np.zeros((1, 32)), times=np.zeros(1))
  assert wav2vec2.extract_files(tiny_model, [audio], out)[str(audio / "rec_a.wav")] == "skipped"
  assert baseline_lib.load_embedding_file(out / "rec_a.npz").embeddings.shape == (1, 32)
  wav2vec2.extract_files(tiny_model, [audio / "rec_a.wav"], out, overwrite=True, chunk_seconds=0)
  assert baseline_lib.load_embedding_file(out / "rec_a.npz").embeddings.shape == (49, 32)
  assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_wav2vec2_chunks_keep_the_time_base(tiny_model):
  from lasca_jax.encoders import wav2vec2
  model, _ = wav2vec2.load_model(tiny_model)
  x = _tone(16000, 1.0)
  emb, times = wav2vec2.embed_waveform(model, x, chunk_seconds=0.5)
  # Two chunks of 8000 samples: 24 frames each; the second starts at 0.5 s.
  assert emb.shape == (48, 32)
  np.testing.assert_allclose(times[24:], 0.5 + 0.0125 + 0.02 * np.arange(24))
  np.testing.assert_allclose(emb[24:], _reference(tiny_model, x[8000:]), atol=2e-3)
  # Pooled into 0.5 s windows, each chunk lands in its own window.
  _, counts = baseline_lib.pool_frames(emb, times, 0.5)
  assert counts.tolist() == [24, 24]


def test_wav2vec2_reads_audio_from_a_video_container(tmp_path):
  av = pytest.importorskip("av")
  from lasca_jax.encoders import wav2vec2
  path = str(tmp_path / "clip.mkv")
  rate = 22050
  x = _tone(rate, 0.6)
  with av.open(path, "w") as c:
    v = c.add_stream("mpeg4", rate=10)
    v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
    a = c.add_stream("pcm_s16le", rate=rate)
    a.layout = "mono"
    for i in range(6):
      frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i, np.uint8), format="rgb24")
      for p in v.encode(frame):
        c.mux(p)
    af = av.AudioFrame.from_ndarray((x * 32767).astype(np.int16)[None], format="s16",
                                    layout="mono")
    af.sample_rate = rate
    for p in a.encode(af):
      c.mux(p)
    for s in (v, a):
      for p in s.encode(None):
        c.mux(p)
  samples, offset = wav2vec2.load_audio(path)
  assert abs(samples.shape[0] - 0.6 * 16000) <= 2 and abs(offset) < 0.05
  ref = scipy.signal.resample_poly(x, 320, 441)
  n = min(ref.size, samples.size)
  assert np.corrcoef(samples[100:n - 100], ref[100:n - 100])[0, 1] > 0.99


def test_command_line(tiny_model, tmp_path):
  scipy.io.wavfile.write(tmp_path / "x.wav", 16000, (_tone(16000, 0.3) * 32767).astype(np.int16))
  cmd = [sys.executable, str(REPO / "experiments" / "extract_wav2vec2.py"),
         f"--model_path={tiny_model}", f"--audio={tmp_path / 'x.wav'}",
         f"--output_dir={tmp_path / 'emb'}"]
  res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
  assert res.returncode == 0, res.stderr[-2000:]
  assert "1 written" in res.stdout
  assert baseline_lib.load_embedding_file(tmp_path / "emb" / "x.npz").embeddings.shape == (14, 32)
