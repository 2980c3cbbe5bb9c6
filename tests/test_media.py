"""Feature extraction: real clips with MediaPipe, alignment, feature files, resumable runner."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import media_fixtures as mf
from lasca_jax.data import types as data
from lasca_jax.data.extract import align, audio as audio_lib, load, runner, store
from lasca_jax.data.extract import video as video_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------- real clips

@pytest.fixture(scope="module")
def real(tmp_path_factory):
  """Both shared clips extracted once (stride 1): ``{name: feature dict}``."""
  model = mf.face_model()
  clips = {name: str(mf.shared_file(f"media/{name}.mp4"))
           for name in ("retalking_4", "retalking_1")}
  out = tmp_path_factory.mktemp("real")
  jobs = [runner.MediaJob(n, p, None, str(out / f"{n}.npz")) for n, p in clips.items()]
  results = runner.run_jobs(jobs, runner.Settings(face_model=model), progress=False)
  assert [r.status for r in results] == ["done", "done"], results
  return {n: store.load_features(str(out / f"{n}.npz")) for n in clips}


@pytest.mark.parametrize("name,fps,frames", [("retalking_4", 30.0, 199),
                                             ("retalking_1", 1350 / 61, 135)])
def test_real_clip_face_in_every_frame(real, name, fps, frames):
  f = real[name]
  assert f["meta"]["fps"] == pytest.approx(fps)
  assert f["meta"]["num_frames"] == frames
  assert f["face"].shape == (frames, 58) and f["face"].dtype == np.float32
  assert f["face_valid"].all() and np.isfinite(f["face"]).all()
  blend = f["face"][:, :52]
  assert (blend >= 0).all() and (blend <= 1).all()
  # A talking face opens and closes its jaw; pose angles are plausible degrees.
  assert blend[:, data.BLENDSHAPE_NAMES.index("jawOpen")].std() > 0.02
  assert (np.abs(f["face"][:, 52:55]) < 90).all()
  assert f["face"][:, 57].mean() < -10  # tz: the face is in front of the camera (cm).
  assert np.all(np.diff(f["frame_times"]) > 0) and f["frame_times"][0] == 0


@pytest.mark.parametrize("name,seconds", [("retalking_4", 6.63), ("retalking_1", 6.13)])
def test_real_clip_mfcc_shape_and_time_base(real, name, seconds):
  f = real[name]
  assert f["meta"]["has_audio"]
  assert f["mfcc"].shape[1] == 15 and np.isfinite(f["mfcc"]).all()
  assert abs(f["mfcc"].shape[0] - seconds * 100) < 10  # 10 ms hop.
  assert np.allclose(np.diff(f["audio_times"]), 0.01)
  assert abs(f["audio_times"][0]) < 0.05  # Audio starts with the first video frame.


def test_real_odd_frame_rate_on_per_frame_time_base(real):
  """Aff-Wild2-style rows (one per frame at the odd 1350/61 fps): every row gets both streams."""
  f = real["retalking_1"]
  times = np.arange(f["meta"]["num_frames"]) / f["meta"]["fps"]
  x = load.on_time_base(f, times, frame_clock="index")  # [135, 73]
  assert x.shape == (135, 73)
  np.testing.assert_array_equal(x[:, :58], f["face"])  # Row i is frame i.
  assert np.isfinite(x[:-1, 58:]).all()  # MFCC pooled onto every row (the last may end early).
  y = load.on_time_base(f, np.arange(0, 6.0, 0.1), frame_clock="pts")  # SEWA-style 10 Hz.
  assert np.isfinite(y).all()


def test_real_stride_keeps_every_row_filled(tmp_path):
  clip = str(mf.shared_file("media/retalking_1.mp4"))
  job = runner.MediaJob("r1", clip, None, str(tmp_path / "r1.npz"))
  settings = runner.Settings(face_model=mf.face_model(), frame_stride=3)
  assert runner.run_job(job, settings).status == "done"
  f = store.load_features(job.output)
  np.testing.assert_array_equal(f["frame_index"], np.r_[np.arange(0, 135, 3), 134])
  x = load.on_time_base(f, np.arange(135) / f["meta"]["fps"], frame_clock="index")
  assert np.isfinite(x[:, :58]).all()  # Nearest processed frame within half a stride.


def test_two_person_video_keeps_left_and_right_face(tmp_path):
  """A real side-by-side video: _left keeps the left face, _right the right one."""
  import av  # pylint: disable=g-import-not-at-top
  frames = []
  with av.open(str(mf.shared_file("media/retalking_4.mp4"))) as a, \
       av.open(str(mf.shared_file("media/retalking_1.mp4"))) as b:
    for fa, fb, _ in zip(a.decode(video=0), b.decode(video=0), range(12)):
      left = fa.to_ndarray(format="rgb24")[::2, ::2]  # 350 x 350
      right = np.fliplr(fb.to_ndarray(format="rgb24"))[::2, ::2]
      frames.append(np.concatenate([left, np.zeros((350, 100, 3), np.uint8), right], axis=1))
  path = mf.write_video(tmp_path / "pair.mp4", np.stack(frames), fps=30)
  settings = runner.Settings(face_model=mf.face_model())
  out = {}
  for side in ("left", "right"):
    job = runner.MediaJob(f"pair_{side}", path, None, str(tmp_path / f"{side}.npz"), side)
    assert runner.run_job(job, settings).status == "done"
    out[side] = store.load_features(job.output)
    assert out[side]["face_valid"].all()
  tx = {s: out[s]["face"][:, data.FACE_FEATURE_NAMES.index("headTx")] for s in out}
  assert (tx["left"] < tx["right"]).all()
  assert not np.allclose(out["left"]["face"][:, :52], out["right"]["face"][:, :52])


# ------------------------------------------------------------------------ unit properties

def test_missing_model_message_says_where_to_get_it(tmp_path):
  with pytest.raises(FileNotFoundError, match="storage.googleapis.com.*face_landmarker.task"):
    video_lib.resolve_model_path(str(tmp_path / "nope.task"))


def _rotation(pitch, yaw, roll):
  p, y, r = np.radians([pitch, yaw, roll])
  rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
  ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
  rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
  return rz @ ry @ rx


@pytest.mark.parametrize("angles", [(10, -20, 5), (-35, 40, -60), (0, 0, 0)])
def test_head_pose_recovers_euler_angles_and_translation(angles):
  m = np.eye(4)
  m[:3, :3] = _rotation(*angles)
  m[:3, 3] = [1.5, -2.0, -45.0]
  np.testing.assert_allclose(video_lib.head_pose(m), list(angles) + [1.5, -2.0, -45.0],
                             atol=1e-9)


def test_pick_face_left_right_and_single_face():
  last = {}
  assert video_lib.pick_face([0.7, 0.2], "left", last) == 1
  assert video_lib.pick_face([0.7, 0.2], "right", last) == 0
  assert video_lib.pick_face([0.68], "right", last) == 0  # Nearer the right face's last place.
  assert video_lib.pick_face([0.68], "left", dict(last)) is None
  assert video_lib.pick_face([0.3], "left", {}) == 0  # Unseen sides: left half -> left.
  assert video_lib.pick_face([], "any", {}) is None


def _pool_reference(src_t, values, dst_t, period):
  """Loop version of align.pool_to_time_base."""
  edges = align.step_edges(dst_t, period)
  out = np.full((dst_t.size, values.shape[1]), np.nan)
  for k in range(dst_t.size):
    inside = (src_t >= edges[k]) & (src_t < edges[k + 1])
    if inside.any():
      with np.errstate(all="ignore"):
        import warnings  # pylint: disable=g-import-not-at-top
        with warnings.catch_warnings():
          warnings.simplefilter("ignore")
          out[k] = np.nanmean(values[inside], axis=0)
    else:
      j = np.argmin(np.abs(src_t - dst_t[k]))
      if abs(src_t[j] - dst_t[k]) <= period / 2 + 1e-9:
        out[k] = values[j]
  return out


@pytest.mark.parametrize("src_rate,dst_rate,stride", [(100, 10, 1), (30, 30, 1), (30, 30, 4),
                                                      (25, 50, 1), (22.13, 10, 2)])
def test_pool_matches_reference(src_rate, dst_rate, stride):
  rng = np.random.default_rng(0)
  src_t = np.arange(0, 4.0, stride / src_rate)
  values = rng.normal(size=(src_t.size, 3))
  values[rng.random(values.shape) < 0.2] = np.nan
  dst_t = np.arange(0, 4.5, 1 / dst_rate)  # Runs past the source's end.
  got = align.pool_to_time_base(src_t, values, dst_t, stride / src_rate)
  np.testing.assert_allclose(got, _pool_reference(src_t, values, dst_t, stride / src_rate),
                             rtol=1e-5, equal_nan=True)
  assert np.isnan(got[dst_t > 4.0 + stride / src_rate]).all()


def test_mfcc_time_base_and_shape():
  sr = 16000
  x = np.sin(2 * np.pi * 440 * np.arange(2 * sr) / sr).astype(np.float32)
  c = audio_lib.mfcc(x, sr)
  assert c.shape == (201, 15) and c.dtype == np.float32
  assert audio_lib.mfcc(np.zeros(0, np.float32), sr).shape == (0, 15)


def test_audio_offset_follows_container_clock(tmp_path):
  """Audio of a separate wav starts at 0; MFCC frames cover its duration."""
  wav = mf.write_wav(tmp_path / "a.wav", 1.5)
  times, coeffs, has_audio = audio_lib.mfcc_track(wav)
  assert has_audio and coeffs.shape == (151, 15) and times[0] == 0
  np.testing.assert_allclose(times[-1], 1.5)


# --------------------------------------------------------------------- feature files

def test_store_roundtrip_atomic_and_corrupt(tmp_path):
  path = str(tmp_path / "x.npz")
  arrays = mf.write_fake_features(path, 10, 25.0, audio_seconds=0.5)
  got = store.load_features(path)
  np.testing.assert_array_equal(got["face"], arrays["face"])
  assert os.listdir(tmp_path) == ["x.npz"]  # No temporary file left behind.
  with open(path, "wb") as f:
    f.write(b"not a zip")
  with pytest.raises(ValueError, match=r"x\.npz is unreadable"):
    store.load_features(path)
  assert not store.is_current(path, {}, {})


# ------------------------------------------------------------------ runner (synthetic media)

@pytest.fixture
def media(tmp_path):
  """Three small recordings: ok (mp4 + aac), silent (no audio track), broken (garbage)."""
  folder = tmp_path / "media"
  folder.mkdir()
  mf.write_video(folder / "ok.mp4", 10, fps=25, audio_seconds=0.4)
  mf.write_video(folder / "silent.avi", 8, fps=20)
  (folder / "broken.mp4").write_bytes(b"\x00\x01garbage" * 50)
  out = tmp_path / "features"
  return [runner.MediaJob(n, str(folder / f), None, str(out / f"{n}.npz"))
          for n, f in (("ok", "ok.mp4"), ("silent", "silent.avi"), ("broken", "broken.mp4"))]


def test_runner_reports_failures_and_keeps_going(media):
  settings = runner.Settings(face_model=mf.face_model())
  results = {r.recording_id: r for r in runner.run_jobs(media, settings, progress=False)}
  assert results["ok"].status == "done" and results["silent"].status == "done"
  assert results["broken"].status == "failed"
  assert "broken.mp4" in results["broken"].reason
  assert "no audio track" in results["silent"].reason
  silent = store.load_features(media[1].output)
  assert silent["mfcc"].shape == (0, 15) and not silent["meta"]["has_audio"]
  assert silent["face"].shape == (8, 58) and not silent["face_valid"].any()  # No face: NaN.
  assert np.isnan(silent["face"]).all()
  x = load.on_time_base(silent, np.arange(8) / 20.0)
  assert np.isnan(x).all()
  summary = runner.summarise(results.values())
  assert summary["failures"] == [("broken", results["broken"].reason)]


def test_resume_recomputes_nothing_finished(media, monkeypatch):
  settings = runner.Settings(face_model=mf.face_model())
  runner.run_jobs(media[:1], settings, progress=False)  # "Interrupted" after the first job,
  stamp = os.stat(media[0].output).st_mtime_ns
  half_written = os.path.join(os.path.dirname(media[1].output), ".tmp-silent.npzab12.npz")
  with open(half_written, "wb") as f:  # while writing the second.
    f.write(b"PK\x03")
  calls = []
  real_extract = runner.extract
  monkeypatch.setattr(runner, "extract", lambda job, s: calls.append(job.recording_id) or
                      real_extract(job, s))
  results = {r.recording_id: r.status for r in runner.run_jobs(media, settings, progress=False)}
  assert results == {"ok": "skipped", "silent": "done", "broken": "failed"}
  assert sorted(calls) == ["broken", "silent"] and os.stat(media[0].output).st_mtime_ns == stamp
  assert sorted(os.listdir(os.path.dirname(media[0].output))) == ["ok.npz", "silent.npz"]
  # Changed settings make the file stale; a failed run never deletes what exists.
  assert not store.is_current(media[0].output, runner.job_inputs(media[0]),
                              runner.job_settings(media[0], runner.Settings(
                                  face_model=mf.face_model(), frame_stride=2)))
  os.replace(media[0].video, media[0].video + ".moved")
  assert runner.run_job(media[0], settings).status == "failed"
  assert os.path.exists(media[0].output)


def test_shards_partition_the_jobs(media):
  shards = [runner.select_shard(media, i, 2) for i in range(2)]
  ids = [j.recording_id for s in shards for j in s]
  assert sorted(ids) == sorted(j.recording_id for j in media) and len(set(ids)) == len(ids)
  with pytest.raises(ValueError, match="shard_index"):
    runner.select_shard(media, 2, 2)


def test_worker_processes(media):
  settings = runner.Settings(face_model=mf.face_model())
  results = runner.run_jobs(media, settings, num_workers=2, progress=False)
  assert [r.status for r in results] == ["failed", "done", "done"]  # broken, ok, silent


def test_extract_command_end_to_end(tmp_path):
  """experiments/extract.py on an Aff-Wild2-shaped folder: extracts, reports, resumes."""
  root = tmp_path / "aw2"
  (root / "batch1").mkdir(parents=True)
  mf.write_video(root / "batch1" / "v1.mp4", 6, fps=25, audio_seconds=0.24)
  (root / "ann").mkdir()
  (root / "ann" / "v1.txt").write_text("valence,arousal\n" + "0.1,0.2\n" * 6)
  cmd = [sys.executable, os.path.join(REPO, "experiments", "extract.py"),
         f"--config={os.path.join(REPO, 'configs', 'affwild2.py')}",
         f"--config.data.root={root}", f"--config.data.face_model={mf.face_model()}"]
  first = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
  assert first.returncode == 0, first.stderr[-2000:]
  assert "1 extracted" in first.stdout and (root / "lasca_features" / "v1.npz").exists()
  assert (root / "lasca_features" / "extract_report.json").exists()
  second = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
  assert "1 already done" in second.stdout


def test_truncated_video_keeps_what_decodes(tmp_path):
  """A cut-off .avi yields the frames before the cut, with a warning; a cut-off .mp4 (index at
  the end) cannot be opened and is reported naming the file."""
  settings = runner.Settings(face_model=mf.face_model())
  for ext, status in ((".avi", "done"), (".mp4", "failed")):
    whole = mf.write_video(tmp_path / f"whole{ext}", 40, fps=25, audio_seconds=1.6)
    with open(whole, "rb") as f:
      content = f.read()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(content[:len(content) // 2])
    result = runner.run_job(runner.MediaJob("cut", str(cut), None, str(tmp_path / "cut.npz")),
                            settings, overwrite=True)
    assert result.status == status, result
    if status == "done":
      assert 0 < result.frames < 40 and "declared frames" in result.reason
    else:
      assert f"cut{ext}" in result.reason
