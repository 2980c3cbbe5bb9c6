"""Tests for lasca_jax.analysis.results: a run or a sweep directory read as one tidy table."""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from lasca_jax.analysis import report, results, tables


def config_of(margin=0.1, backbone="all-mpnet-base-v2", fusion="fused", **extra):
  config = {
      "data": {"name": "toy"},
      "features": {"modality": "visual", "window_seconds": 3.0},
      "pairs": {"margin": margin, "target": "arousal"},
      "model": {"fusion": fusion, "max_hidden": [250, 125]},
      "text": {"backbone": backbone, "lexicon": "llm"},
  }
  config.update(extra)
  return config


def write(root, name, config=None, folds=None, seed=0, failed=None, **arrays):
  """A run directory: config.json, results.npz of ``folds`` folds (seeded values), failed.json."""
  run = pathlib.Path(root) / name
  run.mkdir(parents=True, exist_ok=True)
  if config is not None:
    (run / "config.json").write_text(json.dumps(config))
  if folds is not None:
    rng = np.random.default_rng(seed)
    epochs = 4
    loss = rng.random((folds, epochs))
    loss[0, 2:] = np.nan  # fold 0 stopped early
    base = dict(test_accuracy=rng.random(folds), best_val_accuracy=rng.random(folds),
                best_epoch=rng.integers(1, epochs + 1, folds).astype(np.int32),
                epochs_run=np.full(folds, epochs, np.int32),
                num_train_pairs=rng.integers(50, 100, folds).astype(np.int32),
                num_val_pairs=rng.integers(5, 10, folds).astype(np.int32),
                num_test_pairs=rng.integers(10, 30, folds).astype(np.int32),
                train_loss=loss, val_accuracy=rng.random((folds, epochs)),
                num_params=np.int64(1000 + folds), input_dim=np.int64(32))
    base.update(arrays)
    np.savez(run / "results.npz", **base)
  if failed is not None:
    (run / "failed.json").write_text(failed if isinstance(failed, str) else json.dumps(failed))
  return run


@pytest.fixture
def sweep(tmp_path):
  """Four finished runs (3 or 5 folds) differing in margin and backbone, plus broken ones."""
  root = tmp_path / "sweep"
  write(root, "a/m0.1_mpnet", config_of(0.1), folds=3, seed=1)
  write(root, "a/m0.2_mpnet", config_of(0.2), folds=3, seed=2)
  write(root, "b/m0.1_minilm", config_of(0.1, "all-MiniLM-L12-v2"), folds=5, seed=3)
  write(root, "b/m0.1_features", config_of(0.1, fusion="features", model_label="Own"), folds=5,
        seed=4)
  failure = {"stage": "prepare", "error": "ValueError", "reason": "no pairs", "config":
             config_of(0.9)}
  write(root, "c/failed", config_of(0.9), failed=failure)
  write(root, "c/retried", config_of(0.2, "all-MiniLM-L12-v2"), folds=3, seed=5, failed=failure)
  write(root, "c/killed", config_of(0.2, "all-MiniLM-L12-v2"))
  write(root, "c/no_config", None, folds=3)
  write(root, "c/broken", None, failed="{not json")
  (root / "c" / "empty").mkdir()
  return root


def finished(frame):
  return frame[frame.status == "ok"]


def test_one_row_per_run_and_fold_with_the_values_of_results_npz(sweep):
  frame = results.load(sweep)
  ok = finished(frame)
  assert len(ok) == 3 + 3 + 5 + 5 + 3  # the retried run counts: its results are newer
  assert len(frame) == len(ok) + 4     # one row for each failed / unfinished run
  assert ok.groupby("run", sort=False).size().to_dict() == {
      "a/m0.1_mpnet": 3, "a/m0.2_mpnet": 3, "b/m0.1_features": 5, "b/m0.1_minilm": 5,
      "c/retried": 3}
  for run, rows in ok.groupby("run"):
    with np.load(sweep / run / "results.npz") as res:
      assert rows.fold.tolist() == list(range(res["test_accuracy"].shape[0]))
      for name in results.FOLD_METRICS:
        if name not in res.files:   # written before the array existed: missing, not made up
          assert rows[name].isna().all()
          continue
        np.testing.assert_array_equal(rows[name].to_numpy(res[name].dtype), res[name])
      for name in results.RUN_METRICS:
        assert set(rows[name]) == {int(res[name])}
    assert set(rows.path) == {str(sweep / run)}
  assert frame.fold.dtype == "Int64" and ok.best_epoch.dtype == "Int64"
  assert ok.test_accuracy.dtype == np.float64


def test_varying_config_fields_are_columns_and_constant_ones_are_not(sweep):
  frame = results.load(sweep)
  # margin, backbone, fusion and model_label differ; nothing else does (failed runs count).
  assert results.config_columns(frame) == ["model.fusion", "pairs.margin", "text.backbone"]
  constant = frame.attrs["constant"]
  assert constant["data.name"] == "toy" and constant["features.window_seconds"] == 3.0
  assert constant["model.max_hidden"] == (250, 125)
  ok = finished(frame).set_index(["run", "fold"])
  assert ok.loc[("a/m0.2_mpnet", 2), "pairs.margin"] == 0.2
  assert ok.loc[("b/m0.1_minilm", 0), "text.backbone"] == "all-MiniLM-L12-v2"
  labels = finished(frame).drop_duplicates("run").set_index("run").model_label.to_dict()
  assert labels == {"a/m0.1_mpnet": "MPNet(F)", "a/m0.2_mpnet": "MPNet(F)",
                    "b/m0.1_features": "Own", "b/m0.1_minilm": "MiniLM(F)",
                    "c/retried": "MiniLM(F)"}
  kept = results.load(sweep, keep=["data.name", "features.modality"])
  assert results.config_columns(kept) == ["data.name", "features.modality", "model.fusion",
                                          "pairs.margin", "text.backbone"]
  assert set(finished(kept)["data.name"]) == {"toy"}
  assert kept.loc[kept.run == "c/no_config", "data.name"].isna().all()  # no config read
  ok = finished(frame)
  assert results.field(ok, "data.name").tolist() == ["toy"] * len(ok)
  assert results.field(ok, "pairs.margin").equals(ok["pairs.margin"])
  with pytest.raises(KeyError, match="no config field 'data.nope'"):
    results.field(frame, "data.nope")


def test_a_field_only_some_runs_have_is_a_column_missing_elsewhere(tmp_path):
  write(tmp_path, "old", config_of(), folds=2)
  write(tmp_path, "new", config_of(train={"lanes": 4}), folds=2)
  frame = results.load(tmp_path)
  assert results.config_columns(frame) == ["train.lanes"]
  lanes = frame.set_index("run")["train.lanes"]
  assert lanes.loc["new"].tolist() == [4, 4] and lanes.loc["old"].isna().all()


def test_failed_and_unfinished_runs_are_rows_with_their_reason(sweep):
  frame = results.load(sweep)
  other = frame[frame.status != "ok"].set_index("run")
  assert other.status.to_dict() == {"c/broken": "failed", "c/failed": "failed",
                                    "c/killed": "incomplete", "c/no_config": "incomplete"}
  assert other.loc["c/failed", "reason"] == "prepare: ValueError: no pairs"
  assert other.loc["c/broken", "reason"].startswith("unreadable failed.json")
  assert other.loc["c/killed", "reason"].startswith("no results.npz")
  assert other.loc["c/no_config", "reason"] == "no config.json"
  assert other.fold.isna().all() and other.test_accuracy.isna().all()
  assert other.num_test_pairs.isna().all()
  assert other.loc["c/failed", "pairs.margin"] == 0.9   # its config is read too
  assert results.failures(frame) == [("c/broken", other.loc["c/broken", "reason"]),
                                     ("c/failed", "prepare: ValueError: no pairs")]
  assert [pathlib.Path(r.path).name for r in results.records(frame)] == [
      "m0.1_mpnet", "m0.2_mpnet", "m0.1_features", "m0.1_minilm", "retried"]
  assert set(frame.status) <= set(results.STATUSES)


def test_failures_of_one_dataset(tmp_path):
  """A report for one dataset lists that dataset's failures, and those of unknown dataset."""
  reason = {"stage": "prepare", "error": "ValueError", "reason": "no pairs"}
  write(tmp_path, "sewa/ok", config_of(data={"name": "sewa"}), folds=2)
  write(tmp_path, "sewa/bad", failed=dict(reason, config=config_of(data={"name": "sewa"})))
  write(tmp_path, "affwild2/bad", failed=dict(reason, config=config_of(data={"name": "affwild2"})))
  write(tmp_path, "unknown/bad", failed="{not json")
  frame = results.load(tmp_path)
  runs = lambda found: sorted(run for run, _ in found)
  assert runs(results.failures(frame)) == ["affwild2/bad", "sewa/bad", "unknown/bad"]
  assert runs(results.failures(frame, "sewa")) == ["sewa/bad", "unknown/bad"]
  assert runs(results.failures(frame, "affwild2")) == ["affwild2/bad", "unknown/bad"]
  assert runs(results.failures(frame[frame.status == "ok"], "sewa")) == []
  # All readable configs of one dataset: its name is a constant, not given to the unknown run.
  (tmp_path / "affwild2" / "bad" / "failed.json").unlink()
  frame = results.load(tmp_path)
  assert "data.name" not in frame.columns and frame.attrs["no_config"] == ["unknown/bad"]
  assert runs(results.failures(frame, "affwild2")) == ["unknown/bad"]


def test_records_match_the_table(sweep):
  frame = results.load(sweep)
  recs = {pathlib.Path(r.path).relative_to(sweep).as_posix(): r for r in results.records(frame)}
  r = recs["b/m0.1_minilm"]
  with np.load(sweep / "b/m0.1_minilm/results.npz") as res:
    np.testing.assert_array_equal(r.accuracies, res["test_accuracy"])
    np.testing.assert_array_equal(r.best_epoch, res["best_epoch"])
    np.testing.assert_array_equal(r.num_pairs["val"], res["num_val_pairs"])
  assert (r.dataset, r.modality, r.model_label, r.fusion, r.lexicon, r.target) == (
      "toy", "visual", "MiniLM(F)", "fused", "llm", "arousal")
  assert r.column == ("arousal", 3.0, 0.1) and r.control == ""
  assert recs["b/m0.1_features"].model_label == "Own"
  assert [r.path for r in results.records(frame, dataset="toy")] == [r.path for r in recs.values()]
  assert results.records(frame, dataset="other") == []
  # A run written before a field existed: the record says which file lacks it.
  write(sweep, "d/no_target", config_of(pairs={"margin": 0.1}), folds=3)
  with pytest.raises(ValueError, match=r"d/no_target/config.json: missing field pairs.target"):
    results.records(results.load(sweep))


def test_one_run_directory(tmp_path):
  run = write(tmp_path, "run", config_of(), folds=4)
  frame = results.load(run)
  assert frame.run.tolist() == ["."] * 4 and frame.fold.tolist() == [0, 1, 2, 3]
  assert results.config_columns(frame) == []  # one run: nothing varies
  assert frame.attrs["constant"]["pairs.margin"] == 0.1
  (r,) = results.records(frame)
  assert r.path == str(run) and r.margin == 0.1


def test_curves_give_the_arrays_back(sweep):
  frame = results.load(sweep)
  curves = results.curves(frame)
  assert set(curves.run) == set(finished(frame).run)
  assert len(curves) == (3 + 3 + 5 + 5 + 3) * 4
  for run, part in curves.groupby("run"):
    with np.load(sweep / run / "results.npz") as res:
      for name in ("train_loss", "val_accuracy"):
        back = part.pivot(index="fold", columns="epoch", values=name).to_numpy()
        np.testing.assert_array_equal(back, res[name])  # NaN after early stopping kept
  no_curves = write(sweep.parent / "nc", "r", config_of(), folds=2)
  with np.load(no_curves / "results.npz") as res:
    arrays = {k: res[k] for k in res if k != "train_loss"}
  np.savez(no_curves / "results.npz", **arrays)
  assert results.curves(results.load(no_curves)).empty


def test_bad_input_names_the_file(tmp_path):
  with pytest.raises(ValueError, match="not a directory"):
    results.load(tmp_path / "missing")
  run = write(tmp_path, "no_acc", config_of(), folds=2)
  with np.load(run / "results.npz") as res:
    arrays = {k: res[k] for k in res if k != "test_accuracy"}
  np.savez(run / "results.npz", **arrays)
  with pytest.raises(ValueError, match=r"no_acc/results.npz: no test_accuracy"):
    results.load(tmp_path)
  (run / "results.npz").write_bytes(b"PK\x03\x04 truncated")
  with pytest.raises(ValueError, match=r"no_acc/results.npz: unreadable"):
    results.load(tmp_path)


def test_report_ignores_an_unfinished_run_and_lists_failed_ones(tmp_path):
  from test_tables import BASE, NOISE, write_run  # pylint: disable=import-outside-toplevel
  sweep = tmp_path / "sweep"
  write_run(sweep, "f", modality="visual", fusion="features", acc=BASE)
  write_run(sweep, "x", modality="visual", fusion="fused", acc=BASE + 0.05 + NOISE)
  report.make_report(sweep, tmp_path / "before", cues=False, curves=True)
  # A run stopped before its results, an empty folder, and a configuration that failed.
  write(sweep, "killed", json.loads((sweep / "x" / "config.json").read_text()))
  (sweep / "empty").mkdir()
  write(sweep, "failed", json.loads((sweep / "f" / "config.json").read_text()),
        failed={"stage": "train", "error": "RuntimeError", "reason": "out of memory"})
  written = report.make_report(sweep, tmp_path / "after", cues=False, curves=True)
  before = sorted(p.relative_to(tmp_path / "before") for p in (tmp_path / "before").rglob("*"))
  after = sorted(p.relative_to(tmp_path / "after") for p in (tmp_path / "after").rglob("*"))
  assert before == after
  for rel in after:
    if rel.suffix in (".csv", ".md", ".tex") and rel.name != "report.md":
      assert (tmp_path / "after" / rel).read_text() == (tmp_path / "before" / rel).read_text()
  text = pathlib.Path(written["report"][0]).read_text()
  assert "2 runs under" in text and "| failed | train: RuntimeError: out of memory |" in text
  assert "killed" not in text
  frame = results.load(sweep)
  assert frame.set_index("run").loc[["killed", "failed"], "status"].tolist() == [
      "incomplete", "failed"]


def test_tables_from_the_loader_equal_tables_from_the_files(tmp_path):
  """The Wilcoxon marks and means of a table built through the loader, checked cell by cell
  against the fold accuracies read straight from each results.npz."""
  from test_tables import BASE, NOISE, write_run  # pylint: disable=import-outside-toplevel
  from lasca_jax.analysis import stats  # pylint: disable=import-outside-toplevel
  paths = {"Features": write_run(tmp_path, "f", modality="audio", fusion="features", acc=BASE),
           "MPNet": write_run(tmp_path, "t", modality="audio", fusion="text",
                              acc=BASE + 0.05 + NOISE),
           "MPNet(F)": write_run(tmp_path, "x", modality="audio", fusion="fused",
                                 acc=BASE + 0.05)}
  table = tables.backbone_table(results.records(results.load(tmp_path)))
  acc = {label: np.load(p / "results.npz")["test_accuracy"] for label, p in paths.items()}
  expected = stats.compare_to_best(acc)
  col = tables.COLUMNS[0]
  for label, c in expected.items():
    cell = table.cells[("Audio", label, col)]
    assert (cell.mean, cell.is_best, cell.on_par) == (c.mean, c.is_best, c.on_par)
    np.testing.assert_equal(cell.p_value, c.p_value)
    assert cell.folds == tuple(acc[label])


def test_the_synthetic_sweep_reads_as_one_row_per_run_and_fold(swept):
  root, config, summary = swept
  runs_dir = root / "out" / "runs"
  frame = results.load(runs_dir)
  run_dirs = sorted(p.parent for p in runs_dir.rglob("results.npz"))
  assert (frame.status == "ok").all() and frame.run.nunique() == summary["configurations"]
  assert len(frame) == summary["configurations"] * config.protocol.num_folds
  configs = [results.flatten({k: v for k, v in json.loads((d / "config.json").read_text()).items()
                              if k != "model_label"}) for d in run_dirs]
  names = set().union(*configs)
  varying = sorted(k for k in names if len({c.get(k, "<missing>") for c in configs}) > 1)
  assert results.config_columns(frame) == varying
  assert {"text.lexicon", "text.salience", "features.modality", "features.window_seconds",
          "model.fusion"} <= set(varying)
  assert config.sweep.margins == (0.1,) and "pairs.margin" not in varying
  assert frame.attrs["constant"]["protocol.num_folds"] == config.protocol.num_folds
  for d in run_dirs[::7]:
    rows = frame[frame.path == str(d)]
    with np.load(d / "results.npz") as res:
      np.testing.assert_array_equal(rows.test_accuracy.to_numpy(), res["test_accuracy"])
      np.testing.assert_array_equal(rows.num_test_pairs.to_numpy(int), res["num_test_pairs"])
    saved = json.loads((d / "config.json").read_text())
    assert set(rows.model_label) == {saved["model_label"]}
    assert set(rows["text.lexicon"]) == {saved["text"]["lexicon"]}
  assert pd.api.types.is_float_dtype(frame["features.window_seconds"])
