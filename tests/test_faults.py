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
