"""A learner that cannot fail silently (issue 20): degenerate folds are flagged everywhere
results are read, and the remedies (options, off by default) do what they say."""

import json
import logging

import numpy as np
import pytest

from configs import synthetic
from lasca_jax.analysis import render, report, results as results_lib
from lasca_jax.inference import ensemble
from lasca_jax.run import pipeline
from conftest import make_tiny_config

SMALL_CHANGES = {"data.change_scale": 0.05, "data.num_subjects": 12, "protocol.num_folds": 6}


@pytest.fixture(scope="module")
def shrunk(tmp_path_factory):
  """Synthetic data whose window-to-window changes are shrunk to real-data size: the paper's
  head learns nothing in most folds; standardized pair differences rescue them."""
  root = tmp_path_factory.mktemp("learner")
  runs = {}
  for name, extra in (("paper", {}), ("standardize", {"train.standardize": True})):
    config = make_tiny_config(root / "cache", **SMALL_CHANGES, **extra)
    runs[name] = (config, pipeline.run(config, str(root / "sweep" / name)))
  return root, runs


def test_degenerate_folds_are_flagged_in_results_log_table_and_report(shrunk, caplog):
  root, runs = shrunk
  _, paper = runs["paper"]
  flags = paper["degenerate"]
  assert flags.dtype == bool and flags.shape == (6,) and flags.sum() >= 3
  # Each flagged fold decides all test pairs one way or kept epoch 1 at chance: exact 0.5 on
  # validation pairs, which come in both orders.
  for k in np.flatnonzero(flags):
    decided = paper["test_prob"][k][paper["test_mask"][k]] > 0.5
    assert (decided.all() or not decided.any() or
            (paper["best_epoch"][k] == 1 and paper["best_val_accuracy"][k] == 0.5))
  events = [json.loads(l) for l in open(root / "sweep" / "paper" / "log.jsonl")]
  trained = next(e for e in events if e["event"] == "trained")
  assert trained["degenerate_folds"] == np.flatnonzero(flags).tolist()
  assert trained["change"]["features"] == pytest.approx(float(np.mean(paper["change_features"])),
                                                        abs=1e-5)
  frame = results_lib.load(root / "sweep")
  ours = frame[frame["run"] == "paper"]
  assert ours["degenerate"].tolist() == flags.astype(int).tolist()
  report.make_report(root / "sweep", root / "report", cues=False, figures=False)
  md = (root / "report" / "report.md").read_text()
  assert f"Note: 1 of 2 runs have folds whose head learned nothing (cells marked " in md
  assert f"`paper` ({int(flags.sum())} of 6)" in md
  assert render.DEGENERATE_NOTE in md and render.DEGENERATE_MARK + " |" in md
  assert "Learner settings of the 2 runs: standardized pair differences: False (1 runs), " \
         "True (1 runs) (the paper: False)" in md


def test_the_warning_names_the_cause_and_the_remedy(tmp_path, caplog):
  config = make_tiny_config(tmp_path / "cache", **SMALL_CHANGES)
  with caplog.at_level(logging.WARNING):
    out = pipeline.run(config, None)
  assert out["degenerate"].any()
  assert (f"{int(out['degenerate'].sum())} of 6 folds (fold " in caplog.text and
          "learned nothing" in caplog.text and "small window-to-window changes of the input "
          "(median per part: features 0.0" in caplog.text and
          "--config.train.standardize=True" in caplog.text)


def test_standardized_differences_rescue_the_folds_and_the_bundle_needs_no_scale(shrunk):
  root, runs = shrunk
  _, paper = runs["paper"]
  _, fixed = runs["standardize"]
  assert fixed["degenerate"].sum() < paper["degenerate"].sum()
  assert fixed["test_accuracy"].mean() > paper["test_accuracy"].mean()
  # The trained scale is folded into the first layer: the bundle decides on the raw z as training
  # did on the standardized one.
  predictor = ensemble.load_bundle(str(root / "sweep" / "standardize"))
  np.testing.assert_allclose(predictor.test_probabilities(), fixed["test_prob"], atol=1e-5)


def test_min_epochs_and_the_loss_monitor(tmp_path):
  config = make_tiny_config(tmp_path / "cache", **{"train.min_epochs": 12, "train.max_epochs": 15})
  out = pipeline.run(config, None)
  assert (out["epochs_run"] >= 12).all()
  for monitor in ("accuracy", "loss"):
    run = pipeline.run(make_tiny_config(tmp_path / "cache", **{"train.monitor": monitor}), None)
    # The curve is validation accuracy under either monitor, and the kept epoch's entry is the
    # reported best validation accuracy.
    kept = run["val_accuracy"][np.arange(3), run["best_epoch"] - 1]
    np.testing.assert_allclose(kept, run["best_val_accuracy"], atol=1e-7)
    assert np.nanmin(run["val_accuracy"]) >= 0 and np.nanmax(run["val_accuracy"]) <= 1


def test_no_fold_of_the_main_synthetic_data_is_degenerate(tmp_path):
  """The full synthetic dataset (30 subjects x 4 minutes, 15 folds) with the features model: the
  paper's head learns in every fold, so nothing is flagged."""
  config = synthetic.get_config()
  config.cache_dir = str(tmp_path / "cache")
  config.model.fusion = "features"
  out = pipeline.run(config, None)
  assert out["degenerate"].shape == (15,) and not out["degenerate"].any()
  assert 0.04 < float(np.mean(out["change_features"])) < 0.2


def _selection_inputs(tmp_path):
  from lasca_jax.run import cache
  config = make_tiny_config(tmp_path / "cache", **SMALL_CHANGES)
  return pipeline.prepare(config, cache.StageCache(config.cache_dir))


def test_selection_reads_validation_only_and_keeps_the_best_point(tmp_path):
  import dataclasses
  from lasca_jax.model import train
  inputs = _selection_inputs(tmp_path)
  settings = dataclasses.replace(inputs.train_settings,
                                 select=train.parse_select("alpha=1,0.01;standardize=false,true"))
  assert len(settings.grid()) == 4 and settings.grid()[0]["alpha"] == 1.0
  seeds, numbers, per_fold = train.fold_units(0, inputs.num_folds, inputs.pairs)
  out = train.train_units(settings, seeds, numbers, inputs.z, per_fold, inputs.folds)
  sel = out.selection
  assert sel.val_accuracy.shape == (inputs.num_folds, 4)
  np.testing.assert_array_equal(sel.choice, np.argmax(sel.val_accuracy, axis=1))
  np.testing.assert_array_equal(out.val_accuracy,
                                sel.val_accuracy[np.arange(inputs.num_folds), sel.choice])
  # Poisoned test labels (every fold's test pairs flipped in its own copy of the pairs): the
  # same choices and validation scores, other test accuracies.
  label = np.array(np.broadcast_to(per_fold.label, per_fold.first.shape))
  for k in range(inputs.num_folds):
    idx = inputs.folds.test_idx[k][inputs.folds.test_mask[k]]
    label[k, idx] = 1 - label[k, idx]
  poisoned = train.train_units(settings, seeds, numbers, inputs.z,
                               per_fold._replace(label=label), inputs.folds)
  np.testing.assert_array_equal(poisoned.selection.choice, sel.choice)
  np.testing.assert_array_equal(poisoned.selection.val_accuracy, sel.val_accuracy)
  np.testing.assert_allclose(poisoned.test_accuracy, 1.0 - out.test_accuracy, atol=1e-6)


def test_a_selected_run_records_its_choices(tmp_path):
  config = make_tiny_config(tmp_path / "cache", **SMALL_CHANGES,
                            **{"train.select": "standardize=false,true"})
  out = pipeline.run(config, str(tmp_path / "run"))
  assert out["select_val_accuracy"].shape == (6, 2)
  assert out["selected_standardize"].tolist() == [bool(c) for c in out["select_choice"]]
  trained = next(e for e in map(json.loads, open(tmp_path / "run" / "log.jsonl"))
                 if e["event"] == "trained")
  assert trained["selected"] == {"standardize": out["selected_standardize"].tolist()}
  # The bundle of a selected run decides as the run did (each fold its own point).
  predictor = ensemble.load_bundle(str(tmp_path / "run"))
  np.testing.assert_allclose(predictor.test_probabilities(), out["test_prob"], atol=1e-5)


@pytest.mark.parametrize("spec,message", [
    ("alpha", "'alpha' is not <setting>=<v1>,<v2>,... of alpha, learning_rate"),
    ("beta=1", "'beta=1' is not <setting>=<v1>,<v2>"),
    ("alpha=1;alpha=2", "alpha is given twice"),
    ("learning_rate=0", "learning_rate=0 is out of range"),
    ("standardize=maybe", "standardize=maybe is not true/false"),
    ("monitor=f1", "monitor=f1 is not accuracy or loss"),
    ("min_epochs=", "min_epochs has no values"),
])
def test_a_bad_select_is_one_line_naming_the_field(spec, message):
  from lasca_jax.model import train
  with pytest.raises(ValueError) as err:
    train.parse_select(spec)
  assert str(err.value).startswith(f"train.select={spec!r}: ") and message in str(err.value)


def test_the_logistic_head_matches_scikit_learn(tmp_path):
  """Logistic regression on the same pair differences agrees with scikit-learn's
  LogisticRegression (lbfgs, C=1, run to convergence) fold by fold to 1e-3 in accuracy."""
  from sklearn.linear_model import LogisticRegression
  config = make_tiny_config(tmp_path / "cache", **{"model.head": "logistic"})
  out = pipeline.run(config, str(tmp_path / "run"))
  from lasca_jax.run import cache
  inputs = pipeline.prepare(config, cache.StageCache(config.cache_dir))
  p, f = inputs.pairs, inputs.folds
  for k in range(inputs.num_folds):
    z = inputs.z[k]
    tr = f.train_idx[k][:f.train_count[k]]
    te = f.test_idx[k][f.test_mask[k]]
    x = lambda idx: z[p.second[idx]] - z[p.first[idx]]
    ref = LogisticRegression(C=1.0, max_iter=5000, tol=1e-8).fit(x(tr), p.label[tr])
    theirs = float(np.mean(ref.predict(x(te)) == p.label[te]))
    assert abs(out["test_accuracy"][k] - theirs) <= 1e-3, (k, out["test_accuracy"][k], theirs)
    assert out["epochs_run"][k] < 1000          # converged before the iteration cap
  assert json.load(open(tmp_path / "run" / "config.json"))["model_label"] == "Logistic regression"
  # Its bundle is a one-layer model that re-decides the test pairs as the run did.
  predictor = ensemble.load_bundle(str(tmp_path / "run"))
  np.testing.assert_allclose(predictor.test_probabilities(), out["test_prob"], atol=1e-5)


def test_a_sweep_adds_the_baselines_without_language(tmp_path):
  from lasca_jax.run import sweep as sweep_lib, validate
  config = make_tiny_config(tmp_path / "cache")
  with config.unlocked():
    config.sweep.modalities = ("multimodal",)
    config.sweep.windows, config.sweep.margins, config.sweep.targets = (3.0,), (0.1,), ("arousal",)
    config.sweep.models = ("features", "fused")
    config.sweep.backbones = ("all-MiniLM-L6-v2",)
    config.sweep.controls = ("logistic", "tuned")
    config.sweep.ablation_lexicons = ()
  runs = dict(sweep_lib.expand(config))
  heads = {d: (c.model.head, c.train.select, c.model_label) for d, c in runs.items()}
  assert sorted(v for v in heads.values()) == sorted([
      ("mlp", "", "Features"), ("mlp", "", "MiniLM-L6(F)"),
      ("logistic", "", "Logistic regression"),
      ("mlp", config.sweep.tune_select, "Features")])
  assert len(set(runs)) == 4      # the tuned features have a directory of their own
  validate.check(config, sweep=True)
  with config.unlocked():
    config.sweep.tune_select = "alpha=zero"
  with pytest.raises(validate.ConfigError, match=r"sweep.tune_select='alpha=zero' \(need a "
                     r"train.select grid for the 'tuned' control"):
    validate.check(config, sweep=True)
