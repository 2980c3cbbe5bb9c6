"""A sweep on the shrunk synthetic config: every table and figure, resume, reproducibility."""

import json

import numpy as np
import pytest

from lasca_jax.analysis import render
from lasca_jax.run import pipeline, sweep as sweep_lib


def test_grid_expansion_covers_the_paper_tables():
  from configs import synthetic
  config = synthetic.get_config("sweep")
  config.sweep.backbones = ("all-mpnet-base-v2", "all-MiniLM-L12-v2")
  config.sweep.simulated_baselines = False
  config.sweep.baselines = ("VGGFace2:visual:/emb/vgg", "Wav2Vec2:audio:/emb/w2v")
  config.sweep.controls = ()
  runs = sweep_lib.expand(config)
  labels = {(c.features.modality, c.model_label, c.text.lexicon, c.text.salience)
            for _, c in runs}
  cells = 2 * 2 * 2                                        # windows x margins x targets
  per_modality = 1 + 2 * 2                                 # Features + (text, fused) x backbones
  ablations = 2 * (2 + 2)                                  # backbones x (2 lexicons + 2 rules)
  assert len(runs) == cells * (3 * per_modality + ablations + 2)
  config.sweep.controls = ("mask", "random_text", "capacity")
  with_controls = sweep_lib.expand(config)
  controls = [c for _, c in with_controls if c.model.fusion in ("mask", "random_text")
              or c.model.hidden_from]
  # Per cell: one mask row, then random text and matched capacity for each backbone.
  assert len(with_controls) == len(runs) + cells * (1 + 2 * 2) == len(runs) + len(controls)
  assert {c.features.modality for c in controls} == {"multimodal"}
  assert {c.model_label for c in controls} == {
      "Features+Mask", "MPNet(F) random text", "MiniLM(F) random text",
      "Features cap. MPNet(F)", "Features cap. MiniLM(F)"}
  config.sweep.controls = ("mask", "words")
  with pytest.raises(ValueError, match="sweep.controls: unknown"):
    sweep_lib.expand(config)
  assert ("visual", "VGGFace2", "llm", "otsu") in labels
  assert ("multimodal", "MPNet(F)", "feature_name", "otsu") in labels
  assert ("multimodal", "MiniLM(F) topk", "llm", "topk") in labels
  assert not any(m == "audio" and l == "VGGFace2" for m, l, _, _ in labels)
  assert len({r for r, _ in runs}) == len(runs)


def test_sweep_writes_every_table_and_figure(swept):
  root, config, summary = swept
  report = root / "out" / "report"
  assert summary["trained"] == summary["configurations"] == len(sweep_lib.expand(config))
  # Fewer compiled calls than configurations: equally shaped runs trained together.
  assert summary["groups"] < summary["configurations"]
  # Every table cell holds the fold accuracies of one of the sweep's runs, and their mean.
  run_folds = {tuple(np.load(p)["test_accuracy"].round(6))
               for p in (root / "out" / "runs").rglob("results.npz")}
  for table in ("backbones", "comparison", "lexicon", "controls"):
    for ext in ("md", "tex", "csv"):
      assert (report / "tables" / f"{table}.{ext}").stat().st_size > 0
    cells = [c for c in render.read_csv(report / "tables" / f"{table}.csv").cells.values()
             if not np.isnan(c.mean)]
    assert cells
    for cell in cells:
      assert tuple(np.round(cell.folds, 6)) in run_folds
      assert cell.mean == pytest.approx(np.mean(cell.folds))
  text = (report / "report.md").read_text()
  assert "LaScA (ours)" in text and "SimFace" in text and "Shuffled" in text
  figures = report / "figures"
  for name in ("pairs_visual.png", "pairs_audio.png", "pairs_multimodal.png",
               "prompts_multimodal_3s.png", "prompts_visual_5s.png"):
    assert (figures / name).stat().st_size > 0
  for table in ("backbones", "comparison", "lexicon", "controls"):
    assert list((figures / "accuracy" / table).glob("*.png"))
  curves = list((figures / "curves").glob("*.png"))
  assert len(curves) == summary["configurations"]


def test_resumed_sweep_trains_nothing_twice(swept):
  root, config, _ = swept
  runs_dir = root / "out" / "runs"
  stamps = {p: p.stat().st_mtime_ns for p in runs_dir.rglob("results.npz")}
  again = sweep_lib.run_sweep(config, str(runs_dir), progress=False)
  assert again["trained"] == 0 and again["skipped"] == len(stamps)
  assert {p: p.stat().st_mtime_ns for p in runs_dir.rglob("results.npz")} == stamps
  # Removing one result (a run killed mid-way) retrains exactly that run.
  victim = sorted(stamps)[3]
  victim.unlink()
  third = sweep_lib.run_sweep(config, str(runs_dir), progress=False)
  assert third["trained"] == 1 and victim.exists()


def test_grouped_results_equal_a_standalone_run(swept, tmp_path):
  root, config, _ = swept
  runs_dir = root / "out" / "runs"
  run_dir = next(p.parent for p in sorted(runs_dir.rglob("results.npz"))
                 if "MiniLM" not in str(p) and "fused" not in str(p))
  saved = json.load(open(run_dir / "config.json"))
  from configs import from_json
  cfg = from_json.get_config(str(run_dir / "config.json"))
  alone = pipeline.run(cfg, str(tmp_path / "alone"))
  grouped = np.load(run_dir / "results.npz")
  np.testing.assert_array_equal(alone["test_accuracy"], grouped["test_accuracy"])
  np.testing.assert_array_equal(alone["best_epoch"], grouped["best_epoch"])
  np.testing.assert_allclose(alone["test_prob"], grouped["test_prob"], atol=1e-5)
  assert saved["model_label"] == cfg.model_label
