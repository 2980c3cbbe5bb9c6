"""Outputs a researcher can trust (issue 18): each case reproduced on tiny fixtures."""

import json
import os
import subprocess
import sys

import pytest

from lasca_jax.run import rundir
from conftest import ROOT


def _run_script(script, *args, env=None, timeout=300):
  env = dict(os.environ, HF_HUB_OFFLINE="1", **(env or {}))
  return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", script), *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- 7: from_json


def _from_json_error(path):
  from configs import from_json
  with pytest.raises(from_json.ConfigFileError) as err:
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
  from configs import affwild2, custom, from_json, sewa, synthetic
  for module in (affwild2, custom, sewa, synthetic):
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
