"""Own labelled videos (lasca_jax/data/datasets/videos.py): annotation readers, re-sampling onto
the label clock, scales, subject map, one-line errors, and extract -> train -> predict on the
shared clips."""

import json
import os
import shutil
import subprocess
import sys
import time
import types

import numpy as np
import pytest

import media_fixtures as mf
from configs import videos as videos_config
from lasca_jax.data.datasets import videos
from lasca_jax.run import validate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAN = np.nan


def _config(root, **fields):
  config = videos_config.get_config()
  config.data.root = str(root)
  for k, v in fields.items():
    config.data[k] = v
  return config.data


def _write(path, text):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)
  return str(path)


def _labels(root, rec="p1", **fields):
  data_config = _config(root, **fields)
  return videos.labels_on_clock(videos.read_annotations(data_config)[rec], data_config)


# Irregular samples of one trace: at 10 Hz the steps 0.1, 0.2, 0.3 fall between them.
TIMES = "0,0.15,0.4"
VALENCE = (0.0, 0.3, -0.2)
AROUSAL = (0.5, -0.1, 0.1)
# Linear interpolation by hand: 0.1 is 2/3 of 0..0.15; 0.2 and 0.3 are 1/5 and 3/5 of 0.15..0.4.
VALENCE_10HZ = [0.0, 0.2, 0.2, 0.0, -0.2]
AROUSAL_10HZ = [0.5, 0.1, -0.06, 0.02, 0.1]


def _both(times=TIMES, sep=","):
  rows = zip(times.split(","), VALENCE, AROUSAL)
  return sep.join(("time", "valence", "arousal")) + "\n" + "".join(
      f"{t}{sep}{v}{sep}{a}\n" for t, v, a in rows)


def _one(values, times=TIMES, name="value"):
  return f"time,{name}\n" + "".join(f"{t},{v}\n" for t, v in zip(times.split(","), values))


# ----------------------------------------------------------------------------- plain traces


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_plain_both_columns_resampled_linearly_onto_the_label_clock(tmp_path, sep):
  _write(tmp_path / "annotations" / "p1.csv", _both(sep=sep))
  times, valence, arousal = _labels(tmp_path)
  np.testing.assert_allclose(times, [0, 0.1, 0.2, 0.3, 0.4])
  np.testing.assert_allclose(valence, VALENCE_10HZ, atol=1e-7)
  np.testing.assert_allclose(arousal, AROUSAL_10HZ, atol=1e-7)
  assert valence.dtype == np.float32


def test_per_dimension_files_give_the_same_labels_as_one_file(tmp_path):
  _write(tmp_path / "one" / "annotations" / "p1.csv", _both())
  _write(tmp_path / "two" / "annotations" / "p1_valence.csv", _one(VALENCE))
  _write(tmp_path / "two" / "annotations" / "p1-Arousal.csv", _one(AROUSAL, name="rating"))
  for a, b in zip(_labels(tmp_path / "one"), _labels(tmp_path / "two")):
    np.testing.assert_array_equal(a, b)


def test_irregular_rate_no_extrapolation_and_a_gap_is_unannotated(tmp_path):
  # Samples from 0.25 s to 0.62 s at irregular steps, one empty (unannotated) cell.
  _write(tmp_path / "annotations" / "p1_valence.csv",
         "Time;Valence\n0.25;0.1\n0.31;0.2\n0.42;\n0.5;0.4\n0.62;0.6\n")
  _write(tmp_path / "annotations" / "p1_arousal.csv", "time,value\n0,0\n2.04,0.51\n")
  times, valence, arousal = _labels(tmp_path)
  assert times.size == 21 and times[-1] == pytest.approx(2.0)      # to the longest trace's end
  # 0.0-0.2: before the trace; 0.3: 0.1 + 0.1 * 5/6; 0.4: next to the empty cell; 0.5: a sample;
  # 0.6: 0.4 + 0.2 * 10/12; 0.7 on: after the trace.
  np.testing.assert_allclose(valence[:8], [NAN, NAN, NAN, 0.1 + 0.1 * 5 / 6, NAN, 0.4,
                                           0.4 + 0.2 * 10 / 12, NAN], atol=1e-7)
  assert np.isnan(valence[8:]).all()
  np.testing.assert_allclose(arousal, 0.25 * times, atol=1e-7)


def test_one_dimension_only_when_the_config_says_so(tmp_path):
  _write(tmp_path / "annotations" / "p1_valence.csv", _one(VALENCE))
  with pytest.raises(ValueError, match=r"p1_valence\.csv: recording p1 has no arousal "
                     r"annotation .*--config\.data\.arousal_column=''") as e:
    _labels(tmp_path)
  assert "\n" not in str(e.value)
  times, valence, arousal = _labels(tmp_path, arousal_column="")
  np.testing.assert_allclose(valence, VALENCE_10HZ, atol=1e-7)
  assert np.isnan(arousal).all() and arousal.shape == times.shape


def test_columns_named_by_the_config(tmp_path):
  _write(tmp_path / "annotations" / "p1.csv",
         "seconds,Pleasure,Activation\n0,0.1,0.2\n1,0.3,0.4\n")
  _, valence, arousal = _labels(tmp_path, valence_column="pleasure",
                                arousal_column="activation")
  assert valence[0] == pytest.approx(0.1) and arousal[-1] == pytest.approx(0.4)


# ----------------------------------------------------------------------------- scales


def test_values_outside_minus_one_one_need_the_scale(tmp_path):
  _write(tmp_path / "annotations" / "p1.csv", "time,valence,arousal\n0,1,9\n1,5,5\n2,9,1\n")
  with pytest.raises(ValueError, match=r"p1\.csv: values span \[1, 9\], outside \[-1, 1\]; .*"
                     r"--config\.data\.label_range=1,9"):
    _labels(tmp_path)
  _, valence, arousal = _labels(tmp_path, label_range="1,9")
  np.testing.assert_allclose(valence[::10], [-1, 0, 1], atol=1e-6)
  np.testing.assert_allclose(arousal[::10], [1, 0, -1], atol=1e-6)
  _, raw, _ = _labels(tmp_path, label_range="none")
  np.testing.assert_allclose(raw[::10], [1, 5, 9])
  with pytest.raises(ValueError, match=r"outside config\.data\.label_range=\[2, 9\]"):
    _labels(tmp_path, label_range="2,9")


def test_a_scale_offset_changes_the_pairs_so_it_is_mapped_out():
  """Why label_range exists: the margin is relative to |a(t)|, so 1..9 and -1..1 ratings of the
  same change make different pairs unless mapped onto one scale."""
  from lasca_jax.method import pairs as pairs_lib
  ratings = np.array([5.0, 5.4, 5.0, 3.0])                # 1..9 scale
  mapped = 2 * (ratings - 1) / 8 - 1                     # [0, 0.1, 0, -0.5]

  def count(values):
    w = types.SimpleNamespace(valence=values, recording=np.zeros(4, np.int32),
                              position=np.arange(4, dtype=np.int32))
    return pairs_lib.make_pairs(w, np.ones(4, bool), "valence", 0.1).pair_id.size // 2

  assert count(ratings) == 1 and count(mapped) == 3


# ----------------------------------------------------------------------------- tool exports


CARMA = (
    '"media_open; media_start; media_end","2024/01/01 10:00:00:000; 2024/01/01 10:00:01:000"\n'
    '"Multimedia File","p1.mp4"\n"Lower Label","Very Negative"\n"Upper Label","Very Positive"\n'
    '"Minimum Value",-100\n"Maximum Value",100\n"Number of Steps",9\n"Second","Rating"\n'
    '"%%%%%%","%%%%%%"\n1,50\n2,-50\nNaN,NaN\n4,0\n')
DARMA = (
    '"Time of Rating","2024-01-01 10:00:00","",""\n"Multimedia File","p1.mp4",4.2,""\n'
    '"Magnitude",10,"",""\n"Second","Valence","Arousal","Button"\n'
    '"%%%%%%","%%%%%%","%%%%%%","%%%%%%"\n1,5,-10,0\n,,,\n3,-5,10,1\n4,0,0,0\n')
PAGAN = (
    "OriginalName,DatabaseName,Participant,SessionID,Timestamp,VideoTime,Value\n"
    "p1.mp4 - 6.5,x_1,u1,s1,1700000000000,0,0\n"
    "p1.mp4 - 6.5,x_1,u1,s1,1700000000150,150,0.5\n"
    "p1.mp4 - 6.5,x_1,u1,s1,1700000000320,320,-0.5\n"
    "p1.mp4 - 6.5,x_1,u1,s1,1700000000500,500,0\n"
    "p1.mp4 - 6.5,x_1,u2,s2,1700000009000,0,1\n"
    "p1.mp4 - 6.5,x_1,u2,s2,1700000009500,500,0\n"
    "p2.avi - 3,x_2,u1,s3,1700000020000,0,-0.25\n"
    "p2.avi - 3,x_2,u1,s3,1700000020300,300,0\n")


def test_carma_export(tmp_path):
  path = _write(tmp_path / "annotations" / "p1_valence.csv", CARMA)
  _write(tmp_path / "annotations" / "p1_arousal.csv", _one(AROUSAL))
  assert videos.detect_format(path) == "carma"
  times, valence, _ = _labels(tmp_path)
  # Bin means at the bins' centres 0.5, 1.5, 3.5 s (the empty third bin left out), -100..100
  # mapped onto [-1, 1]; nothing before 0.5 s.
  assert times[-1] == pytest.approx(3.5)
  assert np.isnan(valence[:5]).all()
  np.testing.assert_allclose(valence[[5, 10, 15, 25, 35]], [0.5, 0.0, -0.5, -0.25, 0.0],
                             atol=1e-6)


def test_darma_export(tmp_path):
  path = _write(tmp_path / "annotations" / "p1.csv", DARMA)
  assert videos.detect_format(path) == "darma"
  _, valence, arousal = _labels(tmp_path)
  # Magnitude 10 -> [-10, 10] onto [-1, 1]; seconds 1, 3, 4 -> centres 0.5, 2.5, 3.5.
  np.testing.assert_allclose(valence[[5, 15, 25, 35]], [0.5, 0.0, -0.5, 0.0], atol=1e-6)
  np.testing.assert_allclose(arousal[[5, 15, 25, 30, 35]], [-1, 0, 1, 0.5, 0], atol=1e-6)
  with pytest.raises(ValueError, match=r"p1\.csv: no DARMA axis labelled 'Pleasure' \(the axes "
                     r"are 'Valence' and 'Arousal'\); set --config\.data\.valence_column"):
    _labels(tmp_path, valence_column="Pleasure")


def test_pagan_log_holds_values_and_averages_sessions(tmp_path):
  path = _write(tmp_path / "annotations" / "project_valence.csv", PAGAN)
  assert videos.detect_format(path) == "pagan"
  annotations = videos.read_annotations(_config(tmp_path, arousal_column=""))
  assert sorted(annotations) == ["p1", "p2"]
  times, valence, _ = _labels(tmp_path, arousal_column="")
  # u1 holds 0 (0-0.15 s), 0.5 (0.15-0.32 s), -0.5 (0.32-0.5 s); u2 holds 1; the end rows only
  # end the traces.
  np.testing.assert_allclose(times, np.arange(6) / 10)
  np.testing.assert_allclose(valence, [0.5, 0.5, 0.75, 0.75, 0.25, NAN], atol=1e-7)
  _, p2, _ = _labels(tmp_path, rec="p2", arousal_column="")
  np.testing.assert_allclose(p2, [-0.25, -0.25, -0.25, NAN], atol=1e-7)


def test_pagan_test_mode_download_is_one_recording(tmp_path):
  _write(tmp_path / "annotations" / "p7_arousal.csv",
         "Timestamp,VideoTime,Value\n1,0,0\n2,200,1\n3,400,0\n")
  _, _, arousal = _labels(tmp_path, rec="p7", valence_column="")
  np.testing.assert_allclose(arousal, [0, 0, 1, 1, NAN])


def test_format_auto_detection_and_forcing(tmp_path):
  files = {"plain": _write(tmp_path / "a.csv", _both()),
           "carma": _write(tmp_path / "b_valence.csv", CARMA),
           "darma": _write(tmp_path / "c.csv", DARMA),
           "pagan": _write(tmp_path / "d_arousal.csv", PAGAN)}
  assert {k: videos.detect_format(p) for k, p in files.items()} == {k: k for k in files}
  _write(tmp_path / "annotations" / "p1.csv", _both())
  with pytest.raises(ValueError, match=r"p1\.csv: not a carma annotation file \(it reads as "
                     r"plain; config\.data\.annotation_format\)"):
    _labels(tmp_path, annotation_format="carma")


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name,text,message", [
    ("p1.csv", "", r"p1\.csv: empty annotation file"),
    ("p1.csv", "time,valence,arousal\n", r"p1\.csv: no annotation rows after the header"),
    ("p1.csv", "time,valence,arousal\n0,0.1,0.2\n0.5,high,0.1\n",
     r"p1\.csv: line 3: valence 'high' is not a number"),
    ("p1.csv", "time,valence,arousal\n0,0.1,0.2\n0.5,0.1,0.1\n0.5,0.2,0.2\n",
     r"p1\.csv: line 4: time 0\.5 does not come after 0\.5; times must increase"),
    ("p1.csv", "time,valence\n0,0.1\n",
     r"p1\.csv: no arousal column 'arousal' \(columns: time, valence\); set "
     r"--config\.data\.arousal_column"),
    ("p1.csv", "t_ms,valence,arousal\n0,0.1,0.2\n", r"p1\.csv: no time column"),
    ("p1.csv", "time,valence,arousal\n0,0.1\n", r"p1\.csv: line 2: 2 cells, the header has 3"),
    ("p1_valence.csv", "time,a,b\n0,0.1,0.2\n", r"p1_valence\.csv: expected the columns time and "
     r"value"),
    ("p1.csv", CARMA, r"p1\.csv: a CARMA file holds one dimension; name it p1_valence\.csv"),
])
def test_bad_annotation_files_are_one_line_errors_naming_the_file(tmp_path, name, text, message):
  _write(tmp_path / "annotations" / name, text)
  with pytest.raises(ValueError, match=message) as e:
    _labels(tmp_path)
  assert "\n" not in str(e.value) and str(tmp_path) in str(e.value)


def test_a_recording_annotated_twice_is_an_error(tmp_path):
  _write(tmp_path / "annotations" / "p1.csv", _both())
  _write(tmp_path / "annotations" / "p1_valence.csv", _one(VALENCE))
  with pytest.raises(ValueError, match=r"valence of recording p1 is also annotated in .*p1"):
    _labels(tmp_path)


def test_subject_map_and_unpaired_files(tmp_path, caplog):
  for rec in ("p1", "p2", "p3"):
    _write(tmp_path / "annotations" / f"{rec}.csv", _both())
  for rec in ("p1", "p2", "p4"):
    _write(tmp_path / "videos" / f"{rec}.mp4", "not decoded here")
  _write(tmp_path / "subjects.csv", "recording,subject\np1,alice\np2,bob\n")
  data_config = _config(tmp_path, subject_map="subjects.csv")
  annotations, found = videos.paired(data_config)
  assert sorted(annotations) == sorted(found) == ["p1", "p2"]
  warned = caplog.text
  assert "p3.csv: no video p3.*" in warned and "p4.mp4: no annotation" in warned
  assert videos.subjects(data_config, ["p1", "p2"]) == {"p1": "alice", "p2": "bob"}
  assert [j.recording_id for j in videos.media_jobs(data_config)] == ["p1", "p2"]
  with pytest.raises(ValueError, match=r"subjects\.csv: no row for recording p3 "
                     r"\(config\.data\.subject_map\); add 'p3,<subject>'"):
    videos.subjects(data_config, ["p1", "p3"])
  assert videos.subjects(_config(tmp_path), ["p1"]) == {"p1": "p1"}
  assert "subject = recording id" in caplog.text


def test_config_fields_are_checked_in_one_line(tmp_path):
  (tmp_path / "videos").mkdir()
  (tmp_path / "annotations").mkdir()
  config = videos_config.get_config()
  config.data.root = str(tmp_path)
  assert validate.problems(config) == []
  config.data.label_range = "9,1"
  config.data.annotation_format = "elan"
  config.data.label_rate = 0.0
  config.data.videos_dir = "clips"
  found = validate.problems(config)
  assert any(p.startswith("data.label_range='9,1' (need 'auto', 'none' or 'low,high'")
             for p in found)
  assert any(p.startswith("data.annotation_format='elan' (need one of 'auto', 'plain'")
             for p in found)
  assert any(p.startswith("data.label_rate=0.0") for p in found)
  config.data.label_range, config.data.annotation_format, config.data.label_rate = "1,9", "auto", 10.0
  assert validate.problems(config) == [
      "data.videos_dir='clips' (need an existing folder of videos (relative to data.root or "
      "absolute))"]


# ----------------------------------------------------------------------------- end to end


def _carma(values, seconds):
  return ('"media_open","2024/01/01"\n"Multimedia File","x.mp4"\n"Lower Label","low"\n'
          '"Upper Label","high"\n"Minimum Value",1\n"Maximum Value",9\n"Number of Steps",9\n'
          '"Second","Rating"\n"%%%%%%","%%%%%%"\n' +
          "".join(f"{s},{v:.4f}\n" for s, v in zip(seconds, values)))


def _run(args, env=None, timeout=300):
  start = time.perf_counter()
  proc = subprocess.run([sys.executable] + args, capture_output=True, text=True, cwd=REPO,
                        env=env, timeout=timeout)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc, time.perf_counter() - start


def test_extract_train_predict_on_the_shared_clips(tmp_path):
  """Four recordings (two copies of each shared clip) with smooth generated traces, in the plain
  format (one file, and per-dimension files) and as CARMA exports; four subjects, 2 folds."""
  clips = {"a": str(mf.shared_file("media/retalking_1.mp4")),
           "b": str(mf.shared_file("media/retalking_4.mp4"))}
  face_model = mf.face_model()
  root = tmp_path / "mine"
  ann = root / "annotations"
  (root / "videos").mkdir(parents=True)
  for rec in ("a1", "a2", "b1", "b2"):
    shutil.copy(clips[rec[0]], root / "videos" / f"{rec}.mp4")
  t = np.arange(0, 6.0, 0.04)                          # 25 Hz traces
  for k, rec in enumerate(("a1", "a2")):
    v = 0.6 * np.sin(2 * np.pi * t / 2.5 + k)
    a = 0.6 * np.cos(2 * np.pi * t / 3.0 + k)
    if rec == "a1":
      _write(ann / "a1.csv", "time,valence,arousal\n" + "".join(
          f"{x:.2f},{y:.4f},{z:.4f}\n" for x, y, z in zip(t, v, a)))
    else:
      _write(ann / "a2_valence.csv", "time,value\n" + "".join(
          f"{x:.2f},{y:.4f}\n" for x, y in zip(t, v)))
      _write(ann / "a2_arousal.csv", "time;value\n" + "".join(
          f"{x:.2f};{y:.4f}\n" for x, y in zip(t, a)))
  seconds = np.arange(1, 7)
  for k, rec in enumerate(("b1", "b2")):
    centres = seconds - 0.5
    _write(ann / f"{rec}_valence.csv", _carma(5 + 3 * np.sin(centres * 1.3 + k), seconds))
    _write(ann / f"{rec}_arousal.csv", _carma(5 + 3 * np.cos(centres * 1.1 + k), seconds))
  _write(root / "subjects.csv", "a1,s1\na2,s2\nb1,s3\nb2,s4\n")

  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
             HF_HUB_OFFLINE="1", LASCA_JAX_FACE_MODEL=face_model)
  common = [f"--config={os.path.join(REPO, 'configs', 'videos.py')}:runlocal",
            f"--config.data.root={root}"]
  extract, extract_s = _run([os.path.join(REPO, "experiments", "extract.py")] + common +
                            [f"--config.data.face_model={face_model}"], env)
  assert "4 extracted" in extract.stdout
  run_dir = tmp_path / "run"
  train, train_s = _run([os.path.join(REPO, "experiments", "main.py")] + common + [
      "--config.data.subject_map=subjects.csv", f"--workdir={run_dir}",
      f"--config.cache_dir={tmp_path / 'cache'}", "--config.features.window_seconds=1.0",
      "--config.train.max_epochs=3"], env)
  assert "over 2 folds" in train.stdout, train.stdout
  bundle = json.loads((run_dir / "bundle" / "bundle.json").read_text())
  assert (bundle["num_folds"], bundle["time_base_hz"], bundle["window_seconds"]) == (2, 10.0, 1.0)
  out = tmp_path / "pred"
  predict, predict_s = _run([os.path.join(REPO, "experiments", "predict.py"), f"--run={run_dir}",
                             f"--input={clips['a']}", f"--output={out}", "--noexplain"], env)
  summary = json.loads((out / "summary.json").read_text())
  assert summary["input_kind"] == "video" and summary["frames_decoded"] == 135
  assert summary["decided"] >= 3 and "decided" in predict.stdout
  assert (out / "predictions.csv").stat().st_size > 0
  print(f"extract {extract_s:.1f} s, train {train_s:.1f} s, predict {predict_s:.1f} s")


def test_recordings_pool_features_onto_the_label_clock_and_fingerprint_tracks_files(tmp_path):
  _write(tmp_path / "annotations" / "p1.csv", _both())
  _write(tmp_path / "videos" / "p1.mp4", "not decoded here")
  _write(tmp_path / "subjects.csv", "p1,alice\n")
  # Frame i at i / 10 s with face value i; MFCC frame k at 10 ms steps with value k * 0.01.
  mf.write_fake_features(tmp_path / "lasca_features" / "p1.npz", 20, 10.0, audio_seconds=2.0)
  data_config = _config(tmp_path, subject_map="subjects.csv")
  (rec,) = videos.load_recordings(data_config)
  assert (rec.recording_id, rec.subject_id) == ("p1", "alice")
  assert rec.features.shape == (5, 73) and rec.modalities.count("audio") == 15
  np.testing.assert_allclose(rec.features[:, 0], np.arange(5))     # frame k sits on step k
  np.testing.assert_allclose(rec.valence, VALENCE_10HZ, atol=1e-7)
  assert videos.time_base_hz(data_config) == 10.0
  first = videos.fingerprint(data_config)
  _write(tmp_path / "annotations" / "p1.csv", _both(times="0,0.15,0.45"))  # another size
  assert videos.fingerprint(data_config) != first
