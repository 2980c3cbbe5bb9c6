"""Faults and bad input (issue 9): each case reproduced on tiny fixtures."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lasca_jax import cache, pipeline, validate
from conftest import ROOT, make_tiny_config


def _run_script(script, *args, env=None, timeout=300):
  env = dict(os.environ, HF_HUB_OFFLINE="1", **(env or {}))
  return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", script), *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- 7: config checks


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
               "seed=-1 (need an integer >= 0)", "text.salience_k=-1 (need an integer >= 1)",
               "features.min_valid_fraction=1.5 (need a number in (0, 1])",
               "pairs.target='joy' (need one of 'arousal', 'valence')"):
    assert part in message
  with pytest.raises(validate.ConfigError, match=r"protocol.num_folds=1 \(need an integer >= 2 for kfold"):
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
      "error: invalid configuration, 2 problems: seed=-1 (need an integer >= 0); "
      "train.batch_size=0 (need an integer >= 1)")


# ----------------------------------------------------------------------------- 1, 13: sweeps


def _sweep_cmd():
  sys.path.insert(0, os.path.join(ROOT, "experiments"))
  import sweep as sweep_cmd  # pylint: disable=import-outside-toplevel
  return sweep_cmd


def _small_sweep(tmp_path, backbone, **overrides):
  config = make_tiny_config(tmp_path / "cache", **{
      "sweep.modalities": ("visual",), "sweep.windows": (3.0,), "sweep.targets": ("arousal",),
      "sweep.backbones": (backbone,), "sweep.ablation_modalities": (),
      "sweep.simulated_baselines": False, "sweep.group_size": 1, **overrides})
  return config


def test_a_failing_sweep_configuration_is_recorded_and_the_rest_goes_on(tmp_path, tiny_backbone):
  from lasca_jax import sweep as sweep_lib  # pylint: disable=import-outside-toplevel
  config = _small_sweep(tmp_path, tiny_backbone, **{"sweep.margins": (0.1, 100.0),
                                                    "sweep.models": ("features",)})
  workdir = tmp_path / "sweep"
  summary = _sweep_cmd().run(config, str(workdir))
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
  summary = _sweep_cmd().run(config, str(tmp_path / "sweep"))
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


def pathlib_runs(root):
  return sorted(os.path.relpath(p.parent, root) for p in root.rglob("results.npz"))
