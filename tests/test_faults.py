"""Faults and bad input (issue 9): each case reproduced on tiny fixtures."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lasca_jax.run import cache, pipeline, rundir, validate
from conftest import ROOT, apply_overrides, make_tiny_config, run_sweep


def _run_script(script, *args, env=None, timeout=300):
  env = dict(os.environ, HF_HUB_OFFLINE="1", **(env or {}))
  return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", script), *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- 7: config checks


@pytest.mark.parametrize("script,args,message", [
    ("explain.py", ["--run=x", "--ig_steps=0"], "flag --ig_steps=0: 0 is not a positive integer"),
    ("explain.py", ["--run=x", "--draws=0"], "flag --draws=0: 0 is not a positive integer"),
    ("explain.py", ["--run=x", "--max_pairs=-5"],
     "flag --max_pairs=-5: -5 is not a non-negative integer"),
    ("predict.py", ["--run=x", "--input=y", "--output=z", "--top_cues=-2"],
     "flag --top_cues=-2: -2 is not a non-negative integer"),
    ("extract.py", ["--config=configs/sewa.py", "--num_shards=0"],
     "flag --num_shards=0: 0 is not a positive integer"),
    ("extract.py", ["--config=configs/sewa.py", "--num_workers=-1"],
     "flag --num_workers=-1: -1 is not a non-negative integer"),
    ("encode.py", ["--config=configs/synthetic.py", "--shard_index=-1"],
     "flag --shard_index=-1: -1 is not a non-negative integer"),
    ("report.py", ["--sweep_dir=x", "--output_dir=y", "--cue_pairs=-1"],
     "flag --cue_pairs=-1: -1 is not a non-negative integer"),
    ("report.py", ["--sweep_dir=x", "--output_dir=y", "--lexicon_modality=video"],
     "flag --lexicon_modality=video: value should be one of <visual|audio|multimodal>"),
])
def test_script_flags_out_of_range_are_one_line_errors(script, args, message):
  done = _run_script(script, *args)
  assert done.returncode == 2 and done.stderr.strip() == f"error: {message}"


def test_every_config_problem_is_reported_at_once_with_its_valid_range(tmp_path):
  config = make_tiny_config(tmp_path / "cache", **{
      "train.max_epochs": 0, "train.batch_size": 0, "protocol.num_folds": 0, "seed": -1,
      "text.salience_k": -1, "features.min_valid_fraction": 1.5, "pairs.target": "joy"})
  with pytest.raises(validate.ConfigError) as err:
    validate.check(config)
  message = str(err.value)
  assert "\n" not in message and message.startswith("invalid configuration, 7 problems")
  for part in ("train.max_epochs=0 (need an integer >= 1)",
               "train.batch_size=0 (need an integer >= 1)",
               "protocol.num_folds=0 (need an integer >= 1)",
               "seed=-1 (need an integer in [0, 4294967295])",
               "text.salience_k=-1 (need an integer >= 1)",
               "features.min_valid_fraction=1.5 (need a number in (0, 1])",
               "pairs.target='joy' (need one of 'arousal', 'valence')"):
    assert part in message
  with pytest.raises(validate.ConfigError,
                     match=r"protocol.num_folds=1 \(need an integer >= 2 for kfold"):
    validate.check(make_tiny_config(tmp_path / "cache", **{"protocol.num_folds": 1}))
  validate.check(make_tiny_config(tmp_path / "cache"))       # the shipped configs are valid
  # Nothing was written: the run stops before any work.
  with pytest.raises(validate.ConfigError):
    pipeline.run(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_sweep_fields_are_checked_for_sweeps_only(tmp_path):
  config = make_tiny_config(tmp_path / "cache", **{"sweep.margins": (0.1, -1.0),
                                                   "sweep.modalities": ("visual", "smell")})
  validate.check(config)
  with pytest.raises(validate.ConfigError, match=r"sweep.modalities=.*sweep.margins=\(0.1, -1.0\)"):
    validate.check(config, sweep=True)


def test_dataset_fields_are_checked_by_the_dataset_module(tmp_path):
  from configs import custom, sewa  # pylint: disable=import-outside-toplevel
  config = sewa.get_config()
  config.data.frame_stride = 0
  config.data.label_format = "avec2030"
  with pytest.raises(validate.ConfigError, match=r"data.root='' .*data.frame_stride=0 .*"
                                                 r"data.label_format='avec2030'"):
    validate.check(config)
  config = custom.get_config()
  config.data.root = str(tmp_path)
  config.data.audio_columns = "(unclosed"
  with pytest.raises(validate.ConfigError, match="data.audio_columns=.*regular expression"):
    validate.check(config)


def test_a_mistyped_override_is_one_line_naming_the_closest_field(tmp_path):
  done = _run_script("main.py", "--config=" + os.path.join(ROOT, "configs", "synthetic.py") +
                     ":runlocal", "--config.pairs.margn=0.1", f"--workdir={tmp_path / 'run'}",
                     env={"LASCA_JAX_CACHE": str(tmp_path / "cache")})
  assert done.returncode == 2
  assert done.stderr.strip().splitlines()[-1] == (
      "error: unknown config field pairs.margn (did you mean pairs.margin?)")
  assert "Traceback" not in done.stderr
  done = _run_script("main.py", "--config=" + os.path.join(ROOT, "configs", "synthetic.py") +
                     ":runlocal", "--config.train.batch_size=0", "--config.seed=-1",
                     f"--workdir={tmp_path / 'run'}",
                     env={"LASCA_JAX_CACHE": str(tmp_path / "cache")})
  assert done.returncode == 1 and "Traceback" not in done.stderr
  assert done.stderr.strip().splitlines()[-1] == (
      "error: invalid configuration, 2 problems: seed=-1 (need an integer in [0, 4294967295]); "
      "train.batch_size=0 (need an integer >= 1)")


# ----------------------------------------------------------------------------- 1, 13: sweeps



def _small_sweep(tmp_path, backbone, **overrides):
  config = make_tiny_config(tmp_path / "cache", **{
      "sweep.modalities": ("visual",), "sweep.windows": (3.0,), "sweep.targets": ("arousal",),
      "sweep.backbones": (backbone,), "sweep.ablation_modalities": (),
      "sweep.simulated_baselines": False, "sweep.group_size": 1, **overrides})
  return config


def test_a_failing_sweep_configuration_is_recorded_and_the_rest_goes_on(tmp_path, tiny_backbone):
  from lasca_jax.run import sweep as sweep_lib  # pylint: disable=import-outside-toplevel
  config = _small_sweep(tmp_path, tiny_backbone, **{"sweep.margins": (0.1, 100.0),
                                                    "sweep.models": ("features",)})
  workdir = tmp_path / "sweep"
  summary = run_sweep(config, str(workdir))
  assert summary["configurations"] == 2 and summary["trained"] == 1 and summary["failed"] == 1
  (bad, reason), = summary["failures"].items()
  assert "m100" in bad and reason.startswith("prepare: ValueError: no preference pairs")
  failed = json.load(open(workdir / "runs" / bad / "failed.json"))
  assert failed["stage"] == "prepare" and "margin 100.0" in failed["reason"]
  assert [json.loads(l)["event"] for l in open(workdir / "runs" / bad / "log.jsonl")][-1] == (
      "failed")
  good = next(p for p in (workdir / "runs").rglob("results.npz"))
  assert "m0.1" in str(good)
  report_md = (workdir / "report" / "report.md").read_text()
  assert "## Failed configurations" in report_md and "no preference pairs" in report_md
  assert bad in report_md
  # A rerun retries nothing (the failure is remembered) and its exit status counts the failure.
  stamp = good.stat().st_mtime_ns
  done = _run_script("sweep.py", "--config=" + os.path.join(ROOT, "configs", "from_json.py") +
                     ":" + str(_write_json(config, tmp_path / "sweep_config.json")),
                     f"--workdir={workdir}", "--noreport",
                     env={"LASCA_JAX_CACHE": str(tmp_path / "cache")})
  assert done.returncode == 1, done.stderr[-2000:]
  assert "0 trained, 1 already done, 1 failed" in done.stdout and f"FAILED {bad}" in done.stdout
  assert good.stat().st_mtime_ns == stamp
  again = sweep_lib.run_sweep(config, str(workdir / "runs"), progress=False, retry_failed=True)
  assert again["trained"] == 0 and again["failed"] == 1 and again["skipped"] == 1


def _write_json(config, path):
  path.write_text(config.to_json_best_effort())
  return path


def test_the_report_holds_every_run_of_a_sweep_with_its_own_lexicon(tmp_path, tiny_backbone):
  lex = tmp_path / "lexicon.json"
  lex.write_text(json.dumps({"mouthSmileLeft": "a warm smile", "jawOpen": "mouth wide open"}))
  config = _small_sweep(tmp_path, tiny_backbone, **{
      "sweep.margins": (0.15,), "sweep.models": ("features", "text", "fused"),
      "text.lexicon": str(lex), "sweep.ablation_modalities": ("visual",),
      "sweep.ablation_lexicons": ("feature_name",)})
  summary = run_sweep(config, str(tmp_path / "sweep"))
  assert summary["trained"] == 4 and summary["failed"] == 0
  report_md = (tmp_path / "sweep" / "report" / "report.md").read_text()
  backbones = (tmp_path / "sweep" / "report" / "tables" / "backbones.md").read_text()
  label = os.path.basename(tiny_backbone)
  for row in ("Features", label, f"{label}(F)"):
    assert f"| {row} |" in backbones
  assert "Arousal 3s 15%" in backbones              # the sweep's own margin is a column
  lexicon_md = (tmp_path / "sweep" / "report" / "tables" / "lexicon.md").read_text()
  assert "Own (lexicon.json)" in lexicon_md and "| Feature |" in lexicon_md
  for run in pathlib_runs(tmp_path / "sweep" / "runs"):
    assert f"| {run} |" in report_md
  # experiments/report.py's defaults choose the sweep's own LaScA row and lexicon (before, its
  # fixed MPNet(F) / llm defaults dropped the LaScA rows silently) and say so.
  from lasca_jax.analysis import report
  report.make_report(tmp_path / "sweep" / "runs", tmp_path / "again", cues=False)
  again = (tmp_path / "again" / "report.md").read_text()
  assert (f"LaScA row: **{label}(F)** (chosen from the runs); lexicon of the backbone and "
          "comparison tables: **Own (lexicon.json)** (chosen from the runs).") in again
  assert "**Warning" not in again and f"| {label}(F) |" in (
      tmp_path / "again" / "tables" / "backbones.md").read_text()
  assert ("Text settings of the 3 runs with prompts: salience rule: otsu; salience statistics: "
          "fold; phrase order: feature; long prompts: truncate.") in again
  report.make_report(tmp_path / "sweep" / "runs", tmp_path / "asked", cues=False,
                     lasca_label="MPNet(F)", lexicon="llm")
  asked = (tmp_path / "asked" / "report.md").read_text()
  assert ("**Warning:** no fused run is labelled MPNet(F) with the LLM (ours) lexicon (fused "
          "rows with it: none), so the tables have no LaScA row") in asked


def pathlib_runs(root):
  return sorted(os.path.relpath(p.parent, root) for p in root.rglob("results.npz"))


# ----------------------------------------------------------------------------- 3, 6, 14: data


def _write_tables(root, subjects=6, seconds=30.0, rate=10.0, columns=("AU01_r", "AU12_r",
                  "mfcc_1"), valence=True, arousal=True, blank=(), no_face=()):
  """Per-recording custom CSVs with smooth labels; ``blank`` columns empty, ``no_face``
  recordings without any face value."""
  root.mkdir(parents=True, exist_ok=True)
  t = np.arange(int(seconds * rate)) / rate
  for s in range(subjects):
    rng = np.random.default_rng(s)
    head = ["time"] + list(columns) + (["valence"] if valence else []) + (
        ["arousal"] if arousal else []) + ["subject"]
    lines = [",".join(head)]
    for i, ti in enumerate(t):
      cells = [f"{ti:.2f}"]
      for c in columns:
        empty = c in blank or (f"r{s}" in no_face and not c.startswith("mfcc"))
        cells.append("" if empty else f"{rng.random():.4f}")
      if valence:
        cells.append(f"{np.sin(ti / 3 + s):.4f}")
      if arousal:
        cells.append(f"{np.cos(ti / 4 + s):.4f}")
      cells.append(f"p{s}")
      lines.append(",".join(cells))
    (root / f"r{s}.csv").write_text("\n".join(lines) + "\n")


def _custom_config(tmp_path, root, **overrides):
  from configs import custom  # pylint: disable=import-outside-toplevel
  config = custom.get_config()
  config.data.root = str(root)
  config.cache_dir = str(tmp_path / "cache")
  config.model.fusion = "features"
  config.protocol.num_folds = 3
  config.train.max_epochs = 3
  return apply_overrides(config, overrides)


def test_subjects_without_usable_windows_are_left_out_before_the_folds(tmp_path, caplog):
  root = tmp_path / "data"
  _write_tables(root, subjects=7, no_face=("r2", "r5"))
  config = _custom_config(tmp_path, root)
  inputs = pipeline.prepare(config, cache.StageCache(config.cache_dir), rundir.RunLog(None))
  subjects = inputs.splits.subjects.tolist()
  for s in ("p2", "p5"):                       # never trained or tested on
    assert not inputs.splits.train[:, subjects.index(s)].any()
    assert not inputs.splits.test[:, subjects.index(s)].any()
  assert inputs.splits.test.sum(axis=0).tolist() == [1, 1, 0, 1, 1, 0, 1]   # others: once each
  assert "p2 (r2): no face found in any frame" in caplog.text
  log = tmp_path / "run"
  pipeline.run(config, str(log))
  event = next(json.loads(l) for l in open(log / "log.jsonl") if '"windows"' in l)
  assert event["excluded_subjects"] == {
      "p2": {"reason": "no face found in any frame", "recordings": ["r2"]},
      "p5": {"reason": "no face found in any frame", "recordings": ["r5"]}}
  # The 5 remaining subjects are drawn as if the empty ones did not exist.
  from lasca_jax.method import protocols  # pylint: disable=import-outside-toplevel
  alone = protocols.subject_splits(np.array(["p0", "p1", "p3", "p4", "p6"]), "kfold", 3, 0)
  keep = [subjects.index(s) for s in alone.subjects]
  np.testing.assert_array_equal(inputs.splits.test[:, keep], alone.test)
  # Too few subjects left for the folds: the message names the left-out count.
  config.protocol.num_folds = 6
  with pytest.raises(ValueError, match=r"needs at least 6 subjects; the dataset has 5 \(2 left "
                                       r"out: no usable window\)"):
    pipeline.prepare(config, cache.StageCache(config.cache_dir))


def test_a_column_empty_in_every_table_is_named_with_its_fix(tmp_path):
  root = tmp_path / "data"
  _write_tables(root, subjects=4, blank=("AU12_r",))
  config = _custom_config(tmp_path, root)
  with pytest.raises(ValueError, match=r"feature column 'AU12_r' is empty in every table under "
                                       rf"{root} \(e.g. r0\); leave it out with "
                                       r"--config.data.exclude_columns=AU12_r"):
    pipeline.run(config, str(tmp_path / "run"))
  config.data.exclude_columns = "AU12_r"
  assert pipeline.run(config, str(tmp_path / "run"))["test_accuracy"].shape == (3,)


def test_no_usable_window_names_the_stream_and_the_columns(tmp_path, monkeypatch):
  from test_pipeline import _fake_dataset  # pylint: disable=import-outside-toplevel

  def feats(s, rng, n):
    x = rng.random((n, 73)).astype(np.float32)
    x[:, 60] = np.nan                         # mfcc_2 never measured
    return x
  config = _fake_dataset(tmp_path, monkeypatch, feats)
  with pytest.raises(ValueError, match=r"no usable window for modality 'multimodal'.*audio "
                                       r"features cover at most 0%.*never finite in any "
                                       r"recording: 'mfcc_2'"):
    pipeline.prepare(config, cache.StageCache(config.cache_dir))
  config.features.modality = "visual"         # the face stream alone is complete
  assert pipeline.prepare(config, cache.StageCache(config.cache_dir)).usable.all()


def test_a_dataset_with_one_target(tmp_path):
  root = tmp_path / "data"
  _write_tables(root, subjects=4, arousal=False)
  config = _custom_config(tmp_path, root, **{"protocol.num_folds": 2})
  with pytest.raises(ValueError, match=r"r0.csv: no arousal column 'arousal' \(set "
                                       r"--config.data.arousal_column, or to '' for data "
                                       r"without arousal labels\)"):
    pipeline.run(config, str(tmp_path / "run"))
  config.data.arousal_column = ""
  with pytest.raises(ValueError, match=r"the dataset has no arousal labels .*use "
                                       r"--config.pairs.target=valence"):
    pipeline.run(config, str(tmp_path / "run"))
  config.pairs.target = "valence"
  out = pipeline.run(config, str(tmp_path / "run"))
  assert out["num_test_pairs"].sum() > 0
  inputs = pipeline.prepare(config, cache.StageCache(config.cache_dir))
  assert inputs.usable.all()                   # every full window has its valence labels


# ----------------------------------------------------------------------------- 10: windows


def test_only_full_windows_are_usable_unless_partial_windows_is_set(tmp_path, monkeypatch):
  from lasca_jax.method import windows  # pylint: disable=import-outside-toplevel
  times = np.arange(315) / 10.0                # 31.5 s: window 10 = [30, 33) is half covered
  frames = windows.Frames(
      times=times, features=np.ones((315, 2), np.float32),
      valence=np.zeros(315, np.float32), arousal=np.zeros(315, np.float32),
      recording=np.zeros(315, np.int32), recording_ids=np.array(["r"]),
      subject_ids=np.array(["s"]), feature_names=np.array(["a", "mfcc_0"]),
      modalities=np.array(["face", "audio"]))
  win = windows.make_windows(frames, 3.0)
  assert win.full.tolist() == [True] * 10 + [False]
  assert win.coverage[10].tolist() == [0.5, 0.5, 0.5]
  assert windows.usable_windows(win, "multimodal", 0.5).sum() == 10        # paper: fixed length
  assert windows.usable_windows(win, "multimodal", 0.5, partial=True).sum() == 11
  # 240 s recordings (the synthetic data) divide into 3 s and 5 s windows: all full.
  for w, n in ((3.0, 80), (5.0, 48)):
    frames240 = dataclasses.replace(frames, times=np.arange(2400) / 10.0,
                     features=np.ones((2400, 2), np.float32),
                     valence=np.zeros(2400, np.float32), arousal=np.zeros(2400, np.float32),
                     recording=np.zeros(2400, np.int32))
    assert windows.make_windows(frames240, w).full.tolist() == [True] * n


# ----------------------------------------------------------------------------- 16: seeds


def test_the_split_seed_is_separate_from_the_training_seed(tmp_path, tiny_backbone):
  base = make_tiny_config(tmp_path / "cache", **{"model.fusion": "fused",
                                                 "text.backbone": tiny_backbone})
  default = pipeline.run(base, str(tmp_path / "default"))
  explicit = make_tiny_config(tmp_path / "cache", **{"model.fusion": "fused",
                                                     "text.backbone": tiny_backbone,
                                                     "protocol.split_seed": 0})
  same = pipeline.run(explicit, str(tmp_path / "explicit"))
  np.testing.assert_array_equal(default["test_accuracy"], same["test_accuracy"])
  assert same["_cache_misses"] == {}
  # A new training seed with the split seed kept: same folds, nothing re-encoded or recomputed.
  explicit.seed = 1
  other = pipeline.run(explicit, str(tmp_path / "other"))
  np.testing.assert_array_equal(other["test_subjects"], default["test_subjects"])
  assert other["_cache_misses"] == {}
  assert not np.array_equal(other["test_prob"], default["test_prob"])
  log = [json.loads(l) for l in open(tmp_path / "other" / "log.jsonl")]
  assert [e["newly_encoded"] for e in log if e["event"] == "embeddings"] == [0]
  # 19: the fold standard deviation is the tables' sample std (ddof=1) everywhere.
  assert log[-1]["std_test_accuracy"] == pytest.approx(np.std(other["test_accuracy"], ddof=1))
  # Without a split seed, config.seed draws the folds too (the earlier behaviour).
  moved = make_tiny_config(tmp_path / "cache", **{"seed": 1})
  assert not np.array_equal(pipeline.run(moved, str(tmp_path / "moved"))["test_subjects"],
                            default["test_subjects"])


# ----------------------------------------------------------------------------- 15, 17: lexicons


def test_changing_the_lexicon_recomputes_only_the_prompts(tmp_path, tiny_backbone):
  root = tmp_path / "data"
  _write_tables(root, subjects=4)
  (root / "lex_a.json").write_text(json.dumps({"AU12_r": "smiling"}))
  (root / "lex_b.json").write_text(json.dumps({"AU12_r": "lip corners up"}))
  config = _custom_config(tmp_path, root, **{"protocol.num_folds": 2, "model.fusion": "fused",
                                             "text.backbone": tiny_backbone,
                                             "data.lexicon": "lex_a.json"})
  pipeline.run(config, str(tmp_path / "a"))
  config.data.lexicon = "lex_b.json"
  out = pipeline.run(config, str(tmp_path / "b"))
  assert out["_cache_misses"] == {"prompts": 1}
  assert any("lip corners up" in p for p in out["prompts"])
  # Neither do the extraction-only fields or an unused salience parameter change anything.
  config.text.salience_k = 3
  config.text.lexicon_seed = 5
  assert pipeline.run(config, str(tmp_path / "c"))["_cache_misses"] == {}


def test_the_shuffled_lexicon_permutes_the_lexicon_in_use(tmp_path):
  from lasca_jax.method import lexicon  # pylint: disable=import-outside-toplevel
  root = tmp_path / "data"
  own = {"AU01_r": "brows raised", "AU12_r": "smiling", "pose_Rx": "head nod",
         "mfcc_1": "bright voice", "mfcc_2": "dark voice"}
  (root / "lex.json").parent.mkdir(parents=True)
  (root / "lex.json").write_text(json.dumps(own))
  config = _custom_config(tmp_path, root, **{"data.lexicon": "lex.json",
                                             "text.lexicon": "shuffled", "text.lexicon_seed": 3})
  kind = pipeline.lexicon_kind(config)
  assert kind == f"shuffled:{root / 'lex.json'}"
  names, mods = list(own), ["face", "face", "face", "audio", "audio"]
  shuffled = lexicon.build_lexicon(kind, names, mods, seed=3)
  assert shuffled != list(own.values())
  assert sorted(shuffled[:3]) == sorted(list(own.values())[:3])     # within modality
  assert sorted(shuffled[3:]) == ["bright voice", "dark voice"]
  assert not set(shuffled) & set(lexicon.LLM_LEXICON.values())
  config.data.lexicon = ""                                           # no own lexicon: the paper's
  assert pipeline.lexicon_kind(config) == "shuffled:llm"
  assert lexicon.build_lexicon("shuffled", names, mods, 3) == lexicon.build_lexicon(
      "shuffled:llm", names, mods, 3)
  # A sweep over a lexicon file shuffles that file in its ablation rows.
  from lasca_jax.run import sweep as sweep_lib  # pylint: disable=import-outside-toplevel
  sweep_config = make_tiny_config(tmp_path / "cache", **{
      "text.lexicon": str(root / "lex.json"), "sweep.ablation_lexicons": ("shuffled",),
      "sweep.backbones": ("all-MiniLM-L6-v2",)})
  lexicons = {c.text.lexicon for _, c in sweep_lib.expand(sweep_config)}
  assert lexicons == {str(root / "lex.json"), f"shuffled:{root / 'lex.json'}"}


# ----------------------------------------------------------------------------- 2, 4, 8, 9, 11


def _aw2_root(tmp_path, rows=12, frames=20):
  import media_fixtures as mf  # pylint: disable=import-outside-toplevel
  from configs import affwild2 as affwild2_config  # pylint: disable=import-outside-toplevel
  root = tmp_path / "aw2"
  (root / "ann").mkdir(parents=True)
  ann = "valence,arousal\n" + "".join(f"{0.1 * (i % 5)},{np.sin(i / 7):.3f}\n" for i in range(rows))
  for stem in ("v1", "v2", "v3_left", "v3_right"):
    (root / "ann" / f"{stem}.txt").write_text(ann)
    mf.write_fake_features(root / "lasca_features" / f"{stem}.npz", frames, 25.0,
                           audio_seconds=rows / 25.0)
  config = affwild2_config.get_config()
  config.data.root = str(root)
  return config


def test_affwild2_subject_map_and_row_frame_gap_wording(tmp_path, caplog):
  from lasca_jax.data.datasets import affwild2  # pylint: disable=import-outside-toplevel
  config = _aw2_root(tmp_path, rows=12, frames=40)
  caplog.set_level("INFO")
  recs = {r.recording_id: r.subject_id for r in affwild2.load_recordings(config.data)}
  assert recs == {"v1": "v1", "v2": "v2", "v3_left": "v3_left", "v3_right": "v3_right"}
  assert "without config.data.subject_map" in caplog.text
  # Fewer rows than frames: the frames past the last row are unused (not the opposite wording).
  assert "v1: 12 annotation rows, 40 decoded frames (aligned by frame index; the frames past " \
         "the last row are unused)" in caplog.text
  assert affwild2.row_frame_gap_message("x", 15, 10).endswith(
      "the rows past the last frame have no face features)")
  before = affwild2.fingerprint(config.data)
  (tmp_path / "aw2" / "people.csv").write_text("video,subject\nv1,ann\nv2,ann\nv3_left,bob\n"
                                               "v3,carl\n")
  config.data.subject_map = "people.csv"
  assert affwild2.fingerprint(config.data) != before            # the map is a cached input
  recs = {r.recording_id: r.subject_id for r in affwild2.load_recordings(config.data)}
  assert recs == {"v1": "ann", "v2": "ann", "v3_left": "bob", "v3_right": "carl"}
  (tmp_path / "aw2" / "people.csv").write_text("video,subject\nv1,ann\n")
  with pytest.raises(ValueError, match=r"v2: neither it nor its video v2 is in the subject map"):
    affwild2.load_recordings(config.data)


def test_one_person_in_two_videos_never_sits_on_both_sides(tmp_path):
  config = _aw2_root(tmp_path, rows=150, frames=150)
  (tmp_path / "aw2" / "people.csv").write_text("v1,ann\nv2,ann\nv3,bob\n")
  config.data.subject_map = "people.csv"
  config.cache_dir = str(tmp_path / "cache")
  config.model.fusion = "features"
  config.protocol.num_folds = 4
  config.protocol.test_fraction = 0.5
  inputs = pipeline.prepare(config, cache.StageCache(config.cache_dir))
  assert inputs.splits.subjects.tolist() == ["ann", "bob"]
  for k in range(4):
    assert inputs.splits.test[k].sum() == 1 and (inputs.splits.train[k] ^
                                                  inputs.splits.test[k]).all()


def test_main_names_a_failed_extraction_and_its_reason(tmp_path):
  from lasca_jax.data.datasets import affwild2  # pylint: disable=import-outside-toplevel
  from lasca_jax.data.extract import runner  # pylint: disable=import-outside-toplevel
  config = _aw2_root(tmp_path)
  os.remove(tmp_path / "aw2" / "lasca_features" / "v2.npz")
  runner.write_report(str(tmp_path / "aw2" / "lasca_features" / "extract_report.json"), [
      runner.JobResult("v1", "skipped"),
      runner.JobResult("v2", "failed", "ValueError: v2.mp4: cannot decode video (moov atom "
                       "not found)"),
      runner.JobResult("v9", "failed", "ValueError: v9.mp4: cannot decode audio")])
  with pytest.raises(FileNotFoundError, match=r"v2: extraction failed for it \(ValueError: "
                                              r"v2.mp4: cannot decode video \(moov atom not "
                                              r"found\); see .*extract_report.json; 1 more "
                                              r"failed too: v9\)"):
    affwild2.load_recordings(config.data)
  os.remove(tmp_path / "aw2" / "lasca_features" / "v1.npz")   # not failed: never extracted
  os.remove(tmp_path / "aw2" / "lasca_features" / "extract_report.json")
  with pytest.raises(FileNotFoundError, match=r"v1: feature file .* is missing; run"):
    affwild2.load_recordings(config.data)


def test_a_corrupt_face_model_is_named_once_up_front(tmp_path):
  from lasca_jax.data.extract import runner  # pylint: disable=import-outside-toplevel
  model = tmp_path / "face_landmarker.task"
  model.write_bytes(b"PK\x03\x04 truncated download")
  jobs = [runner.MediaJob(f"r{i}", str(tmp_path / f"r{i}.mp4"), None,
                          str(tmp_path / "out" / f"r{i}.npz")) for i in range(3)]
  with pytest.raises(ValueError, match=rf"face model {model} cannot be loaded .*truncated or "
                                       r"corrupt: download it again from https://"):
    runner.run_jobs(jobs, runner.Settings(face_model=str(model)), progress=False)
  assert not (tmp_path / "out").exists()


def test_extraction_time_per_job_leaves_out_the_library_imports(tmp_path, monkeypatch):
  import time  # pylint: disable=import-outside-toplevel
  from lasca_jax.data.extract import runner, store  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(runner, "_import_libraries", lambda: time.sleep(0.5))
  monkeypatch.setattr(store, "is_current", lambda *a: False)
  monkeypatch.setattr(runner, "extract", lambda job, settings: ({}, {"warnings": [],
                                                                    "num_frames": 100}))
  monkeypatch.setattr(store, "save_features", lambda *a: None)
  (tmp_path / "r.wav").write_bytes(b"RIFF")
  job = runner.MediaJob("r", None, str(tmp_path / "r.wav"), str(tmp_path / "r.npz"))
  result = runner.run_job(job, runner.Settings())
  assert result.status == "done", result.reason
  assert result.seconds < 0.25


def test_cache_entries_follow_the_umask(tmp_path):
  old = os.umask(0o002)
  try:
    store = cache.StageCache(str(tmp_path))
    key = cache.hash_key("windows", {"x": 1})
    store.get_or_compute("windows", key, lambda: {"a": np.arange(3)})
    assert os.stat(store.path("windows", key)).st_mode & 0o777 == 0o664
  finally:
    os.umask(old)


_POOL_SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
from lasca_jax.data.extract import runner
pool = runner.make_pool(2)
futures = [pool.submit(time.sleep, 60) for _ in range(4)]
time.sleep(3)
print(" ".join(str(p) for p in pool._processes), flush=True)
time.sleep(120)
"""


def _alive(pid):
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().split(")")[-1].split()[0] not in ("Z", "X")
  except OSError:
    return False


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_extraction_workers_end_with_their_parent(tmp_path, sig):
  import signal  # pylint: disable=import-outside-toplevel
  import time  # pylint: disable=import-outside-toplevel
  parent = subprocess.Popen([sys.executable, "-c", _POOL_SCRIPT.format(root=ROOT)],
                            stdout=subprocess.PIPE, text=True)
  try:
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    parent.send_signal(getattr(signal, sig))
    parent.wait(timeout=30)
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(p) for p in workers):
      time.sleep(0.2)
    assert not any(_alive(p) for p in workers)
  finally:
    parent.kill()


# ----------------------------------------------------------------------------- 18: eGeMAPS

EGEMAPS_88 = (
    [f"F0semitoneFrom27.5Hz_sma3nz_{s}" for s in (
        "amean", "stddevNorm", "percentile20.0", "percentile50.0", "percentile80.0",
        "pctlrange0-2", "meanRisingSlope", "stddevRisingSlope", "meanFallingSlope",
        "stddevFallingSlope")] +
    [f"loudness_sma3_{s}" for s in (
        "amean", "stddevNorm", "percentile20.0", "percentile50.0", "percentile80.0",
        "pctlrange0-2", "meanRisingSlope", "stddevRisingSlope", "meanFallingSlope",
        "stddevFallingSlope")] +
    ["spectralFlux_sma3_amean", "spectralFlux_sma3_stddevNorm"] +
    [f"mfcc{i}_sma3_{s}" for i in range(1, 5) for s in ("amean", "stddevNorm")] +
    [f"{n}_sma3nz_{s}" for n in ("jitterLocal", "shimmerLocaldB", "HNRdBACF", "logRelF0-H1-H2",
                                 "logRelF0-H1-A3", "F1frequency", "F1bandwidth",
                                 "F1amplitudeLogRelF0", "F2frequency", "F2bandwidth",
                                 "F2amplitudeLogRelF0", "F3frequency", "F3bandwidth",
                                 "F3amplitudeLogRelF0") for s in ("amean", "stddevNorm")] +
    [f"{n}_sma3nz_{s}" for n in ("alphaRatioV", "hammarbergIndexV", "slopeV0-500",
                                 "slopeV500-1500", "spectralFluxV", "mfcc1V", "mfcc2V",
                                 "mfcc3V", "mfcc4V") for s in ("amean", "stddevNorm")] +
    [f"{n}_sma3nz_amean" for n in ("alphaRatioUV", "hammarbergIndexUV", "slopeUV0-500",
                                   "slopeUV500-1500", "spectralFluxUV")] +
    ["loudnessPeaksPerSec", "VoicedSegmentsPerSec", "MeanVoicedSegmentLengthSec",
     "StddevVoicedSegmentLengthSec", "MeanUnvoicedSegmentLength", "StddevUnvoicedSegmentLength",
     "equivalentSoundLevel_dBp"])
COMPARE_LLD = ("audspec_lengthL1norm_sma", "pcm_RMSenergy_sma", "pcm_zcr_sma",
               "audSpec_Rfilt_sma[0]", "pcm_fftMag_spectralFlux_sma", "mfcc_sma[1]",
               "F0final_sma", "voicingFinalUnclipped_sma", "jitterLocal_sma", "jitterDDP_sma",
               "shimmerLocal_sma", "logHNR_sma", "pcm_fftMag_psySharpness_sma_de")


def test_every_egemaps_and_compare_name_is_audio_and_openface_is_face():
  from lasca_jax.data.datasets import custom  # pylint: disable=import-outside-toplevel
  assert len(EGEMAPS_88) == len(set(EGEMAPS_88)) == 88
  for name in EGEMAPS_88 + list(COMPARE_LLD):
    assert custom.modality_of(name, custom.DEFAULT_AUDIO_COLUMNS) == "audio", name
  for name in ("AU01_r", "AU12_c", "pose_Rx", "gaze_angle_x", "confidence", "x_0", "p_scale",
               "eye_lmk_X_3", "mouthSmileLeft", "headRoll"):
    assert custom.modality_of(name, custom.DEFAULT_AUDIO_COLUMNS) == "face", name


def test_already_windowed_rows_and_the_modality_log(tmp_path):
  root = tmp_path / "data"
  root.mkdir()
  names = EGEMAPS_88[:3] + ["AU12_r"]
  for s in range(4):                            # one row per 5 s window, 60 s per recording
    rng = np.random.default_rng(s)
    rows = [",".join(["time", *names, "valence", "arousal", "subject"])]
    for k in range(12):
      rows.append(",".join([f"{5.0 * k}"] + [f"{v:.3f}" for v in rng.random(4)] +
                           [f"{np.sin(k + s):.3f}", f"{np.cos(k / 2 + s):.3f}", f"p{s}"]))
    (root / f"r{s}.csv").write_text("\n".join(rows) + "\n")
  config = _custom_config(tmp_path, root, **{"protocol.num_folds": 2,
                                             "features.window_seconds": 5.0})
  inputs = pipeline.prepare(config, cache.StageCache(config.cache_dir))
  assert inputs.usable.sum() == 4 * 12 and inputs.z.shape[-1] == 4
  pipeline.run(config, str(tmp_path / "run"))
  event = next(json.loads(l) for l in open(tmp_path / "run" / "log.jsonl") if '"frames"' in l)
  assert event["columns_by_modality"] == {"face": ["AU12_r"], "audio": EGEMAPS_88[:3]}


# ----------------------------------------------------------------------------- 12: feature CSVs


def _sewa_with_feature_csvs(tmp_path, face=True, audio=True, subjects=4, seconds=30):
  """SEWA labels (AVEC 2019) plus AVEC-style per-frame feature CSVs, and no media at all."""
  from configs import sewa as sewa_config  # pylint: disable=import-outside-toplevel
  root = tmp_path / "SEWA"
  (root / "labels").mkdir(parents=True)
  (root / "features" / "audio").mkdir(parents=True)
  (root / "features" / "face").mkdir(parents=True)
  for s in range(subjects):
    rec = f"Train_DE_{s + 1:02d}"
    t = np.arange(seconds * 10) / 10
    (root / "labels" / f"{rec}.csv").write_text(
        "name;timestamp;arousal;valence;liking\n" + "".join(
            f"{rec};{x:.1f};{np.cos(x / 4 + s):.3f};{np.sin(x / 3 + s):.3f};0\n" for x in t))
    if audio:                                  # 100 Hz eGeMAPS LLDs, ';' separated, AVEC style
      ta = np.arange(seconds * 100) / 100
      (root / "features" / "audio" / f"{rec}.csv").write_text(
          "name;frameTime;Loudness_sma3;alphaRatio_sma3\n" + "".join(
              f"'{rec}';{x:.2f};{x:.3f};{s + 0.5 * np.sin(7 * x):.3f}\n" for x in ta))
    if face:                                   # 30 fps OpenFace-like, ',' separated
      tf = np.arange(seconds * 30) / 30
      (root / "features" / "face" / f"{rec}.csv").write_text(
          "frame, face_id, timestamp, confidence, success, AU06_r, AU12_r\n" + "".join(
              f"{i}, 0, {x:.4f}, 0.98, 1, {np.sin(x + s):.3f}, {np.cos(x):.3f}\n"
              for i, x in enumerate(tf)))
  config = sewa_config.get_config()
  config.data.root = str(root)
  config.data.audio_csv_dir = "features/audio" if audio else ""
  config.data.face_csv_dir = "features/face" if face else ""
  config.cache_dir = str(tmp_path / "cache")
  config.model.fusion = "features"
  config.protocol.num_folds = 2
  config.train.max_epochs = 3
  return config


def test_pre_extracted_feature_csvs_replace_extraction(tmp_path, tiny_backbone):
  from lasca_jax.data.datasets import sewa  # pylint: disable=import-outside-toplevel
  config = _sewa_with_feature_csvs(tmp_path)
  recs = {r.recording_id: r for r in sewa.load_recordings(config.data)}
  r = recs["Train_DE_01"]
  assert r.feature_names == ("AU06_r", "AU12_r", "Loudness_sma3", "alphaRatio_sma3")
  assert r.modalities == ("face", "face", "audio", "audio")
  # On the 0.1 s label clock like extracted features: the mean of the source frames in each step.
  np.testing.assert_allclose(r.features[10:-1, 2], r.times[10:-1], atol=0.006)  # 10 samples/step
  np.testing.assert_allclose(r.features[1:-1, 1], np.cos(r.times[1:-1]), atol=0.01)
  out = pipeline.run(config, str(tmp_path / "run"))
  assert out["num_test_pairs"].sum() > 0
  # Their own lexicon names them in the prompts.
  (tmp_path / "SEWA" / "lex.csv").write_text("feature,phrase\nAU12_r,smiling mouth\n"
                                             "Loudness_sma3,loud voice\n")
  config.data.lexicon = "lex.csv"
  config.text.lexicon = "dataset"
  config.model.fusion = "text"
  config.text.backbone = tiny_backbone
  inputs = pipeline.prepare(config, cache.StageCache(config.cache_dir))
  text = " ".join(inputs.prompts.tolist())
  assert "smiling mouth" in text and "loud voice" in text
  # Only the audio CSVs and no extraction ever run: face is absent, audio runs alone.
  audio_only = _sewa_with_feature_csvs(tmp_path / "b", face=False)
  assert sewa.load_recordings(audio_only.data)[0].modalities == ("audio", "audio")
  with pytest.raises(ValueError, match=r"modality 'multimodal' needs \('face', 'audio'\)"):
    pipeline.run(audio_only, str(tmp_path / "run_b"))
  audio_only.features.modality = "audio"
  assert pipeline.run(audio_only, str(tmp_path / "run_b"))["num_test_pairs"].sum() > 0
  # A missing feature file is named.
  os.remove(tmp_path / "SEWA" / "features" / "face" / "Train_DE_02.csv")
  with pytest.raises(FileNotFoundError, match=r"Train_DE_02: pre-extracted face feature file "
                                              r".*features/face/Train_DE_02.csv is missing"):
    sewa.load_recordings(config.data)


def test_a_feature_npz_without_its_meta_keys_is_named(tmp_path):
  from lasca_jax.data.extract import store  # pylint: disable=import-outside-toplevel
  path = tmp_path / "r.npz"
  arrays = {"frame_index": np.arange(3), "frame_times": np.arange(3) / 25,
            "face": np.zeros((3, 58), np.float32), "face_valid": np.ones(3, bool),
            "audio_times": np.zeros(0), "mfcc": np.zeros((0, 15), np.float32)}
  store.save_features(str(path), arrays, {"version": store.FORMAT_VERSION, "fps": 25.0})
  with pytest.raises(ValueError, match=rf"feature file {path}: its meta lacks num_frames, "
                                       r"settings, settings.frame_stride, "
                                       r"settings.mfcc_hop_seconds"):
    store.load_features(str(path))
  store.save_features(str(path), arrays, {"version": store.FORMAT_VERSION, "fps": 25.0,
                                          "num_frames": 3, "settings": {
                                              "frame_stride": 1, "mfcc_hop_seconds": 0.01}})
  assert store.load_features(str(path))["meta"]["num_frames"] == 3


# ----------------------------------------------------------------------------- 5: rotation


def _reencode(src, out, frames, rotation):
  """``frames`` of ``src`` re-encoded to ``out``; with ``rotation`` the pixels are stored turned
  clockwise and the display matrix says to turn them back (a portrait phone video)."""
  import av  # pylint: disable=import-outside-toplevel
  with av.open(str(src)) as c:
    stream = c.streams.video[0]
    fps = stream.average_rate
    images = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), c.decode(stream))]
  with av.open(str(out), "w") as o:
    vs = o.add_stream("libx264", rate=fps)
    h, w = images[0].shape[:2]
    vs.width, vs.height = (h, w) if rotation else (w, h)
    vs.pix_fmt = "yuv420p"
    vs.options = {"crf": "12"}
    if rotation:
      vs.set_display_rotation(rotation)
    for img in images:
      stored = np.rot90(img, k=-rotation // 90) if rotation else img
      for packet in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(stored),
                                                         format="rgb24")):
        o.mux(packet)
    for packet in vs.encode():
      o.mux(packet)
  return str(out)


def test_a_rotated_phone_video_is_analysed_upright(tmp_path):
  import media_fixtures as mf  # pylint: disable=import-outside-toplevel
  from lasca_jax.data import types as data  # pylint: disable=import-outside-toplevel
  from lasca_jax.data.extract import runner, video  # pylint: disable=import-outside-toplevel
  model = mf.face_model()
  clip = mf.shared_file("media/retalking_1.mp4")
  plain = _reencode(clip, tmp_path / "plain.mp4", 24, 0)
  rotated = _reencode(clip, tmp_path / "rotated.mp4", 24, 90)
  assert video.display_rotation(rotated) == 90 and video.display_rotation(plain) == 0
  ref = video.extract_face(plain, model)
  up = video.extract_face(rotated, model)
  assert ref.valid.all() and up.valid.all()
  roll = data.FACE_FEATURE_NAMES.index("headRoll")
  blend = slice(0, len(data.BLENDSHAPE_NAMES))
  assert np.abs(up.values[:, roll] - ref.values[:, roll]).max() < 3.0          # degrees
  assert np.abs(up.values[:, blend] - ref.values[:, blend]).mean() < 0.02
  assert "display rotation 90 degrees: frames turned upright" in up.warnings
  # Ignoring the display matrix gives the error the issue describes: roll about 90 off.
  raw = video.extract_face(rotated, model, upright=False)
  off = np.abs(raw.values[:, roll] - ref.values[:, roll])
  assert np.nanmedian(off) > 60
  # Only a rotated video's extraction settings change (its old features are extracted again).
  settings = runner.Settings(face_model=model)
  assert runner.job_settings(runner.MediaJob("r", rotated, None, "x"), settings)[
      "display_rotation"] == 90
  assert "display_rotation" not in runner.job_settings(runner.MediaJob("p", plain, None, "x"),
                                                       settings)
