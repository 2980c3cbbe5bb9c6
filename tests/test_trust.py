"""Outputs a researcher can trust (issue 18): each case reproduced on tiny fixtures."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lasca_jax.run import pipeline, rundir
from conftest import ROOT, make_tiny_config


def _run_script(script, *args, env=None, timeout=300):
  env = dict(os.environ, HF_HUB_OFFLINE="1", **(env or {}))
  return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", script), *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- 7: from_json


def _from_json_error(path, error=None):
  from configs import from_json
  with pytest.raises(error or from_json.ConfigFileError) as err:
    from_json.get_config(str(path))
  message = str(err.value)
  assert "\n" not in message and str(path) in message
  return message


@pytest.mark.parametrize("text,expected", [
    ("", "is empty; give the config.json a run wrote"),
    ("{\"pairs\": ", "is not JSON (Expecting value at line 1 column 11)"),
    ("[1, 2]", "holds a list, not an object of config fields"),
    ("{\"pairs\": {\"margn\": 0.1}}", "unknown config field pairs.margn (did you mean pairs.margin?)"),
    ("{\"features\": [1, 2]}", "features=[1, 2] is a list, need an object"),
    ("{\"pairs\": {\"margin\": \"big\"}}", "pairs.margin=\"big\" is a string, need a number"),
    ("{\"train\": {\"max_epochs\": 2.5}}", "train.max_epochs=2.5 is a number, need an integer"),
    ("{\"data\": {\"name\": \"synthetic\", \"minuts\": 3}}",
     "unknown config field data.minuts (did you mean data.minutes?)"),
])
def test_a_bad_config_json_is_one_line_naming_file_and_field(tmp_path, text, expected):
  path = tmp_path / "config.json"
  path.write_text(text)
  assert expected in _from_json_error(path)
  missing = _from_json_error(tmp_path / "absent.json")
  assert "cannot read it (No such file or directory)" in missing


def test_every_shipped_config_round_trips_through_config_json(tmp_path):
  from configs import affwild2, custom, from_json, sewa, synthetic, videos
  for module in (affwild2, custom, sewa, synthetic, videos):
    config = module.get_config()
    config.model_label = "x"
    path = tmp_path / f"{config.data.name}.json"
    path.write_text(json.dumps(rundir.config_json(config)))
    assert rundir.config_json(from_json.get_config(str(path))) == rundir.config_json(config)


def test_a_dataset_without_a_config_file_keeps_its_own_data_fields(tmp_path):
  from configs import from_json
  path = tmp_path / "config.json"
  path.write_text(json.dumps({"data": {"name": "mine", "corpus_path": "/x"}}))
  assert from_json.get_config(str(path)).data.corpus_path == "/x"


def test_main_prints_the_config_json_problem_as_one_line(tmp_path):
  path = tmp_path / "config.json"
  path.write_text("{\"pairs\": {\"margn\": 0.1}}")
  done = _run_script("main.py", f"--config={ROOT}/configs/from_json.py:{path}",
                     f"--workdir={tmp_path / 'run'}")
  assert done.returncode == 2 and done.stderr.strip() == (
      f"error: {path}: unknown config field pairs.margn (did you mean pairs.margin?) "
      "(fix or remove these keys)")
  assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- 8: disks, Ctrl-C


def _tiny_main_args(tmp_path, workdir):
  return ["--config=" + os.path.join(ROOT, "configs", "synthetic.py") + ":runlocal",
          f"--workdir={workdir}", "--config.model.fusion=features",
          f"--config.cache_dir={tmp_path / 'cache'}"]


def test_an_unwritable_workdir_or_cache_is_one_line_naming_the_path(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  done = _run_script("main.py", *_tiny_main_args(tmp_path, blocker / "run"))
  assert done.returncode == 1 and "Traceback" not in done.stderr
  assert done.stderr.strip().splitlines()[-1] == (
      f"error: {blocker / 'run'}: a part of the path is a file, not a folder: choose another "
      "--workdir / --config.cache_dir")
  args = _tiny_main_args(tmp_path, tmp_path / "run")[:-1] + [f"--config.cache_dir={blocker}/c"]
  done = _run_script("main.py", *args)
  assert done.returncode == 1 and "Traceback" not in done.stderr
  last = done.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: {blocker}/c") and "a part of the path is a file" in last
  events = [json.loads(l) for l in open(tmp_path / "run" / "log.jsonl")]
  assert events[-1]["event"] == "failed" and events[-1]["error"] == "NotADirectoryError"


@pytest.mark.parametrize("code,fix", [
    (28, "no space left on its device: free space there"),
    (30, "the file system is read-only: point --workdir"),
    (13, "permission denied: make it writable"),
])
def test_os_errors_name_the_cause_and_the_fix(code, fix):
  from lasca_jax.run import cli
  line = cli.os_error_line(OSError(code, os.strerror(code), "/runs/x/results.npz"))
  assert line.startswith("/runs/x/results.npz: " + fix)


def test_a_full_disk_during_a_run_is_logged_as_failed_and_keeps_the_cache(tmp_path, monkeypatch):
  from conftest import make_tiny_config
  from lasca_jax.data import files as files_lib
  from lasca_jax.run import pipeline
  config = make_tiny_config(tmp_path / "cache")
  real = files_lib.save_npz_atomic

  def full(path, *args, **kwargs):
    if path.endswith("results.npz"):
      raise OSError(28, "No space left on device", path)
    return real(path, *args, **kwargs)

  monkeypatch.setattr(files_lib, "save_npz_atomic", full)
  with pytest.raises(OSError):
    pipeline.run(config, str(tmp_path / "run"))
  events = [json.loads(l) for l in open(tmp_path / "run" / "log.jsonl")]
  assert events[-1]["event"] == "failed" and events[-1]["stage"] == "trained"
  failed = json.load(open(tmp_path / "run" / "failed.json"))
  assert failed["error"] == "OSError" and "No space left" in failed["reason"]
  monkeypatch.setattr(files_lib, "save_npz_atomic", real)
  again = pipeline.run(config, str(tmp_path / "run"))       # Space freed: the cache is reused.
  assert not again["_cache_misses"] and not (tmp_path / "run" / "failed.json").exists()


def test_a_new_run_clears_the_whole_stale_bundle(tmp_path):
  bundle = tmp_path / "run" / "bundle"
  bundle.mkdir(parents=True)
  for name in ("params.msgpack", "test_windows.npz", "bundle.json"):
    (bundle / name).write_text("stale")
  run = rundir.RunDir.start(str(tmp_path / "run"))
  assert not bundle.exists() and run.path == str(tmp_path / "run")


def test_ctrl_c_is_one_line_logged_and_resumable(tmp_path):
  import signal
  import time
  workdir = tmp_path / "run"
  env = dict(os.environ, HF_HUB_OFFLINE="1")
  proc = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "experiments", "main.py"),
       *_tiny_main_args(tmp_path, workdir)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 120
  while time.time() < deadline and not (workdir / "log.jsonl").exists():
    time.sleep(0.05)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err[-2000:]
  assert "Traceback" not in err
  assert err.strip().splitlines()[-1] == (
      "interrupted: every finished stage and file is kept; the same command resumes from what "
      "was kept")
  events = [json.loads(l)["event"] for l in open(workdir / "log.jsonl")]
  assert events[-1] == "interrupted"


def test_two_runs_into_one_workdir_are_refused(tmp_path):
  from lasca_jax.data import files as files_lib
  first = rundir.RunDir.start(str(tmp_path / "run"), claim="experiments/main.py")
  with pytest.raises(files_lib.Busy, match=r"run is being written by experiments/main.py \(pid"):
    rundir.RunDir.start(str(tmp_path / "run"), claim="experiments/main.py")
  first.release()
  rundir.RunDir.start(str(tmp_path / "run"), claim="experiments/main.py")


def test_a_run_stopped_in_a_notebook_can_be_run_again_in_the_same_process(tmp_path,
                                                                          monkeypatch):
  """``pipeline.run`` releases its folder however it ends: an interrupted run whose traceback
  the notebook keeps (``sys.last_traceback`` holds its frames) does not leave the folder locked
  against the same process's next run."""
  config = make_tiny_config(tmp_path / "cache", **{"model.fusion": "features"})
  workdir = str(tmp_path / "run")
  real = pipeline.train_run

  def interrupted(*args, **kwargs):
    raise KeyboardInterrupt

  monkeypatch.setattr(pipeline, "train_run", interrupted)
  with pytest.raises(KeyboardInterrupt) as kept:
    pipeline.run(config, workdir)
  monkeypatch.setattr(pipeline, "train_run", real)
  arrays = pipeline.run(config, workdir)                 # not "being written by ... (pid <own>)"
  assert kept.tb is not None and "test_accuracy" in arrays
  events = [json.loads(l)["event"] for l in open(os.path.join(workdir, "log.jsonl"))]
  assert events[-1] == "done"


# ----------------------------------------------------------------------------- 10: no network


def test_an_uncached_backbone_without_network_fails_before_any_download(monkeypatch):
  import sentence_transformers
  from lasca_jax.encoders import text

  def never(*args, **kwargs):
    raise AssertionError("the download was attempted")

  monkeypatch.setattr(sentence_transformers, "SentenceTransformer", never)
  for name in text.PROXY_VARIABLES:
    monkeypatch.delenv(name, raising=False)
  monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
  monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")   # nothing listens there
  assert not text.hub_reachable()
  with pytest.raises(RuntimeError) as err:
    text.load_model("all-mpnet-base-v2")
  assert str(err.value).startswith(
      "text backbone 'all-mpnet-base-v2' (sentence-transformers/all-mpnet-base-v2) is not in the "
      "Hugging Face cache and the Hugging Face hub cannot be reached: download it on a connected "
      "machine")
  assert "--config.text.model_path=/path" in str(err.value)
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  with pytest.raises(RuntimeError, match="is not in the Hugging Face cache and HF_HUB_OFFLINE is "
                     "set"):
    text.load_model("all-mpnet-base-v2")
  monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")    # the download decides behind a proxy
  assert text.hub_reachable()


# ----------------------------------------------------------------------------- 6: degenerate set-ups


def test_a_window_shorter_than_the_frame_period_names_the_window(tmp_path):
  from conftest import make_tiny_config
  from lasca_jax.run import pipeline
  config = make_tiny_config(tmp_path / "cache", **{"features.window_seconds": 0.01})
  with pytest.raises(ValueError) as err:
    pipeline.run(config, str(tmp_path / "run"))
  assert str(err.value) == (
      "features.window_seconds=0.01 is shorter than the frames' period (0.1 s, 10 Hz): a window "
      "holds at most one frame; use a window of several frames (at least 0.1 s; the paper uses 3 "
      "or 5 s)")


def test_a_margin_leaving_few_pairs_warns_with_its_cause(tmp_path, caplog):
  import logging
  from conftest import make_tiny_config
  from lasca_jax.run import pipeline
  config = make_tiny_config(tmp_path / "cache", **{"pairs.margin": 1.0})
  with caplog.at_level(logging.WARNING):
    results = pipeline.run(config, str(tmp_path / "run"))
  events = {e["event"]: e for e in map(json.loads, open(tmp_path / "run" / "log.jsonl"))}
  few = events["pairs"]["warnings"]
  assert min(events["pairs"]["val"]) < 20 and few
  assert any(w.startswith("3 of 3 folds have fewer than 20 validation pairs (fewest ") and
             "at pairs.margin=1 on arousal): early stopping picks its epoch on noise; lower "
             "pairs.margin" in w for w in few)
  assert all(w in caplog.text for w in few)
  # The one-class folds are exactly those whose decided test pairs are all one direction.
  prob, mask = results["test_prob"], results["test_mask"].astype(bool)
  expected = [f for f in range(3) if len(set((prob[f][mask[f]] > 0.5).tolist())) == 1]
  assert events["trained"]["one_class_folds"] == expected
  assert set(expected) <= set(events["trained"]["degenerate_folds"])
  assert results["degenerate"].tolist() == [f in events["trained"]["degenerate_folds"]
                                            for f in range(3)]


def test_degenerate_folds_and_their_warning():
  from lasca_jax.model import degenerate
  prob = np.array([[0.9, 0.8, 0.7, 0.1], [0.2, 0.9, 0.1, 0.3], [0.1, 0.2, 0.3, 0.9],
                   [0.2, 0.9, 0.1, 0.3]])
  mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]], bool)
  assert degenerate.one_class_folds(prob, mask) == [0, 2]
  # Fold 3 decides both ways but kept epoch 1 at chance on validation; fold 1 learned.
  flags = degenerate.degenerate_folds(prob, mask, np.array([4, 3, 5, 1]),
                                      np.array([0.7, 0.6, 0.55, 0.5]))
  assert flags.tolist() == [True, False, True, True]
  assert degenerate.warning(flags, {"features": np.array([0.02, 0.03])}, False, 0.1) == (
      "3 of 4 folds (fold 0, 2, 3) learned nothing: their model decides every test pair the "
      "same way or kept its first epoch at chance on validation, so their accuracy is the share "
      "of one direction; the likely cause is small window-to-window changes of the input (median "
      "per part: features 0.025); try --config.train.standardize=True (a departure from the "
      "paper, docs/method.md)")
  assert "few pairs (pairs.margin=1)" in degenerate.warning(flags, {}, True, 1.0)
  assert degenerate.warning(np.zeros(3, bool), {}, True, 1.0) == ""


# ----------------------------------------------------------------------------- 12: report.py


def test_report_cli_nocues_and_a_bad_folder(tmp_path):
  from conftest import make_tiny_config
  from lasca_jax.run import pipeline
  pipeline.run(make_tiny_config(tmp_path / "cache"), str(tmp_path / "runs" / "one"))
  done = _run_script("report.py", f"--sweep_dir={tmp_path / 'runs'}",
                     f"--output_dir={tmp_path / 'report'}", "--nocues", "--nofigures")
  assert done.returncode == 0, done.stderr[-2000:]
  md = (tmp_path / "report" / "report.md").read_text()
  assert "## Cue attributions" not in md and "cues of" not in done.stderr
  assert "Learner settings of the 1 runs: " in md
  done = _run_script("report.py", f"--sweep_dir={tmp_path / 'absent'}",
                     f"--output_dir={tmp_path / 'report2'}")
  assert done.returncode == 1 and done.stderr.strip() == (
      f"error: {tmp_path / 'absent'}: not a directory (expected a run directory or a sweep of "
      "them)")


# ----------------------------------------------------------------------------- new cases


def test_negative_times_are_refused_in_training_and_in_predict_tables():
  from lasca_jax.data import types
  from lasca_jax.inference import apply
  from lasca_jax.method import windows
  t = np.arange(-3.0, 6.0, 0.1)
  rec = types.Recording("r", "s", t, np.zeros((t.size, 1), np.float32), ["a"], ("face",),
                        np.zeros(t.size, np.float32), np.zeros(t.size, np.float32))
  with pytest.raises(ValueError, match=r"^tab.csv: times start at -3 s; times are seconds from "
                     r"the start of the recording: shift them so the first is 0 or later$"):
    rec.validate("tab.csv")
  with pytest.raises(ValueError, match=r"starts at -3 s; times are seconds from the start"):
    apply.check_table_times("x.csv", t, "time", 3.0)
  with pytest.raises(ValueError, match=r"rows of 'time' are 100 s apart, not shorter than the "
                     r"model's 3 s window; is it in milliseconds\? It must be seconds"):
    apply.check_table_times("x.csv", np.arange(0.0, 10000.0, 100.0), "time", 3.0)
  # The windowing itself never lets a negative time index another recording's windows.
  frames = windows.Frames(t, np.zeros((t.size, 1), np.float32), np.zeros(t.size, np.float32),
                          np.zeros(t.size, np.float32), np.zeros(t.size, np.int32),
                          np.array(["r"]), np.array(["s"]), np.array(["a"]), np.array(["face"]))
  with pytest.raises(ValueError, match="negative frame time -3 s"):
    windows.make_windows(frames, 3.0)


def test_milliseconds_in_training_are_named_as_such():
  from lasca_jax.method import coverage
  with pytest.raises(ValueError, match=r"the frames are 100 s apart, longer than "
                     r"features.window_seconds=3: is the time column in milliseconds"):
    coverage.check_window_length(np.arange(0.0, 1000.0, 100.0), np.zeros(10, int), 3.0)


@pytest.mark.parametrize("code,fix", [(17, "a file is there where a folder is needed")])
def test_an_existing_file_as_workdir_is_named(code, fix):
  from lasca_jax.run import cli
  assert fix in cli.os_error_line(OSError(code, os.strerror(code), "/tmp/afile"))


def test_a_margin_of_zero_does_not_advise_lowering_it():
  from lasca_jax.method import coverage
  from lasca_jax.model import degenerate
  few = coverage.pair_warnings(0.0, "arousal", np.array([3, 4]), np.array([30, 40]), 50)
  assert few and "lower pairs.margin" not in few[0] and "give more or longer recordings" in few[0]
  assert "too few or too short recordings" in degenerate.warning(np.array([True]), {}, True, 0.0)


def test_feature_files_extracted_with_other_settings_are_named(caplog):
  import logging
  import ml_collections
  from lasca_jax.data.extract import load
  config = ml_collections.ConfigDict({"frame_stride": 3, "sample_rate": 16000})
  with caplog.at_level(logging.WARNING):
    assert load.warn_settings_differ({"frame_stride": 1, "sample_rate": 16000}, config,
                                     "p01") == ["frame_stride"]
    assert load.warn_settings_differ({"frame_stride": 1}, config, "p02") == ["frame_stride"]
  assert caplog.text.count("extracted with frame_stride=1 but config.data.frame_stride=3 "
                           "(first: p01)") == 1
  assert "--config.data.frame_stride=1" in caplog.text
  assert load.warn_settings_differ({"frame_stride": 3}, config, "p03") == []


def test_corrupt_audio_packets_lose_their_stretch_not_the_recording(tmp_path):
  """100 KB of garbage in the middle of a real clip: the audio decodes around it, the lost
  stretch has NaN MFCCs on the right clock, and the rest equals the intact clip's."""
  import media_fixtures
  from lasca_jax.data.extract import audio
  clip = media_fixtures.shared_file("media/retalking_1.mp4")
  data = bytearray(clip.read_bytes())
  middle = len(data) // 2
  data[middle:middle + 100_000] = np.random.default_rng(0).integers(0, 256, 100_000,
                                                                    dtype=np.uint8).tobytes()
  broken = tmp_path / "corrupt_mid.mp4"
  broken.write_bytes(bytes(data))
  times, coeffs, has_audio = audio.mfcc_track(str(broken))
  ref_times, ref, _ = audio.mfcc_track(str(clip))
  assert has_audio
  lost = np.isnan(coeffs).all(1)
  assert 0 < lost.sum() < 0.5 * lost.size
  n = min(len(times), len(ref_times))
  np.testing.assert_allclose(times[:n], ref_times[:n], atol=1e-6)
  first = int(np.argmax(lost))
  np.testing.assert_allclose(coeffs[:first - 3], ref[:first - 3], atol=1e-3)
