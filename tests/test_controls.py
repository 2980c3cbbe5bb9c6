"""Controls that isolate what the language adds: mask, random text, matched capacity."""

import json
import shutil

import numpy as np
import pytest

from conftest import PAPER_CAPS, make_tiny_config, train_settings
from lasca_jax.analysis import render, results, tables
from lasca_jax.encoders import text as text_lib
from lasca_jax.method import controls, salience, windows
from lasca_jax.model import mlp
from lasca_jax.run import cache as cache_lib, labels, pipeline, settings as settings_lib, stages
from test_tables import BASE, FOLDS, write_run


def _prepare(tmp_path, name, **overrides):
  config = make_tiny_config(tmp_path / name, **overrides)
  return config, pipeline.prepare(config, cache_lib.StageCache(config.cache_dir))


def test_random_vectors_are_fixed_per_prompt_distinct_and_scaled():
  prompts = ["facial: smile <|endoftext|>", "facial: frown <|endoftext|>",
             "facial: smile <|endoftext|>"]
  r = controls.random_prompt_embeddings(prompts, 384)
  assert r.shape == (3, 384) and r.dtype == np.float32
  np.testing.assert_array_equal(r[0], r[2])
  assert abs(float(r[0] @ r[1])) < 0.3            # independent directions, not the same vector
  np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1.0, rtol=1e-6)
  np.testing.assert_array_equal(controls.random_prompt_embeddings(prompts[::-1], 384), r[::-1])
  assert not np.allclose(controls.random_prompt_embeddings(prompts, 384, seed=1), r)
  np.testing.assert_allclose(
      np.linalg.norm(controls.random_prompt_embeddings(prompts, 8, norm=4.0), axis=1), 4.0,
      rtol=1e-6)


def test_random_text_encodes_nothing_and_is_the_same_across_runs_and_folds(tmp_path,
                                                                             monkeypatch):
  def no_encoder(*args, **kwargs):
    raise AssertionError("random_text must not load an encoder")
  monkeypatch.setattr(text_lib, "load_model", no_encoder)
  _, feats = _prepare(tmp_path, "a", **{"model.fusion": "features"})
  _, first = _prepare(tmp_path, "b", **{"model.fusion": "random_text"})
  _, again = _prepare(tmp_path, "c", **{"model.fusion": "random_text"})
  np.testing.assert_array_equal(first.z, again.z)
  f = feats.z.shape[-1]
  assert first.z.shape[-1] == f + 384                     # MiniLM-L6's dimension
  np.testing.assert_array_equal(first.z[..., :f], feats.z)
  expected = controls.random_prompt_embeddings(first.prompts.tolist(), 384)
  usable = first.usable
  for k in range(first.z.shape[0]):
    np.testing.assert_array_equal(first.z[k, usable, f:],
                                  expected[first.prompt_index[k, usable]])
  # A window whose prompt differs between folds gets a different vector, and distinct prompts
  # used anywhere get distinct vectors.
  used = np.unique(first.prompt_index[:, usable])
  assert len({expected[i].tobytes() for i in used}) == used.size > 1


def test_mask_rows_are_features_and_salience_mask(tmp_path):
  config, masked = _prepare(tmp_path, "m", **{"model.fusion": "mask"})
  _, feats = _prepare(tmp_path, "f", **{"model.fusion": "features"})
  f = feats.z.shape[-1]
  assert masked.z.shape[-1] == 2 * f
  np.testing.assert_array_equal(masked.z[..., :f], feats.z)
  cache = cache_lib.StageCache(config.cache_dir)
  frames = stages.frames(cache, data=stages.data_input(config.data)).value
  win = windows.make_windows(frames, float(config.features.window_seconds))
  mods = win.modalities[windows.modality_columns(win.modalities, "multimodal")]
  assert masked.modalities == feats.modalities == mods.tolist()
  expected = salience.salience_mask(feats.z, mods, "otsu", 5, 0.5).astype(np.float32)
  np.testing.assert_array_equal(masked.z[..., f:], expected)
  assert set(np.unique(masked.z[..., f:]).tolist()) == {0.0, 1.0}
  assert masked.prompts is None                           # no prompt, no encoder


def test_capacity_matched_features_have_the_fused_architecture(tmp_path, tiny_backbone):
  _, fused = _prepare(tmp_path, "u", **{"model.fusion": "fused", "text.backbone": tiny_backbone})
  config, cap = _prepare(tmp_path, "c", **{"model.fusion": "features",
                                           "text.backbone": tiny_backbone,
                                           "model.hidden_from": "fused"})
  _, feats = _prepare(tmp_path, "f", **{"model.fusion": "features"})
  f = feats.z.shape[-1]
  assert cap.z.shape == fused.z.shape                     # [folds, W, f + 32]
  np.testing.assert_array_equal(cap.z[..., :f], feats.z)
  assert not cap.z[..., f:].any()
  settings = settings_lib.train_settings(config)
  assert (settings.num_params(cap.z.shape[-1]) == settings.num_params(fused.z.shape[-1])
          > settings.num_params(f))
  assert labels.model_label(config) == "Features cap. tiny_backbone(F)".replace(
      "tiny_backbone", labels.backbone_label(tiny_backbone))


def test_hidden_from_dim_sets_hidden_sizes_only():
  matched = train_settings(hidden_dim=457)
  assert matched.hidden_sizes(73) == mlp.hidden_sizes(457, PAPER_CAPS) == (228, 114)
  assert mlp.hidden_sizes(73, PAPER_CAPS) == (36, 18)
  assert matched.num_params(73) == 73 * 228 + 228 + 228 * 114 + 114 + 114 + 1


def test_bad_control_settings_name_the_field(tmp_path, tiny_backbone):
  with pytest.raises(ValueError, match="model.hidden_from"):
    _prepare(tmp_path, "x", **{"model.hidden_from": "bigger"})
  with pytest.raises(ValueError, match="text.random_norm"):
    _prepare(tmp_path, "y", **{"model.fusion": "random_text", "text.backbone": tiny_backbone})
  with pytest.raises(ValueError, match="model.hidden_from_dim"):
    _prepare(tmp_path, "z", **{"model.hidden_from_dim": -3})


def test_controls_table_marks_lasca_against_each_control(tmp_path):
  """LaScA best; random text on par with it; mask and capacity significantly worse."""
  noise = np.array([0.03, -0.03] * 7 + [-0.01])
  kw = dict(modality="multimodal", backbone="all-MiniLM-L6-v2", target="arousal", window=3.0,
            margin=0.1)
  write_run(tmp_path, "feat", fusion="features", acc=BASE, **kw)
  write_run(tmp_path, "fused", fusion="fused", acc=BASE + 0.05, **kw)
  write_run(tmp_path, "fused_fn", fusion="fused", lexicon="feature_name", acc=BASE + 0.04, **kw)
  write_run(tmp_path, "mask", fusion="mask", acc=BASE + 0.01, **kw)
  write_run(tmp_path, "random", fusion="random_text", acc=BASE + 0.05 + noise, **kw)
  cap = write_run(tmp_path, "cap", fusion="features", acc=BASE + 0.002, **kw)
  config = json.loads((cap / "config.json").read_text())
  config["model"]["hidden_from"] = "fused"
  (cap / "config.json").write_text(json.dumps(config))
  records = results.records(results.load(tmp_path))
  assert {r.control for r in records} == {"", "mask", "random_text", "capacity"}
  table = tables.controls_table(records)
  assert table.blocks == (("MiniLM-L6(F)", ("LaScA (ours)", "Salience mask", "Random text",
                                            "Matched capacity", "Features")),)
  col = ("arousal", 3.0, 0.1)
  cell = {row: table.cells[("MiniLM-L6(F)", row, col)] for row in table.blocks[0][1]}
  assert cell["LaScA (ours)"].is_best
  assert cell["Random text"].on_par and not cell["Random text"].is_best
  for row in ("Salience mask", "Matched capacity", "Features"):
    assert not cell[row].on_par and cell[row].p_value < 0.05
  md = render.to_markdown(table)
  assert "| LaScA (ours) | **0.69** |" in md and "| Random text | <u>0.68</u> |" in md
  # Controls never leak into Tables 3-4 or 5-6.
  assert [rows for _, rows in tables.backbone_table(records).blocks] == [
      ("Features", "MiniLM-L6(F)")]
  assert len(records) == 6 and FOLDS == 15


def test_baselines_without_language_and_the_reports_verdict(tmp_path):
  """The logistic head and the tuned features are rows of the controls table, shared by its
  blocks, and the report says per block whether LaScA beats the best of them (p < 0.05)."""
  from lasca_jax.analysis import report
  kw = dict(modality="multimodal", backbone="all-MiniLM-L6-v2", target="arousal", window=3.0,
            margin=0.1)
  write_run(tmp_path, "feat", fusion="features", acc=BASE, **kw)
  write_run(tmp_path, "fused", fusion="fused", acc=BASE + 0.05, **kw)
  for name, field, value, acc in (("logistic", ("model", "head"), "logistic", BASE + 0.03),
                                  ("tuned", ("train", "select"), "alpha=1,0.1", BASE + 0.045)):
    run = write_run(tmp_path, name, fusion="features", acc=acc, **kw)
    config = json.loads((run / "config.json").read_text())
    config.setdefault(field[0], {})[field[1]] = value
    (run / "config.json").write_text(json.dumps(config))
  records = results.records(results.load(tmp_path))
  assert {r.control for r in records} == {"", "logistic", "tuned"}
  table = tables.controls_table(records)
  assert table.blocks == (("MiniLM-L6(F)", ("LaScA (ours)", "Features, tuned [selected alpha]",
                                            "Logistic regression", "Features")),)
  sentence = report.beats_baselines(table)[0]
  assert sentence.startswith("MiniLM-L6(F): LaScA beats the best row without language at "
                             "p < 0.05 in 1 of 1 columns (Arousal 3s 10%: ")
  assert "vs Features, tuned [selected alpha] " in sentence
  # A tuned row as good as LaScA: no win.
  shutil.rmtree(tmp_path / "tuned")
  write_run(tmp_path, "tuned", fusion="features", acc=BASE + 0.05, **kw)
  config = json.loads((tmp_path / "tuned" / "config.json").read_text())
  config.setdefault("train", {})["select"] = "alpha=1,0.1"
  (tmp_path / "tuned" / "config.json").write_text(json.dumps(config))
  table = tables.controls_table(results.records(results.load(tmp_path)))
  assert " in 0 of 1 columns " in report.beats_baselines(table)[0]
