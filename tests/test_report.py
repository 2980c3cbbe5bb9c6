"""Tests for lasca_jax.analysis.report: one call writes every table and figure of a sweep."""

import sys
import pathlib

import numpy as np
import pytest

from lasca_jax.analysis import render, report, results, tables
from lasca_jax.run import labels

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_tables import BASE, NOISE, write_run  # noqa: E402  pylint: disable=g-import-not-at-top


def test_make_report(tmp_path):
  sweep = tmp_path / "sweep"
  col = dict(target="valence", window=5.0, margin=0.2)
  write_run(sweep, "f", modality="visual", fusion="features", acc=BASE, **col)
  write_run(sweep, "t", modality="visual", fusion="text", acc=BASE + 0.05 + NOISE, **col)
  write_run(sweep, "x", modality="visual", fusion="fused", acc=BASE + 0.05, **col)
  write_run(sweep, "x_feat", modality="visual", fusion="fused", lexicon="feature_name",
            acc=BASE + 0.01, **col)
  write_run(sweep, "swin", modality="visual", fusion="features", label="SwinFace",
            acc=BASE + 0.06, **col)
  out = tmp_path / "report"
  written = report.make_report(sweep, out, lexicon_backbones=["MPNet(F)"],
                                 lexicon_modality="visual", curves=True)
  names = sorted(pathlib.Path(p).name for p in written["tables"])
  assert names == sorted(f"{t}.{e}" for t in ("backbones", "comparison", "lexicon")
                         for e in ("md", "tex", "csv"))
  comparison = render.read_csv(out / "tables" / "comparison.csv")
  key = ("Visual", "SwinFace", ("valence", 5.0, 0.2))
  assert comparison.cells[key].is_best
  assert comparison.blocks == (("Visual", ("SwinFace", tables.LASCA_ROW)),)
  figs = {pathlib.Path(p).relative_to(out).as_posix() for p in written["figures"]}
  assert "figures/accuracy/backbones/Visual_valence_5s_20.png" in figs
  assert "figures/pairs_visual.png" in figs
  assert sum(f.startswith("figures/curves/") for f in figs) == 5
  text = (out / "report.md").read_text()
  assert text.count("| Visual |") == 3 and "figures/pairs_visual.png" in text
  with pytest.raises(ValueError, match="no run"):
    report.make_report(sweep, out, dataset="nope")
  assert np.all([pathlib.Path(p).stat().st_size > 0 for p in written["figures"]])
  lex = render.read_csv(out / "tables" / "lexicon.csv")
  assert lex.blocks == (("MPNet(F)", ("Feature", "LLM (ours)")),)
  assert lex.cells[("MPNet(F)", "LLM (ours)", ("valence", 5.0, 0.2))].is_best


def test_prompt_figure_uses_fold_and_usable_windows(tmp_path):
  run = write_run(tmp_path, "r", modality="audio", fusion="fused", acc=BASE, window=5.0)
  with np.load(run / "results.npz") as f:
    arrays = dict(f)
  arrays.update(prompts=np.array(["a", "b", "c"]),
                prompt_index=np.array([[0, 0, 1, 2, 0], [2, 2, 2, 2, 2]]),
                usable_windows=np.array([True, True, True, False, True]))
  np.savez(run / "results.npz", **arrays)
  assert report.run_prompts(run).tolist() == ["a", "a", "b", "a"]
  assert report.run_prompts(run, fold=1).tolist() == ["c"] * 4
  paths = report.prompt_figures(results.records(results.load(tmp_path)), tmp_path / "figs")
  assert [pathlib.Path(p).name for p in paths] == ["prompts_audio_5s.png"]


def test_report_reads_a_real_pipeline_run(tmp_path):
  """The results contract: a run written by lasca_jax.run.pipeline goes straight into the tables."""
  pipeline = pytest.importorskip("lasca_jax.run.pipeline")
  conftest = pytest.importorskip("conftest")
  config = conftest.make_tiny_config(tmp_path / "cache")
  pipeline.run(config, str(tmp_path / "sweep" / "features"))
  written = report.make_report(tmp_path / "sweep", tmp_path / "report")
  table = render.read_csv(tmp_path / "report" / "tables" / "backbones.csv")
  col = tables.make_column(config.pairs.target, config.features.window_seconds,
                           config.pairs.margin)
  cell = table.cells[(labels.MODALITY_NAMES[config.features.modality], "Features", col)]
  assert cell.is_best and cell.n_folds == config.protocol.num_folds
  assert "cannot reach p < 0.05" in pathlib.Path(written["report"][0]).read_text()
