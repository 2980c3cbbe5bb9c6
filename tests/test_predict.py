"""experiments/predict.py on new recordings: a shared real clip, per-frame tables, bad input."""

import json
import os
import shutil
import subprocess
import sys

import av
import numpy as np
import pandas as pd
import pytest

from lasca_jax.data import files as files_lib
from lasca_jax.data.datasets import synthetic
from lasca_jax.inference import apply, ensemble
from lasca_jax.model import bundle
from lasca_jax.run import pipeline
from conftest import ROOT, make_tiny_config
import media_fixtures


COLUMNS = ["start_s", "end_s", "next_start_s", "next_end_s", "p_increase", "p_increase_std",
           "direction", "prompt", "next_prompt"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_backbone):
  """A runlocal synthetic multimodal fused run (58 + 15 columns, 3 folds)."""
  root = tmp_path_factory.mktemp("predict")
  config = make_tiny_config(root / "cache", **{"model.fusion": "fused",
                                               "text.backbone": tiny_backbone})
  results = pipeline.run(config, str(root / "run"))
  return str(root / "run"), config, results


def _subject_table(config, results, fold=0):
  """The frames of one of ``fold``'s test subjects as column arrays (time + 73 features)."""
  subject = str(np.asarray(results["subjects"])[results["test_subjects"][fold]][0])
  rec = synthetic.make_subject(config.data, int(subject[1:]))
  cols = {"time": rec.times}
  cols.update({n: rec.features[:, j] for j, n in enumerate(rec.feature_names)})
  return rec, cols


def test_predictions_on_a_test_subjects_table_equal_the_runs_test_probabilities(run, tmp_path):
  run_dir, config, results = run
  rec, cols = _subject_table(config, results)
  path = tmp_path / f"{rec.recording_id}.npz"
  np.savez(path, **cols)
  pred = apply.run_predict(run_dir, str(path), str(tmp_path / "out"))
  table = pd.read_csv(tmp_path / "out" / "predictions.csv")
  assert list(table.columns[:len(COLUMNS)]) == COLUMNS
  assert len(table) == pred.windows.start.size - 1
  # Fold 0's test pairs of this recording, decided again from the frame table.
  predictor = ensemble.load_bundle(run_dir)
  t = predictor.test_windows()
  rec_index = list(t["recording_ids"]).index(rec.recording_id)
  row_of = {int(r): i for i, r in enumerate(pred.decided)}
  w = config.features.window_seconds
  checked = 0
  for j in np.flatnonzero(t["mask"][0]):
    a, b = t["first"][0, j], t["second"][0, j]
    if t["recording"][a] != rec_index or t["start"][b] < t["start"][a]:
      continue                                        # other recordings; the reversed order
    row = int(round(t["start"][a] / w))
    # Equal up to float32 rounding of the MLP's batched matmul (another batch shape here);
    # in the run's own layout the bundle is bit-identical (test_bundle.py).
    np.testing.assert_allclose(pred.fold_prob[0, row_of[row]], results["test_prob"][0, j],
                               rtol=2e-6)
    checked += 1
  assert checked > 5
  summary = json.loads((tmp_path / "out" / "summary.json").read_text())
  assert summary["decided"] == len(pred.decided) and summary["fold_models"] == 3
  assert (tmp_path / "out" / "trajectory.png").stat().st_size > 0
  decided = table[table["status"] == "ok"]
  assert np.allclose(decided["p_increase"], pred.fold_prob.mean(0))
  assert set(decided["direction"]) <= {"increase", "decrease"}
  assert decided["top_cues"].str.len().min() > 0


def test_a_csv_table_with_a_face_gap_reports_the_windows_it_cannot_decide(run, tmp_path):
  run_dir, config, results = run
  _, cols = _subject_table(config, results)
  gap = (cols["time"] >= 9.0) & (cols["time"] < 15.0)
  for name in list(cols)[1:59]:                      # the 58 face columns
    cols[name] = np.where(gap, np.nan, cols[name])
  cols["extra_column"] = np.zeros_like(cols["time"])  # ignored
  path = tmp_path / "frames.csv"
  pd.DataFrame(cols).to_csv(path, index=False)
  pred = apply.run_predict(run_dir, str(path), str(tmp_path / "out"), explain=False)
  table = pred.table
  assert [9.0, 12.0] in pred.summary["windows_without_face"]
  assert [12.0, 15.0] in pred.summary["windows_without_face"]
  blocked = table[(table["start_s"] >= 6.0) & (table["start_s"] <= 12.0)]
  assert blocked["p_increase"].isna().all()
  assert blocked["status"].str.contains("window 9-12 s: face in 0% of frames").any()
  assert (table["status"] == "ok").sum() == len(pred.decided) > 5


def test_mismatched_columns_are_a_one_line_error(run, tmp_path):
  run_dir, config, results = run
  _, cols = _subject_table(config, results)
  del cols["mouthSmileLeft"], cols["mfcc_3"]
  path = tmp_path / "missing.csv"
  pd.DataFrame(cols).to_csv(path, index=False)
  with pytest.raises(bundle.BundleError, match=r"missing\.csv: 2 of the model's 73 feature "
                     r"columns are missing .*feature_names in .*bundle\.json") as e:
    apply.run_predict(run_dir, str(path), str(tmp_path / "out"))
  assert "\n" not in str(e.value)


def test_predict_runs_end_to_end_on_a_shared_clip(run, tmp_path):
  run_dir, _, _ = run
  clip = str(media_fixtures.shared_file("media/retalking_1.mp4"))
  face_model = media_fixtures.face_model()
  out = tmp_path / "clip"
  env = dict(os.environ, LASCA_JAX_FACE_MODEL=face_model)
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "predict.py"),
                         f"--run={run_dir}", f"--input={clip}", f"--output={out}"],
                        capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
  assert proc.returncode == 0, proc.stderr[-2000:]
  table = pd.read_csv(out / "predictions.csv")
  summary = json.loads((out / "summary.json").read_text())
  assert summary["input_kind"] == "video" and summary["frames_decoded"] == 135
  assert summary["windows"] == 3 and summary["decided"] == 1 == (table["status"] == "ok").sum()
  # The partial last window (6.0-6.1 s of the clip) shows a face in the frames it holds.
  assert summary["windows_without_face"] == [] and summary["partial_windows"] == [[6.0, 9.0]]
  assert table["status"].iloc[1].startswith("not decided: window 6-9 s: partial window")
  p = table["p_increase"].iloc[0]
  assert 0 < p < 1 and table["prompt"].iloc[0].startswith("facial: ")
  # The streaming WindowPredictor of each fold gives the same decision.
  predictor = ensemble.load_bundle(run_dir)
  frames = apply.read_input(clip, predictor, face_model)
  win = apply.window_input(frames, predictor)
  probs = [predictor.window_predictor(k).decide(win.features[0], win.features[1])
           for k in range(predictor.num_folds)]
  np.testing.assert_allclose(p, np.mean(probs), rtol=1e-5)
  assert (out / "trajectory.png").stat().st_size > 0


def _reencode(src, dst, frames=40, audio=True):
  with av.open(src) as inp:
    images = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames),
                                                           inp.decode(video=0))]
  return media_fixtures.write_video(dst, np.stack(images), fps=22,
                                    audio_seconds=frames / 22 if audio else None)


def test_a_video_without_audio_or_without_a_face_is_a_one_line_error(run, tmp_path):
  run_dir, _, _ = run
  face_model = media_fixtures.face_model()
  clip = str(media_fixtures.shared_file("media/retalking_1.mp4"))
  silent = _reencode(clip, str(tmp_path / "silent.mp4"), audio=False)
  with pytest.raises(bundle.BundleError, match=r"silent\.mp4: no audio track, but the model "
                     r".*uses audio features.*features\.modality=visual"):
    apply.run_predict(run_dir, silent, str(tmp_path / "out"), face_model=face_model)
  grey = media_fixtures.write_video(str(tmp_path / "grey.mp4"), 30, fps=25, audio_seconds=1.2)
  with pytest.raises(bundle.BundleError, match=r"grey\.mp4: no face found in any frame.*"
                     r"features\.modality=audio"):
    apply.run_predict(run_dir, grey, str(tmp_path / "out"), face_model=face_model)


def test_a_partial_last_window_is_not_decided_when_training_kept_full_windows(run, tmp_path):
  """An 8.0 s table: the 6-9 s window has face and audio in every frame it holds, but the run
  trained on full windows only (features.partial_windows=False), so it is not decided."""
  run_dir, config, results = run
  _, cols = _subject_table(config, results)
  keep = cols["time"] < 8.0
  path = tmp_path / "eight_seconds.npz"
  np.savez(path, **{k: v[keep] for k, v in cols.items()})
  apply.run_predict(run_dir, str(path), str(tmp_path / "out"))
  table = pd.read_csv(tmp_path / "out" / "predictions.csv")
  summary = json.loads((tmp_path / "out" / "summary.json").read_text())
  assert summary["windows"] == 3 and summary["usable_windows"] == 2
  assert summary["decided"] == 1 and list(table["status"] == "ok") == [True, False]
  assert table["status"].iloc[1] == (
      "not decided: window 6-9 s: partial window (the recording ends at 7.9 s): shorter than "
      "one window (the model was trained on full windows)")


def test_predictions_say_when_not_to_trust_them(run, tmp_path):
  """A model of the synthetic demonstration set says so; an input far outside the training range
  is named, feature by feature; a test subject of the same generator is not."""
  run_dir, config, results = run
  rec, cols = _subject_table(config, results)
  path = tmp_path / "same.npz"
  np.savez(path, **cols)
  same = apply.run_predict(run_dir, str(path), str(tmp_path / "same")).summary["warnings"]
  assert same == [synthetic.DEMONSTRATION]
  shifted = dict(cols, jawOpen=cols["jawOpen"] + 5.0, mfcc_0=cols["mfcc_0"] * 4.0 + 900.0,
                 headTz=cols["headTz"] - 40.0, browInnerUp=cols["browInnerUp"] + 3.0)
  path = tmp_path / "shifted.npz"
  np.savez(path, **shifted)
  warned = apply.run_predict(run_dir, str(path), str(tmp_path / "shifted")).summary["warnings"]
  assert warned[0] == synthetic.DEMONSTRATION and len(warned) == 2
  assert "fall outside the range the model was trained on (most often: " in warned[1]
  named = warned[1].split("most often: ")[1]
  assert all(f in named for f in ("jawOpen 100%", "headTz 100%", "browInnerUp 100%", "mfcc_0 "))
  assert rec.recording_id and json.loads((tmp_path / "shifted" / "summary.json").read_text())[
      "warnings"] == warned


def test_a_recording_shorter_than_one_window_says_so(run, tmp_path):
  run_dir, config, results = run
  _, cols = _subject_table(config, results)
  keep = cols["time"] < 1.0
  path = tmp_path / "one_second.npz"
  np.savez(path, **{k: v[keep] for k, v in cols.items()})
  summary = apply.run_predict(run_dir, str(path), str(tmp_path / "out")).summary
  assert summary["decided"] == 0 and summary["partial_windows"] == [[0.0, 3.0]]
  assert summary["windows_without_face"] == summary["windows_without_audio"] == []
  assert ("the recording spans 0.9 s (10 frames), shorter than one 3 s window: nothing to "
          "decide") in summary["warnings"]


def test_a_sweep_folder_names_the_runs_inside_and_a_non_run_says_so(run, tmp_path):
  run_dir, _, _ = run
  sweep = tmp_path / "sweep"
  for name in ("a/m0.1", "a/m0.2", "b/m0.1", "c/m0.1"):
    shutil.copytree(run_dir, sweep / name)
  with pytest.raises(bundle.BundleError) as err:
    bundle.read_bundle(str(sweep))
  assert str(err.value) == (f"{sweep} is not one run but holds 4 trained runs (a/m0.1, a/m0.2, "
                            "b/m0.1 and 1 more); pass one of them as --run")
  (tmp_path / "empty").mkdir()
  with pytest.raises(bundle.BundleError, match=r"empty is not a run directory \(no config.json"):
    bundle.read_bundle(str(tmp_path / "empty"))


def test_two_writers_of_one_output_folder_are_refused(run, tmp_path):
  run_dir, config, results = run
  _, cols = _subject_table(config, results)
  path = tmp_path / "table.npz"
  np.savez(path, **cols)
  held = files_lib.hold_lock(str(tmp_path / "out"), "experiments/predict.py")
  with pytest.raises(files_lib.Busy) as err:
    apply.run_predict(run_dir, str(path), str(tmp_path / "out"), explain=False)
  assert str(err.value) == (f"{tmp_path / 'out'} is being written by experiments/predict.py "
                            f"(pid {os.getpid()}); wait for it to finish or choose another "
                            "output folder")
  assert not (tmp_path / "out" / "predictions.csv").exists()
  held.close()
  apply.run_predict(run_dir, str(path), str(tmp_path / "out"), explain=False)
  assert (tmp_path / "out" / "predictions.csv").exists()


def test_table_cells_that_are_not_numbers_or_empty_columns_are_named(run, tmp_path):
  run_dir, config, results = run
  _, cols = _subject_table(config, results)
  frame = pd.DataFrame(cols)
  text = frame.astype(object)
  text.loc[4, "browDownRight"] = "n/a"
  text.to_csv(tmp_path / "text_cell.csv", index=False)
  with pytest.raises(ValueError, match=r"text_cell.csv: column 'browDownRight' holds 'n/a' in "
                     r"data row 5, not a number"):
    apply.run_predict(run_dir, str(tmp_path / "text_cell.csv"), str(tmp_path / "o1"))
  empty = frame.copy()
  empty["jawOpen"] = np.nan
  empty.to_csv(tmp_path / "nan_col.csv", index=False)
  with pytest.raises(ValueError, match=r"nan_col.csv: the model's column\(s\) jawOpen have no "
                     r"value in any row"):
    apply.run_predict(run_dir, str(tmp_path / "nan_col.csv"), str(tmp_path / "o2"))
  inf = frame.copy()
  inf.loc[7, "mfcc_0"] = np.inf
  inf.to_csv(tmp_path / "inf.csv", index=False)
  with pytest.raises(ValueError, match=r"inf.csv: infinite value in column 'mfcc_0', data row 8"):
    apply.run_predict(run_dir, str(tmp_path / "inf.csv"), str(tmp_path / "o3"))


def test_a_low_frame_rate_clip_keeps_its_last_full_window(run, tmp_path):
  """6.0 s at 5 fps: the last frame is at 5.8 s but the stream covers 3-6 s whole."""
  features = {"frame_times": np.arange(30) / 5.0, "audio_times": np.arange(0, 600) / 100.0}
  assert apply._stream_end(features["frame_times"]) == pytest.approx(6.0)
  assert apply._stream_end(features["audio_times"]) == pytest.approx(6.0)
  assert apply._stream_end(np.zeros(0)) == 0.0


def test_an_audio_model_reads_sound_files_and_videos_without_a_face_model(tmp_path, tiny_backbone):
  import soundfile
  from lasca_jax.data.extract import audio
  clip = str(media_fixtures.shared_file("media/retalking_1.mp4"))
  config = make_tiny_config(tmp_path / "cache", **{"features.modality": "audio"})
  pipeline.run(config, str(tmp_path / "aud"))
  wave = audio.decode_audio(clip, 16000)
  soundfile.write(tmp_path / "clip.wav", wave.samples, wave.sample_rate)
  for source in (clip, str(tmp_path / "clip.wav")):   # no face model anywhere
    pred = apply.run_predict(str(tmp_path / "aud"), source, str(tmp_path / "out"),
                             face_model=str(tmp_path / "absent.task"), explain=False)
    assert pred.summary["decided"] > 0
  # A model with facial features: a sound file is refused at once, naming the face.
  pipeline.run(make_tiny_config(tmp_path / "cache", **{"features.modality": "visual"}),
               str(tmp_path / "vis"))
  with pytest.raises(bundle.BundleError, match=r"clip.wav: no face found in any frame, but the "
                     r"model .* uses facial features"):
    apply.run_predict(str(tmp_path / "vis"), str(tmp_path / "clip.wav"), str(tmp_path / "o2"),
                      face_model=str(tmp_path / "absent.task"))


def test_a_silent_video_is_refused_before_the_face_pass(run, tmp_path):
  run_dir, _, _ = run
  silent = media_fixtures.write_video(str(tmp_path / "silent.mp4"), 30, fps=25,
                                      audio_seconds=None)
  # The face model does not exist: had the face pass run first, that would be the error.
  with pytest.raises(bundle.BundleError, match=r"silent.mp4: no audio track, but the model"):
    apply.run_predict(run_dir, silent, str(tmp_path / "o"), face_model=str(tmp_path / "x.task"))


def test_a_table_starting_late_says_its_early_windows_are_empty(run, tmp_path):
  run_dir, config, results = run
  _, cols = _subject_table(config, results)
  late = dict(cols, time=cols["time"] + 30.0)
  np.savez(tmp_path / "late.npz", **late)
  warnings = apply.run_predict(run_dir, str(tmp_path / "late.npz"), str(tmp_path / "o"),
                               explain=False).summary["warnings"]
  assert ("late.npz starts at 30 s: the 10 windows before it are empty and not decided (times "
          "are seconds from the recording's start; shift them if the recording starts there)"
          in warnings)
