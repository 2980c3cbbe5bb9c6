"""Dataset loaders on small fixtures written in each dataset's own format."""

import json
import os
import pathlib
import sys

import numpy as np
import pytest

import media_fixtures as mf
from lasca_jax.data import types as data
from lasca_jax.data.datasets import affwild2, custom, sewa
from lasca_jax.data.extract import load, runner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from configs import affwild2 as affwild2_config  # pylint: disable=wrong-import-position
from configs import custom as custom_config  # pylint: disable=wrong-import-position
from configs import sewa as sewa_config  # pylint: disable=wrong-import-position


def _write(path, text):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)
  return path


def test_configs_protocols():
  assert affwild2_config.get_config().protocol.name == "random_splits"
  assert sewa_config.get_config().protocol.name == "kfold"
  for module in (affwild2_config, sewa_config, custom_config):
    config = module.get_config()
    assert config.data.name == config.name and config.protocol.num_folds == 15
    assert module.get_config("runlocal").protocol.num_folds == 2


# ---------------------------------------------------------------------------- Aff-Wild2

def _ann(rows):
  return "valence,arousal\n" + "".join(f"{v},{a}\n" for v, a in rows)


@pytest.fixture
def aw2(tmp_path):
  """Aff-Wild2 layout: batch1/batch2/new_vids videos, ABAW annotation folders."""
  root = tmp_path / "Aff-Wild2"
  for folder in ("batch1", "batch2", "new_vids"):
    (root / folder).mkdir(parents=True)
  (root / "batch1" / "v1.mp4").write_bytes(b"x")
  (root / "batch2" / "v2.avi").write_bytes(b"x")
  (root / "new_vids" / "v3.mp4").write_bytes(b"x")
  (root / "new_vids" / "v4.mp4").write_bytes(b"x")  # No annotation: not a recording.
  ann = root / "annotations" / "VA_Estimation_Challenge"
  rows = [(0.1 * (i % 10) - 0.5, 0.05 * i - 0.5) for i in range(20)]
  rows[4] = rows[5] = (-5, -5)
  _write(ann / "Train_Set" / "v1.txt", _ann(rows))
  _write(ann / "Train_Set" / "v2_left.txt", _ann([(0.2, 0.3)] * 12))
  _write(ann / "Train_Set" / "v2_right.txt", _ann([(-0.2, -0.3)] * 12))
  _write(ann / "Validation_Set" / "v3.txt", _ann([(0.0, 0.5)] * 15))  # 15 rows, 10 frames.
  _write(root / "README.txt", "not an annotation\n")
  config = affwild2_config.get_config()
  config.data.root = str(root)
  feats = root / "lasca_features"
  mf.write_fake_features(feats / "v1.npz", 20, 25.0, audio_seconds=0.8, no_face=[3])
  mf.write_fake_features(feats / "v2_left.npz", 12, 30.0, audio_seconds=0.4)
  mf.write_fake_features(feats / "v2_right.npz", 12, 30.0, stride=3, audio_seconds=0.4)
  mf.write_fake_features(feats / "v3.npz", 10, 25.0)  # No audio track.
  return config


def test_affwild2_media_jobs(aw2):
  jobs = {j.recording_id: j for j in affwild2.media_jobs(aw2.data)}
  assert sorted(jobs) == ["v1", "v2_left", "v2_right", "v3"]
  assert jobs["v2_left"].video == jobs["v2_right"].video
  assert jobs["v2_left"].video.endswith(os.path.join("batch2", "v2.avi"))
  assert (jobs["v2_left"].side, jobs["v2_right"].side, jobs["v1"].side) == ("left", "right", "any")
  assert jobs["v1"].audio is None
  assert jobs["v1"].output == os.path.join(aw2.data.root, "lasca_features", "v1.npz")


def test_affwild2_recordings(aw2):
  recs = {r.recording_id: r for r in affwild2.load_recordings(aw2.data)}
  data.check_consistent(list(recs.values()))
  v1 = recs["v1"]
  assert v1.subject_id == "v1" and v1.feature_names == load.FEATURE_NAMES
  assert v1.modalities.count("face") == 58 and v1.modalities.count("audio") == 15
  np.testing.assert_allclose(v1.times, np.arange(20) / 25.0)
  assert np.isnan(v1.valence[[4, 5]]).all() and np.isnan(v1.arousal[[4, 5]]).all()
  assert np.isfinite(np.delete(v1.valence, [4, 5])).all()
  face = v1.features[:, 0]
  np.testing.assert_array_equal(np.delete(face, 3), np.delete(np.arange(20.0), 3))  # Row i=frame i.
  assert np.isnan(v1.features[3, :58]).all()  # No face: NaN, not zero.
  np.testing.assert_allclose(v1.features[:, 58], v1.times, atol=0.006)  # MFCC pooled by time.
  # Two-person video: two subjects; a stride-3 extraction still fills every row.
  assert recs["v2_left"].subject_id != recs["v2_right"].subject_id
  np.testing.assert_array_equal(recs["v2_right"].features[:, 0],
                                [0, 0, 3, 3, 3, 6, 6, 6, 9, 9, 9, 11])  # Ties: earlier.
  # 15 rows, 10 decoded frames: the extra rows have no features (and no audio track at all).
  v3 = recs["v3"]
  assert v3.features.shape == (15, 73)
  assert np.isfinite(v3.features[:10, :58]).all() and np.isnan(v3.features[10:]).all()
  assert np.isnan(v3.features[:, 58:]).all()


def test_affwild2_missing_features_and_bad_annotation(aw2):
  os.remove(os.path.join(aw2.data.root, "lasca_features", "v3.npz"))
  with pytest.raises(FileNotFoundError, match=r"v3.*experiments/extract\.py --config=configs/"
                     r"affwild2\.py"):
    affwild2.load_recordings(aw2.data)
  aw2.data.skip_missing = True
  assert [r.recording_id for r in affwild2.load_recordings(aw2.data)] == [
      "v1", "v2_left", "v2_right"]
  bad = _write(pathlib.Path(aw2.data.root) / "v9.txt", _ann([(0.1, 0.2), (2.0, 0.1)]))
  with pytest.raises(ValueError, match=r"v9\.txt: line 3: value \[2\.0, 0\.1\]"):
    affwild2.load_recordings(aw2.data)
  bad.write_text("valence,arousal\n0.1;0.2\n")
  with pytest.raises(ValueError, match=r"v9\.txt: line 2"):
    affwild2.load_recordings(aw2.data)


def test_affwild2_fingerprint_tracks_files(aw2):
  first = affwild2.fingerprint(aw2.data)
  json.dumps(first)
  path = os.path.join(aw2.data.root, "annotations", "VA_Estimation_Challenge", "Train_Set",
                      "v1.txt")
  with open(path, "a") as f:
    f.write("0.1,0.1\n")
  assert affwild2.fingerprint(aw2.data) != first


def test_affwild2_extraction_with_corrupt_and_missing_media(tmp_path):
  """Real extraction over an Aff-Wild2 folder: a corrupt video and a missing one are reported,
  the others extracted and loaded."""
  model = mf.face_model()
  root = tmp_path / "aw2"
  (root / "batch1").mkdir(parents=True)
  (root / "batch2").mkdir()
  mf.write_video(root / "batch1" / "good.mp4", 12, fps=25, audio_seconds=0.5)
  mf.write_video(root / "batch2" / "pair.avi", 9, fps=15, audio_seconds=0.6)
  (root / "batch2" / "corrupt.mp4").write_bytes(os.urandom(2000))
  _write(root / "ann" / "good.txt", _ann([(0.1, 0.2)] * 13))  # One row more than frames.
  _write(root / "ann" / "pair_left.txt", _ann([(0.1, 0.2)] * 9))
  _write(root / "ann" / "pair_right.txt", _ann([(0.1, 0.2)] * 9))
  _write(root / "ann" / "corrupt.txt", _ann([(0.1, 0.2)] * 5))
  _write(root / "ann" / "novideo.txt", _ann([(0.1, 0.2)] * 5))
  config = affwild2_config.get_config()
  config.data.root, config.data.face_model = str(root), model
  results = {r.recording_id: r for r in runner.run_jobs(
      affwild2.media_jobs(config.data), runner.settings_from_config(config.data),
      progress=False)}
  assert {k: r.status for k, r in results.items()} == {
      "corrupt": "failed", "good": "done", "novideo": "failed", "pair_left": "done",
      "pair_right": "done"}
  assert "corrupt.mp4" in results["corrupt"].reason
  assert "novideo" in results["novideo"].reason
  config.data.skip_missing = True
  recs = {r.recording_id: r for r in affwild2.load_recordings(config.data)}
  assert sorted(recs) == ["good", "pair_left", "pair_right"]
  good = recs["good"]
  assert good.features.shape == (13, 73)
  assert np.isnan(good.features[:, :58]).all()  # Grey frames: no face, so NaN.
  assert np.isfinite(good.features[:, 58:]).all()  # Row 13 (0.48 s) is past the frames, not
                                                   # past the 0.5 s of audio.
  np.testing.assert_allclose(recs["pair_left"].times, np.arange(9) / 15.0)


# --------------------------------------------------------------------------------- SEWA

@pytest.fixture
def sewa_root(tmp_path):
  root = tmp_path / "SEWA"
  avec19 = "name;timestamp;arousal;valence;liking\n" + "".join(
      f"Train_DE_01;{i / 10:.1f};{0.01 * i:.3f};{-0.02 * i:.3f};0.0\n" for i in range(20))
  _write(root / "labels" / "Train_DE_01.csv", avec19)
  avec17 = "".join(f"Devel_01;{i / 10:.1f};0.3;0.4;0.0\n" for i in range(10))
  _write(root / "labels17" / "Devel_01.csv", avec17)
  # Raw SEWA DB: one column per rater, an empty cell where a rater did not rate.
  _write(root / "raw" / "Valence" / "HU_07.csv",
         "time,r1,r2,r3\n" + "".join(f"{i / 10:.1f},0.1,0.3,{'' if i == 2 else 0.2}\n"
                                     for i in range(8)))
  _write(root / "raw" / "Arousal" / "HU_07.csv",
         "time,r1,r2,r3\n" + "".join(f"{i / 10:.1f},-0.1,-0.3,-0.2\n" for i in range(8)))
  _write(root / "raw" / "CN_02_Valence.csv", "".join(f"{i * 0.1:.1f};0.5;0.7\n" for i in range(6)))
  _write(root / "raw" / "CN_02_Arousal.csv", "".join(f"{i * 0.1:.1f};0.1;0.3\n" for i in range(6)))
  _write(root / "features" / "Train_DE_01.csv", "name;frameTime;a;b;c;d;e\n")  # Ignored.
  (root / "video").mkdir()
  (root / "audio").mkdir()
  for rec in ("Train_DE_01", "Devel_01", "HU_07", "CN_02"):
    (root / "video" / f"{rec}.avi").write_bytes(b"x")
  (root / "audio" / "Train_DE_01.wav").write_bytes(b"x")
  feats = root / "lasca_features"
  mf.write_fake_features(feats / "Train_DE_01.npz", 60, 30.0, audio_seconds=2.0)
  for rec in ("Devel_01", "HU_07", "CN_02"):
    mf.write_fake_features(feats / f"{rec}.npz", 30, 30.0, stride=2, audio_seconds=1.0)
  config = sewa_config.get_config()
  config.data.root = str(root)
  return config


def test_sewa_label_formats(sewa_root):
  recs = {r.recording_id: r for r in sewa.load_recordings(sewa_root.data)}
  assert sorted(recs) == ["CN_02", "Devel_01", "HU_07", "Train_DE_01"]
  data.check_consistent(list(recs.values()))
  de = recs["Train_DE_01"]
  np.testing.assert_allclose(de.times, np.arange(20) / 10)
  np.testing.assert_allclose(de.valence, -0.02 * np.arange(20), atol=1e-6)  # Column 4.
  np.testing.assert_allclose(de.arousal, 0.01 * np.arange(20), atol=1e-6)  # Column 3.
  # 30 fps frames mean-pooled onto 0.1 s steps: step t holds frames 3t-1..3t+1 (mean 3t).
  np.testing.assert_allclose(de.features[1:, 0], 3 * np.arange(1, 20), atol=1e-5)
  np.testing.assert_allclose(de.features[1:, 58], de.times[1:], atol=0.006)  # 100 Hz MFCC.
  assert de.features[0, 58] == pytest.approx(0.02)  # Step 0 owns [-0.05, 0.05): 0.00..0.04.
  np.testing.assert_allclose(recs["Devel_01"].valence, 0.4)
  hu = recs["HU_07"]
  np.testing.assert_allclose(hu.valence, [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2], atol=1e-6)
  np.testing.assert_allclose(hu.arousal, -0.2, atol=1e-6)
  np.testing.assert_allclose(recs["CN_02"].valence, 0.6, atol=1e-6)
  np.testing.assert_allclose(recs["CN_02"].arousal, 0.2, atol=1e-6)
  assert all(r.subject_id == r.recording_id for r in recs.values())
  sewa_root.data.subject_id = "strip_partition"
  subjects = {r.recording_id: r.subject_id for r in sewa.load_recordings(sewa_root.data)}
  assert subjects["Train_DE_01"] == "DE_01" and subjects["Devel_01"] == "01"


def test_sewa_media_jobs_prefer_wav(sewa_root):
  jobs = {j.recording_id: j for j in sewa.media_jobs(sewa_root.data)}
  assert jobs["Train_DE_01"].audio.endswith("Train_DE_01.wav")
  assert jobs["HU_07"].audio is None and jobs["HU_07"].video.endswith("HU_07.avi")


def test_sewa_errors_name_the_file(sewa_root):
  root = sewa_root.data.root
  os.remove(os.path.join(root, "raw", "Arousal", "HU_07.csv"))
  with pytest.raises(ValueError, match=r"HU_07\.csv: no matching arousal file"):
    sewa.load_recordings(sewa_root.data)
  _write(pathlib.Path(root) / "raw" / "Arousal" / "HU_07.csv", "time,r1\n0.0,0.1\n")
  _write(pathlib.Path(root) / "labels" / "Train_DE_01.csv",
         "name;timestamp;arousal;valence;liking\nTrain_DE_01;0.0;x;0.1;0\n")
  with pytest.raises(ValueError, match=r"Train_DE_01\.csv: line 2: non-numeric"):
    sewa.load_recordings(sewa_root.data)


def test_sewa_end_to_end_extraction(tmp_path):
  """Real extraction of a SEWA-shaped folder (video + separate wav) then loading."""
  model = mf.face_model()
  root = tmp_path / "SEWA"
  _write(root / "labels" / "Train_UK_03.csv", "name;timestamp;arousal;valence;liking\n" +
         "".join(f"Train_UK_03;{i / 10:.1f};0.1;0.2;0\n" for i in range(8)))
  (root / "media").mkdir()
  mf.write_video(root / "media" / "Train_UK_03.mp4", 20, fps=25)  # No audio track...
  mf.write_wav(root / "media" / "Train_UK_03.wav", 0.8)  # ...the wav beside it is the audio.
  config = sewa_config.get_config()
  config.data.root, config.data.face_model = str(root), model
  results = runner.run_jobs(sewa.media_jobs(config.data), runner.settings_from_config(config.data),
                            progress=False)
  assert [r.status for r in results] == ["done"]
  (rec,) = sewa.load_recordings(config.data)
  assert rec.features.shape == (8, 73) and np.isfinite(rec.features[:, 58:]).all()
  assert np.isnan(rec.features[:, :58]).all()
  assert sewa.fingerprint(config.data)["features"][0]["size"] > 0


# ------------------------------------------------------------------------------- custom

@pytest.fixture
def custom_root(tmp_path):
  root = tmp_path / "mine"
  header = "frame, time, confidence, AU01_r, AU12_r, pose_Rx, pcm_loudness, mfcc_1, valence, " \
           "arousal, subject\n"
  for rec, subj in (("s1_a", "s1"), ("s1_b", "s1"), ("s2_a", "s2")):
    rows = "".join(f"{i}, {i * 0.04:.2f}, 0.9, {i}, {2 * i}, 0.1, 0.5, {-i}, "
                   f"{'' if i == 1 else 0.1 * i}, 0.2, {subj}\n" for i in range(6))
    _write(root / f"{rec}.csv", header + rows)
  np.savez(root / "s3_a.npz", time=np.arange(6) * 0.04, valence=np.zeros(6),
           arousal=np.ones(6), subject=np.array("s3"),
           features=np.ones((6, 5)), feature_names=np.array(
               ["AU01_r", "AU12_r", "pose_Rx", "pcm_loudness", "mfcc_1"]),
           frame=np.arange(6), confidence=np.ones(6))
  _write(root / "meta" / "subjects.csv", "recording,subject\ns2_a,s9\n")
  _write(root / "lexicon.json", json.dumps({"AU12_r": "lip corners pulled smiling"}))
  config = custom_config.get_config()
  config.data.root = str(root)
  config.data.exclude_columns = "frame,confidence"
  return config


def test_custom_tables(custom_root):
  recs = {r.recording_id: r for r in custom.load_recordings(custom_root.data)}
  assert sorted(recs) == ["s1_a", "s1_b", "s2_a", "s3_a"]
  data.check_consistent(list(recs.values()))
  r = recs["s1_a"]
  assert r.feature_names == ("AU01_r", "AU12_r", "pose_Rx", "pcm_loudness", "mfcc_1")
  assert r.modalities == ("face", "face", "face", "audio", "audio")
  assert np.isnan(r.valence[1]) and r.valence[2] == pytest.approx(0.2)
  np.testing.assert_allclose(r.features[:, 1], 2 * np.arange(6))
  assert {k: v.subject_id for k, v in recs.items()} == {
      "s1_a": "s1", "s1_b": "s1", "s2_a": "s2", "s3_a": "s3"}
  custom_root.data.subject_map = "meta/subjects.csv"
  custom_root.data.lexicon = "lexicon.json"
  recs = {r.recording_id: r for r in custom.load_recordings(custom_root.data)}
  assert recs["s2_a"].subject_id == "s9" and recs["s1_a"].subject_id == "s1"
  assert custom.lexicon_path(custom_root.data).endswith("lexicon.json")
  assert custom.media_jobs(custom_root.data) == []
  json.dumps(custom.fingerprint(custom_root.data))


def test_custom_errors_name_the_file(custom_root):
  custom_root.data.lexicon = "nope.json"
  with pytest.raises(FileNotFoundError, match="nope.json"):
    custom.load_recordings(custom_root.data)
  custom_root.data.lexicon = ""
  custom_root.data.valence_column = "Valence"
  with pytest.raises(ValueError, match=r"s1_a\.csv: no valence column 'Valence'"):
    custom.load_recordings(custom_root.data)
  custom_root.data.valence_column = "valence"
  _write(pathlib.Path(custom_root.data.root) / "s4_a.csv",
         "time,valence,arousal,subject,AU01_r\n0.0,0.1,0.2,s4,1.0\n")
  with pytest.raises(ValueError, match=r"s4_a\.csv: feature columns differ"):
    custom.load_recordings(custom_root.data)
