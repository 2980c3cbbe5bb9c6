"""Pipeline options of the text stage: salience statistics, phrase order, long prompts, logging."""

import json
import logging
import os

import numpy as np
import pytest

from lasca_jax.encoders import embedder as embedder_lib, text as text_lib
from lasca_jax.method import representation, templates
from lasca_jax.run import cache as cache_lib, pipeline
from conftest import make_tiny_config
from test_store import StandIn


def _prepare(tmp_path, **overrides):
  config = make_tiny_config(tmp_path / "cache", **{"model.fusion": "text", **overrides})
  sink = []
  inputs = pipeline.prepare(config, cache_lib.StageCache(config.cache_dir), prompt_sink=sink)
  return config, inputs, sink


def test_salience_stats_recording_and_dataset_give_one_prompt_per_window(tmp_path):
  _, fold, fold_prompts = _prepare(tmp_path)
  assert not all(np.array_equal(fold.prompt_index[0], f) for f in fold.prompt_index[1:])
  for stats in ("recording", "dataset"):
    config, inputs, sink = _prepare(tmp_path, **{"text.salience_stats": stats})
    assert all(np.array_equal(inputs.prompt_index[0], f) for f in inputs.prompt_index)
    assert 0 < len(sink) <= len(fold_prompts)
  # "recording": every recording's usable windows span exactly [0, 1] per non-constant feature.
  win = inputs.windows
  cols = np.arange(win.features.shape[1])
  values = representation.recording_values(win.features[:, cols], win.recording, inputs.usable,
                                           True)
  rows = (win.recording == 0) & inputs.usable
  v = values[rows]
  varying = np.ptp(win.features[rows], axis=0) > 0
  np.testing.assert_allclose(v.min(0)[varying], 0.0, atol=1e-6)
  np.testing.assert_allclose(v.max(0)[varying], 1.0, atol=1e-6)
  with pytest.raises(ValueError, match="config.text.salience_stats"):
    _prepare(tmp_path, **{"text.salience_stats": "global"})


def test_salience_phrase_order_lists_strongest_cues_first():
  mods = ["face"] * 4 + ["audio"] * 2
  phrases = ["f0", "f1", "f2", "f3", "a0", "a1"]
  masks = np.array([[1, 0, 1, 1, 1, 1], [1, 0, 1, 1, 1, 1]], bool)
  values = np.array([[0.6, 0.0, 0.9, 0.7, 0.5, 0.8], [0.9, 0.0, 0.6, 0.7, 0.8, 0.5]])
  prompts, index = templates.build_prompts(masks, phrases, mods, "multimodal", values=values)
  assert prompts[index[0]] == templates.multimodal_prompt(["f2", "f3", "f0"], ["a1", "a0"])
  assert prompts[index[1]] == templates.multimodal_prompt(["f0", "f3", "f2"], ["a0", "a1"])
  same, _ = templates.build_prompts(masks, phrases, mods, "multimodal")
  assert same.tolist() == [templates.multimodal_prompt(["f0", "f2", "f3"], ["a0", "a1"])]


def test_phrase_order_in_the_pipeline_keeps_the_phrase_sets(tmp_path):
  _, feat, _ = _prepare(tmp_path)
  _, sal, _ = _prepare(tmp_path, **{"text.phrase_order": "salience"})
  for k in (0, 1):
    for w in np.flatnonzero(feat.usable)[:50]:
      a = templates.prompt_phrases(feat.prompts[feat.prompt_index[k, w]])
      b = templates.prompt_phrases(sal.prompts[sal.prompt_index[k, w]])
      assert sorted(a) == sorted(b)
  assert sal.prompts.size >= feat.prompts.size
  with pytest.raises(ValueError, match="config.text.phrase_order"):
    _prepare(tmp_path, **{"text.phrase_order": "random"})


def test_embeddings_event_logs_throughput_and_warns_on_cut_prompts(tmp_path, caplog, monkeypatch,
                                                                  tiny_backbone):
  model = text_lib.load_model(tiny_backbone, device="cpu")
  model.max_seq_length = 24        # a short window, so that prompts are cut
  encoded = []
  original = model.encode
  warned_first = []   # whether the long-prompt warning came before the first encoder call
  model.encode = lambda texts, **kw: (
      warned_first.append("longer than" in caplog.text) if not encoded else None,
      encoded.extend(texts), original(texts, **kw))[2]
  monkeypatch.setattr(text_lib, "load_model", lambda *a, **k: model)
  monkeypatch.setattr(text_lib, "device_peak_gflops", lambda device, precision: (100.0, "test"))
  monkeypatch.setattr(embedder_lib, "MIN_SECONDS_FOR_PEAK", 0.0)
  config = make_tiny_config(tmp_path / "cache", **{"model.fusion": "text"})
  workdir = tmp_path / "run"
  with caplog.at_level(logging.WARNING):
    pipeline.run(config, str(workdir))
  events = [json.loads(l) for l in open(workdir / "log.jsonl")]
  emb = next(e for e in events if e["event"] == "embeddings")
  prompts = next(e for e in events if e["event"] == "prompts")
  assert emb["newly_encoded"] == emb["prompts"] == prompts["distinct_used"] == len(set(encoded))
  assert emb["over_window"] == emb["newly_encoded_truncated"] > 0.01 * emb["prompts"]
  assert emb["tokens_per_s"] > 0 and emb["device"] == "cpu" and emb["precision"] == "float32"
  assert emb["peak_gflops"] == 100.0 and emb["peak"] == "test"
  assert emb["share_of_peak"] == pytest.approx(emb["gflops"] / 100.0, rel=1e-2)
  assert emb["tokens"] <= 24 * emb["prompts"]
  assert "longer than" in caplog.text and "long_prompts=chunk" in caplog.text
  assert warned_first == [True] and "new prompts" in caplog.text   # said before encoding
  # A second run encodes nothing and reports the same cut count from the store alone.
  model2 = StandIn(fail_after=0)
  monkeypatch.setattr(text_lib, "load_model", lambda *a, **k: model2)
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    pipeline.run(config, str(workdir))
  assert "longer than" in caplog.text and "new prompts" not in caplog.text
  emb2 = [json.loads(l) for l in open(workdir / "log.jsonl") if '"embeddings"' in l][0]
  assert emb2["newly_encoded"] == 0 and emb2["over_window"] == emb["over_window"]
  assert "tokens_per_s" not in emb2


def test_cuda_without_gpu_fails_before_any_stage(tmp_path):
  torch = pytest.importorskip("torch")
  if torch.cuda.is_available():
    pytest.skip("a GPU is present")
  config = make_tiny_config(tmp_path / "cache", **{"model.fusion": "fused",
                                                   "text.device": "cuda"})
  with pytest.raises(ValueError, match="config.text.device='cuda'"):
    pipeline.run(config, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "cache" / "frames")
