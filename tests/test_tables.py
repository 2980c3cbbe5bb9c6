"""Tests for lasca_jax.analysis.tables: reading a sweep, marks, rendering, CSV round trip."""

import json
import pathlib

import numpy as np
import pytest

from lasca_jax.analysis import render, results, tables
from lasca_jax.run import labels

FOLDS = 15
BASE = np.linspace(0.60, 0.67, FOLDS)
# Symmetric +-0.03 noise with a slightly negative sum: mean just below the best, p large.
NOISE = np.array([0.03, -0.03] * 7 + [-0.01])


def write_run(root, name, *, modality, fusion, backbone="all-mpnet-base-v2", lexicon="llm",
              target="arousal", window=3.0, margin=0.1, acc, label=None, dataset="toy"):
  run = pathlib.Path(root) / name
  run.mkdir(parents=True)
  config = {
      "data": {"name": dataset},
      "features": {"modality": modality, "window_seconds": window},
      "pairs": {"margin": margin, "target": target},
      "model": {"fusion": fusion},
      "text": {"backbone": backbone, "lexicon": lexicon},
  }
  if label:
    config["model_label"] = label
  (run / "config.json").write_text(json.dumps(config))
  epochs = 5
  np.savez(run / "results.npz", test_accuracy=np.asarray(acc, float),
           best_epoch=np.full(FOLDS, 2), num_train_pairs=np.full(FOLDS, 100),
           num_val_pairs=np.full(FOLDS, 10), num_test_pairs=np.full(FOLDS, 30),
           train_loss=np.ones((FOLDS, epochs)), val_accuracy=np.ones((FOLDS, epochs)),
           num_params=np.array(123))
  return run


@pytest.fixture
def sweep(tmp_path):
  """Visual block: MPNet(F) best, MPNet on par, Features worse; audio: Features best."""
  for t, w, m in tables.COLUMNS:
    tag = f"{t}_{w:g}_{m:g}"
    kw = dict(target=t, window=w, margin=m)
    write_run(tmp_path, f"vis/feat/{tag}", modality="visual", fusion="features", acc=BASE, **kw)
    write_run(tmp_path, f"vis/text/{tag}", modality="visual", fusion="text",
              acc=BASE + 0.05 + NOISE, **kw)
    write_run(tmp_path, f"vis/fused/{tag}", modality="visual", fusion="fused",
              acc=BASE + 0.05, **kw)
    write_run(tmp_path, f"aud/feat/{tag}", modality="audio", fusion="features",
              acc=BASE + 0.1, **kw)
    write_run(tmp_path, f"aud/fused/{tag}", modality="audio", fusion="fused", acc=BASE, **kw)
  return tmp_path


def test_records_read_every_run_and_derive_labels(sweep):
  records = results.records(results.load(sweep))
  assert len(records) == 5 * len(tables.COLUMNS)
  labels = {(r.modality, r.model_label) for r in records}
  assert labels == {("visual", "Features"), ("visual", "MPNet"), ("visual", "MPNet(F)"),
                    ("audio", "Features"), ("audio", "MPNet(F)")}
  r = records[0]
  assert r.accuracies.shape == (FOLDS,) and r.num_pairs["test"].tolist() == [30] * FOLDS
  assert results.records(results.load(sweep), dataset="other") == []


def test_backbone_table_marks(sweep):
  table = tables.backbone_table(results.records(results.load(sweep)))
  assert table.blocks == (("Visual", ("Features", "MPNet", "MPNet(F)")),
                          ("Audio", ("Features", "MPNet(F)")))
  for col in tables.COLUMNS:
    best = table.cells[("Visual", "MPNet(F)", col)]
    on_par = table.cells[("Visual", "MPNet", col)]
    worse = table.cells[("Visual", "Features", col)]
    assert best.is_best and not on_par.is_best and not worse.is_best
    assert on_par.on_par and on_par.p_value >= 0.05
    assert not worse.on_par and worse.p_value < 0.001
    # Marks are per modality block: audio has its own best.
    assert table.cells[("Audio", "Features", col)].is_best
    assert not table.cells[("Audio", "MPNet(F)", col)].on_par
  md = render.to_markdown(table)
  lines = md.splitlines()
  vis_feat = next(l for l in lines if l.startswith("| Visual | Features"))
  vis_text = next(l for l in lines if "| MPNet |" in l)
  vis_fused = next(l for l in lines if l.startswith("|  | MPNet(F)"))
  mean_best = f"{np.mean(BASE + 0.05):.2f}"
  assert vis_fused.count(f"**{mean_best}**") == 8
  assert vis_text.count("<u>") == 8 and "**" not in vis_text
  assert "**" not in vis_feat and "<u>" not in vis_feat
  assert f"{np.mean(BASE):.2f}" in vis_feat
  assert "Arousal 3s 10%" in lines[2] and "Valence 5s 20%" in lines[2]


def test_latex_marks_and_header(sweep):
  tex = render.to_latex(tables.backbone_table(results.records(results.load(sweep))))
  assert tex.count(r"\textbf{") == 16  # 8 columns x 2 blocks
  assert tex.count(r"\underline{") == 8
  assert r"\multicolumn{4}{c}{Arousal}" in tex and r"\multicolumn{2}{c}{5s}" in tex
  assert "10\\%" in tex and tex.count(r"\midrule") == 2


def test_csv_round_trip(sweep, tmp_path):
  table = tables.backbone_table(results.records(results.load(sweep)), title="Toy_table & 10%")
  paths = render.write_table(table, tmp_path / "out", "table3")
  back = render.read_csv(paths["csv"])
  assert render.to_markdown(back) == paths["md"].read_text()
  assert render.to_latex(back) == paths["tex"].read_text()
  assert back.blocks == table.blocks and back.columns == table.columns
  for key, cell in table.cells.items():
    got = back.cells[key]
    assert got.folds == cell.folds and got.mean == cell.mean and got.std == cell.std
    assert (got.is_best, got.on_par, got.n_folds) == (cell.is_best, cell.on_par, cell.n_folds)
    np.testing.assert_equal(got.p_value, cell.p_value)


def test_missing_cells_render_as_dashes(tmp_path):
  write_run(tmp_path, "a", modality="visual", fusion="features", acc=BASE)
  table = tables.backbone_table(results.records(results.load(tmp_path)))
  row = render.to_markdown(table).splitlines()[-1]
  assert row.count(tables.MISSING) == 7 and row.count(f"**{np.mean(BASE):.2f}**") == 1


def test_conflicting_duplicate_runs_raise(tmp_path):
  write_run(tmp_path, "a", modality="visual", fusion="features", acc=BASE)
  write_run(tmp_path, "b", modality="visual", fusion="features", acc=BASE + 0.01)
  write_run(tmp_path, "c", modality="visual", fusion="features", acc=BASE, lexicon="feature_name")
  records = results.records(results.load(tmp_path))
  with pytest.raises(ValueError, match="two runs"):
    tables.backbone_table(records)
  # An identical repeat (features-only under another lexicon) is merged silently.
  table = tables.backbone_table([r for r in records if not r.path.endswith("b")])
  assert table.blocks == (("Visual", ("Features",)),)


def test_comparison_table_rows(tmp_path):
  for label in ("SwinFace", "VGGFace2"):
    write_run(tmp_path, label, modality="visual", fusion="features", label=label, acc=BASE + 0.02)
  write_run(tmp_path, "w2v", modality="audio", fusion="features", label="Wav2Vec2", acc=BASE)
  write_run(tmp_path, "lasca_v", modality="visual", fusion="fused", acc=BASE + 0.03)
  write_run(tmp_path, "lasca_a", modality="audio", fusion="fused", acc=BASE + 0.01)
  write_run(tmp_path, "minilm", modality="audio", fusion="fused",
            backbone="all-MiniLM-L12-v2", acc=BASE + 0.5)
  records = results.records(results.load(tmp_path))
  table = tables.comparison_table(records)
  assert table.blocks == (("Visual", ("VGGFace2", "SwinFace", tables.LASCA_ROW)),
                          ("Audio", ("Wav2Vec2", tables.LASCA_ROW)))
  col = tables.COLUMNS[0]
  assert table.cells[("Visual", tables.LASCA_ROW, col)].is_best
  assert table.cells[("Audio", tables.LASCA_ROW, col)].is_best
  assert not table.cells[("Audio", "Wav2Vec2", col)].on_par
  # Baselines are kept out of the backbone-sensitivity table.
  assert tables.backbone_table(records).blocks == (
      ("Visual", ("MPNet(F)",)), ("Audio", ("MPNet(F)", "MiniLM(F)")))


def test_lexicon_table_bolds_without_underline(tmp_path):
  for bb, short in (("all-mpnet-base-v2", "MPNet"), ("all-MiniLM-L12-v2", "MiniLM")):
    write_run(tmp_path, f"{short}_llm", modality="multimodal", fusion="fused", backbone=bb,
              acc=BASE + 0.02)
    write_run(tmp_path, f"{short}_feat", modality="multimodal", fusion="fused", backbone=bb,
              lexicon="feature_name", acc=BASE + 0.02 + NOISE)
  table = tables.lexicon_table(results.records(results.load(tmp_path)))
  assert table.blocks == (("MPNet(F)", ("Feature", "LLM (ours)")),
                          ("MiniLM(F)", ("Feature", "LLM (ours)")))
  md = render.to_markdown(table)
  assert "<u>" not in md and md.count("**") == 2 * 2 + 2  # title + one bold per block
  assert table.cells[("MPNet(F)", "Feature", tables.COLUMNS[0])].on_par  # stored, not drawn
  assert "| Multimodal | LaScA |" in md


def test_column_label_and_short_names():
  assert tables.column_label(("valence", 5.0, 0.2)) == "Valence 5s 20%"
  assert labels.backbone_label("/models/multi-qa-distilbert-cos-v1/") == "DBERT"
  assert labels.model_label({"model": {"fusion": "fused"},
                             "text": {"backbone": "sentence-transformers/all-distilroberta-v1"}}
                            ) == "DRoBERTa(F)"


def test_auto_columns_and_fold_mismatch(tmp_path):
  write_run(tmp_path, "a", modality="audio", fusion="features", acc=BASE, window=4.0,
            margin=0.1 + 1e-12, target="valence")
  write_run(tmp_path, "b", modality="audio", fusion="features", acc=BASE, window=4.0,
            margin=0.3, target="arousal")
  records = results.records(results.load(tmp_path))
  assert records[0].column == ("valence", 4.0, 0.1)
  table = tables.backbone_table(records, columns=None)
  assert table.columns == (("arousal", 4.0, 0.3), ("valence", 4.0, 0.1))
  write_run(tmp_path, "c", modality="audio", fusion="fused", acc=BASE[:3], window=4.0,
            margin=0.3, target="arousal")
  with pytest.raises(ValueError, match=r"Audio Arousal 4s 30%.*same folds.*MPNet\(F\): "):
    tables.backbone_table(results.records(results.load(tmp_path)), columns=None)
