"""Model bundles: written by every run, reloaded bit-identically, and their bad-input errors."""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from lasca_jax.inference import ensemble
from lasca_jax.model import bundle
from lasca_jax.run import pipeline
from conftest import make_tiny_config


@pytest.fixture(scope="module", params=["features", "fused"])
def run(request, tmp_path_factory, tiny_backbone):
  """A runlocal synthetic run (3 folds) with its bundle."""
  root = tmp_path_factory.mktemp(f"bundle_{request.param}")
  config = make_tiny_config(root / "cache", **{"model.fusion": request.param,
                                               "text.backbone": tiny_backbone})
  results = pipeline.run(config, str(root / "run"))
  return str(root / "run"), config, results


def test_bundle_reproduces_the_test_probabilities_bit_for_bit(run):
  run_dir, config, results = run
  predictor = ensemble.load_bundle(run_dir)
  prob = predictor.test_probabilities()
  assert prob.dtype == results["test_prob"].dtype
  np.testing.assert_array_equal(prob, results["test_prob"])
  saved = np.load(os.path.join(run_dir, "results.npz"))
  np.testing.assert_array_equal(prob, saved["test_prob"])
  meta = predictor.meta
  assert meta["num_folds"] == config.protocol.num_folds == prob.shape[0]
  assert len(meta["feature_names"]) == 73 and meta["modalities"].count("audio") == 15
  assert meta["target"] == config.pairs.target and meta["window_seconds"] == 3.0
  assert meta["config"]["model"]["fusion"] == config.model.fusion
  if config.model.fusion == "fused":
    assert meta["phrases"][meta["feature_names"].index("mouthSmileLeft")] == (
        "left smile smirk positivity")


def test_the_bundle_leaves_results_unchanged(run, tmp_path):
  run_dir, config, results = run
  # Same config in a fresh directory: identical arrays, and results.npz holds no bundle data.
  again = pipeline.run(config, str(tmp_path / "again"))
  for key in results:
    if not key.startswith("_"):
      np.testing.assert_array_equal(results[key], again[key])
  assert set(np.load(os.path.join(run_dir, "results.npz")).files) == {
      k for k in results if not k.startswith("_")}


def test_a_run_without_a_bundle_is_a_one_line_error(run, tmp_path):
  old = tmp_path / "old_run"
  shutil.copytree(run[0], old, ignore=shutil.ignore_patterns("bundle"))
  with pytest.raises(bundle.BundleError, match=r"bundle\.json does not exist.*rerun") as e:
    ensemble.load_bundle(str(old))
  assert "\n" not in str(e.value) and str(old) in str(e.value)
  with pytest.raises(bundle.BundleError, match="does not exist"):
    ensemble.load_bundle(str(tmp_path / "nowhere"))


def test_an_altered_or_unknown_backbone_bundle_is_a_one_line_error(run, tmp_path):
  copy = tmp_path / "copy"
  shutil.copytree(run[0], copy)
  meta_path = copy / "bundle" / "bundle.json"
  meta = json.loads(meta_path.read_text())
  meta["fusion"], meta["backbone"], meta["model_path"] = "fused", "no-such-encoder", ""
  meta_path.write_text(json.dumps(meta))
  with pytest.raises(bundle.BundleError, match=r"bundle\.json: text backbone 'no-such-encoder' "
                     r"is not available here.*--text_model_path"):
    ensemble.load_bundle(str(copy))
  with open(copy / "bundle" / "params.msgpack", "ab") as f:
    f.write(b"x")
  with pytest.raises(bundle.BundleError, match=r"params\.msgpack is missing or does not match"):
    ensemble.load_bundle(str(copy))


def test_sweep_runs_write_bundles(swept):
  root, _, _ = swept
  runs = sorted((root / "out" / "runs").glob("multimodal/w3s_m0.1/arousal/*/results.npz"))
  assert runs
  for res in runs:
    predictor = ensemble.load_bundle(str(res.parent))
    if predictor.fusion == "baseline":
      continue
    np.testing.assert_array_equal(predictor.test_probabilities(), np.load(res)["test_prob"])
  # The sweep report explains one LaScA run per target from its bundle.
  report = root / "out" / "report"
  assert "## Cue attributions" in (report / "report.md").read_text()
  cues = pd.read_csv(report / "tables" / "cues_arousal.csv")
  assert {"cue", "phrase", "modality", "source", "times_salient", "mean_contribution",
          "std_over_folds"} <= set(cues.columns)
  assert set(cues["source"]) == {"text", "feature"} and len(cues) == 2 * 73
  assert (report / "figures" / "cues_arousal.png").stat().st_size > 0


def test_the_notebook_shows_cue_attributions(swept, monkeypatch):
  from test_notebook import run_notebook  # pylint: disable=import-outside-toplevel
  root, _, _ = swept
  _, shown = run_notebook(root / "out" / "runs", monkeypatch)
  md = "\n".join(s for kind, s in shown if kind == "md")
  assert "## Cue attributions" in md and "Deletion curve" in md
  assert any(str(p).endswith("cues_arousal.png") for kind, p in shown if kind == "img")


@pytest.mark.parametrize("overrides", [
    {"model.fusion": "mask"},
    {"model.fusion": "random_text", "text.random_norm": 1.0},
    {"model.fusion": "features", "model.hidden_from": "fused"},
], ids=["mask", "random_text", "capacity"])
def test_control_runs_reproduce_bit_for_bit(overrides, tmp_path, tiny_backbone):
  config = make_tiny_config(tmp_path / "cache", **{"text.backbone": tiny_backbone, **overrides})
  results = pipeline.run(config, str(tmp_path / "run"))
  predictor = ensemble.load_bundle(str(tmp_path / "run"))
  np.testing.assert_array_equal(predictor.test_probabilities(), results["test_prob"])
