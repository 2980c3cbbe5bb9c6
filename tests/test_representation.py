"""One representation: every fusion declared once, and every path builds the z training saw.

For every setting that shapes z (fusion x ``text.long_prompts`` x ``text.salience_stats`` x
``text.phrase_order``, and capacity padding), the batch path of a bundle, the one-window
streaming predictor (warm and cold) and attribution build z through
:mod:`lasca_jax.method.representation`; these tests hold them to the z of ``pipeline.prepare``
bit for bit, and a fusion registered in this file alone trains, is saved, predicts, explains and
gets its label.
"""

import dataclasses
import itertools
import json
import os

import jax
import numpy as np
import pytest

from lasca_jax.data.datasets import synthetic
from lasca_jax.encoders import embedder as embedder_lib
from lasca_jax.inference import attribution, ensemble, stream
from lasca_jax.method import representation
from lasca_jax.model import bundle, mlp
from lasca_jax.run import cache as cache_lib, labels, pipeline, settings as settings_lib, validate
from conftest import PAPER_CAPS, make_tiny_config

STATS = representation.SALIENCE_STATS
ORDERS = ("feature", "salience")
LONG = ("truncate", "chunk")


def _combos():
  """Every distinct setting of the fields that shape z, per fusion (a field a fusion does not
  read is left at its default)."""
  out = [("features", "truncate", "fold", "feature", "")]
  out.append(("features", "truncate", "fold", "feature", "fused"))   # capacity padding
  out += [("mask", "truncate", s, "feature", "") for s in STATS]
  out += [("random_text", "truncate", s, o, "") for s, o in itertools.product(STATS, ORDERS)]
  for fusion in ("text", "fused"):
    out += [(fusion, lp, s, o, "") for lp, s, o in itertools.product(LONG, STATS, ORDERS)]
  return out


COMBOS = _combos()


def _config(root, backbone, fusion, long_prompts, stats, order, hidden_from):
  return make_tiny_config(root / "cache", **{
      "model.fusion": fusion, "text.backbone": backbone, "text.long_prompts": long_prompts,
      "text.salience_stats": stats, "text.phrase_order": order, "text.random_norm": 1.0,
      "model.hidden_from": hidden_from})


def _embedder(config, inputs, cache_dir):
  spec = inputs.recipe.spec
  if spec.text == "random":
    return embedder_lib.Embedder(random_text=inputs.random_text)
  if spec.encoded:
    return embedder_lib.Embedder(
        settings_lib.encoder(config.text).store(cache_dir))
  return None


def _recording_ranges(inputs):
  lo, span, _ = representation.recording_ranges(inputs.raw, inputs.windows.recording,
                                                 inputs.usable)
  return lo, span


@pytest.mark.parametrize("combo", COMBOS, ids=["-".join(x for x in c if x) for c in COMBOS])
def test_every_path_builds_the_z_training_saw(combo, tmp_path, short_backbone):
  config = _config(tmp_path, short_backbone, *combo)
  inputs = pipeline.prepare(config, cache_lib.StageCache(config.cache_dir))
  recipe, usable = inputs.recipe, np.flatnonzero(inputs.usable)
  assert recipe.fusion == combo[0] and inputs.z.shape[-1] == recipe.input_dim
  slices = recipe.slices()
  assert max(s.stop for s in slices.values()) <= inputs.z.shape[-1]
  if combo[0] in ("text", "fused") and combo[1] == "chunk":
    prompts = inputs.prompts[np.unique(inputs.prompt_index[:, usable])]
    assert any(len(p.split()) > 24 for p in prompts)      # some prompts exceed the window
    # The shared store also holds their truncated encodings (a truncating run of the same
    # backbone): every path must still take the pooled pieces.
    settings = settings_lib.encoder(config.text)
    truncating = dataclasses.replace(settings, long_prompts="truncate")
    truncating.store(config.cache_dir).embed(prompts.tolist(), progress=False)
  embed = _embedder(config, inputs, config.cache_dir)
  # The batch path (a bundle's): every fold, every usable window, bit for bit.
  rep = representation.Representer(recipe, inputs.lo, inputs.span, embed)(
      inputs.raw, recording=inputs.windows.recording, usable=inputs.usable)
  np.testing.assert_array_equal(rep.z[:, usable], inputs.z[:, usable])
  if inputs.prompts is not None:
    np.testing.assert_array_equal(rep.prompts[rep.index[:, usable]],
                                  inputs.prompts[inputs.prompt_index[:, usable]])
  # The one-window streaming predictor, warm and cold.
  d = inputs.z.shape[-1]
  params = mlp.PreferenceMLP(mlp.hidden_sizes(d, PAPER_CAPS)).init(
      jax.random.PRNGKey(0), np.zeros((1, d), np.float32))["params"]
  lo, span = _recording_ranges(inputs)
  windows = usable[:: max(1, usable.size // 12)]
  for k in range(inputs.num_folds):
    stats = stream.TrainingRange(inputs.lo[k], inputs.span[k])
    for w in windows:
      needs_range = recipe.spec.needs_salience and recipe.salience_stats == "recording"
      p = stream.WindowPredictor(params, recipe, stats, embed,
                                     (lo[w], span[w]) if needs_range else None)
      np.testing.assert_array_equal(p.represent(inputs.raw[w], "warm"), inputs.z[k, w])
      np.testing.assert_array_equal(p.represent(inputs.raw[w], "cold"), inputs.z[k, w])
      if inputs.prompts is not None:
        assert p.prompt(inputs.raw[w]) == inputs.prompts[inputs.prompt_index[k, w]]


def test_recording_statistics_refuse_one_window_at_a_time(tmp_path, tiny_backbone):
  config = _config(tmp_path, tiny_backbone, "mask", "truncate", "recording", "feature", "")
  inputs = pipeline.prepare(config, cache_lib.StageCache(config.cache_dir))
  d = inputs.z.shape[-1]
  params = mlp.PreferenceMLP(mlp.hidden_sizes(d, PAPER_CAPS)).init(
      jax.random.PRNGKey(0), np.zeros((1, d), np.float32))["params"]
  with pytest.raises(ValueError, match=r"text\.salience_stats='recording'.*recording_range") as e:
    stream.WindowPredictor(params, inputs.recipe,
                               stream.TrainingRange(inputs.lo[0], inputs.span[0]))
  assert "\n" not in str(e.value)


# Runs trained end to end: a covering subset of the matrix (every fusion, every non-default
# value of every field at least once).
RUNS = [("fused", "chunk", "recording", "salience", ""),
        ("text", "chunk", "dataset", "feature", ""),
        ("random_text", "truncate", "dataset", "salience", ""),
        ("mask", "truncate", "recording", "feature", ""),
        ("features", "truncate", "fold", "feature", "fused"),
        ("fused", "truncate", "fold", "feature", "")]


@pytest.mark.parametrize("combo", RUNS, ids=["-".join(x for x in c if x) for c in RUNS])
def test_bundles_and_streaming_reproduce_the_run(combo, tmp_path, short_backbone):
  config = _config(tmp_path, short_backbone, *combo)
  results = pipeline.run(config, str(tmp_path / "run"))
  predictor = ensemble.load_bundle(str(tmp_path / "run"))
  prob = predictor.test_probabilities()
  np.testing.assert_array_equal(prob, results["test_prob"])
  meta = predictor.meta
  assert meta["format"] == bundle.FORMAT
  assert meta["representation"]["salience_stats"] == combo[2]
  assert meta["representation"]["phrase_order"] == combo[3]
  if predictor.spec.needs_salience:
    assert combo[2].split("_")[0] in meta["salience_on_new_data"]
  # Each fold's streaming predictor decides its test pairs as training did.
  t = predictor.test_windows()
  ranges = bundle.test_ranges(t)
  for k in range(predictor.num_folds):
    pairs = np.flatnonzero(t["mask"][k])[:6]
    for n in pairs:
      a, b = t["first"][k, n], t["second"][k, n]
      wp = predictor.window_predictor(k, recording_range=None if ranges is None else (
          ranges[0][b], ranges[1][b]))
      if ranges is not None and not np.array_equal(ranges[0][a], ranges[0][b]):
        continue                                             # pairs never cross recordings
      got = wp.decide(t["features"][a], t["features"][b])
      assert got == pytest.approx(float(results["test_prob"][k, n]), abs=1e-6)


def test_a_fusion_declared_here_trains_saves_predicts_explains_and_is_labelled(
    tmp_path, tiny_backbone):
  representation.register(representation.Fusion(
      "mask_text", ("features", "mask", "text"), "{backbone}(F)+Mask", text="encoded",
      control=True, doc="[x || m || s]"))
  try:
    config = make_tiny_config(tmp_path / "cache", **{"model.fusion": "mask_text",
                                                     "text.backbone": tiny_backbone})
    validate.check(config)
    assert labels.model_label(config) == "sentence_transformer(F)+Mask"
    results = pipeline.run(config, str(tmp_path / "run"))
    with open(tmp_path / "run" / "config.json") as f:
      assert json.load(f)["model_label"] == "sentence_transformer(F)+Mask"
    predictor = ensemble.load_bundle(str(tmp_path / "run"))
    np.testing.assert_array_equal(predictor.test_probabilities(), results["test_prob"])
    num_f = len(predictor.feature_names)
    assert predictor.slices() == {"features": slice(0, num_f),
                                  "mask": slice(num_f, 2 * num_f),
                                  "text": slice(2 * num_f, 2 * num_f + 32)}
    assert results["input_dim"] == 2 * num_f + 32
    explained = attribution.explain_run(predictor, max_pairs=20, steps=64, draws=1)
    expl = explained.explanation
    assert expl.valid.sum() == 20
    # Integrated gradients on the feature slice add up to the logit change of zeroing it.
    assert np.abs(expl.completeness_gap[expl.valid]).max() < 2e-3
    assert (expl.text_second[expl.valid] != 0).any() and (expl.feature != 0).any()
    wp = predictor.window_predictor(0)
    t = predictor.test_windows()
    n = int(np.flatnonzero(t["mask"][0])[0])
    assert wp.decide(t["features"][t["first"][0, n]], t["features"][t["second"][0, n]]) == (
        pytest.approx(float(results["test_prob"][0, n]), abs=1e-6))
  finally:
    representation.unregister("mask_text")
  with pytest.raises(bundle.BundleError, match="unknown model.fusion 'mask_text'"):
    ensemble.load_bundle(str(tmp_path / "run"))


def test_registry_declares_each_fusion_once():
  assert representation.names()[:6] == ("features", "text", "fused", "baseline", "mask",
                                         "random_text")
  assert representation.paper() == ("features", "text", "fused", "baseline")
  assert representation.controls() == ("mask", "random_text")
  with pytest.raises(ValueError, match=r"unknown model.fusion 'fusd': use one of \("):
    representation.get("fusd")
  with pytest.raises(ValueError, match="parts"):
    representation.Fusion("bad", ("features", "words"), "x")
  with pytest.raises(ValueError, match="text part"):
    representation.Fusion("bad", ("features", "text"), "x")
  x, m, s = np.ones((2, 3, 4)), np.zeros((2, 3, 4)), np.full((2, 3, 5), 2.0)
  z = representation.assemble("mask", {"features": x, "mask": m, "text": s}, 10)
  assert z.dtype == np.float32 and z.shape == (2, 3, 10)
  np.testing.assert_array_equal(z[..., :4], 1.0)
  np.testing.assert_array_equal(z[..., 4:], 0.0)
  with pytest.raises(ValueError, match=r"needs the parts \['text'\]"):
    representation.assemble("fused", {"features": x})


def _as_previous_format(run_dir) -> None:
  """Rewrites a bundle's bundle.json as a lasca_jax.bundle/1 bundle has it."""
  path = run_dir / "bundle" / "bundle.json"
  meta = json.loads(path.read_text())
  meta["format"] = "lasca_jax.bundle/1"
  for key in ("representation", "salience_on_new_data", "precision"):
    del meta[key]
  path.write_text(json.dumps(meta))


@pytest.mark.parametrize("fusion,hidden_from,text", [("fused", "", slice(73, 105)),
                                                      ("text", "fused", slice(0, 32))])
def test_a_bundle_of_the_previous_format_still_loads_and_reproduces(
    fusion, hidden_from, text, tmp_path, tiny_backbone):
  config = make_tiny_config(tmp_path / "cache", **{
      "model.fusion": fusion, "text.backbone": tiny_backbone, "model.hidden_from": hidden_from})
  results = pipeline.run(config, str(tmp_path / "run"))
  assert ensemble.load_bundle(str(tmp_path / "run")).meta["precision"] == "float32"
  _as_previous_format(tmp_path / "run")
  predictor = ensemble.load_bundle(str(tmp_path / "run"))
  assert predictor.slices()["text"] == text and results["input_dim"] == 105
  np.testing.assert_array_equal(predictor.test_probabilities(), results["test_prob"])
  explained = attribution.explain_run(predictor, max_pairs=10, steps=8, draws=1)
  assert explained.explanation.valid.sum() == 10


def test_a_previous_format_bundle_with_recording_statistics_asks_for_a_rerun(tmp_path,
                                                                             tiny_backbone):
  config = make_tiny_config(tmp_path / "cache", **{
      "model.fusion": "mask", "text.salience_stats": "recording"})
  pipeline.run(config, str(tmp_path / "run"))
  _as_previous_format(tmp_path / "run")
  with pytest.raises(bundle.BundleError, match=r"predates saved salience statistics.*"
                                               r"salience_stats='recording'; rerun") as e:
    ensemble.load_bundle(str(tmp_path / "run"))
  assert "\n" not in str(e.value)


def test_embedder_as_dict_honours_chunking(tmp_path, short_backbone):
  settings = embedder_lib.EncoderSettings(backbone=short_backbone, long_prompts="chunk")
  store = settings.store(str(tmp_path))
  long_prompt = ("facial: left blink stress regulation, right blink stress regulation, jaw "
                 "drop shock surprise, left smile smirk positivity, brow raise <|endoftext|>")
  short = "facial: brow raise <|endoftext|>"
  table = store.embed([long_prompt, short], progress=False)
  warm = store.as_dict()
  np.testing.assert_array_equal(warm[long_prompt], table[0])
  np.testing.assert_array_equal(warm[short], table[1])
  np.testing.assert_array_equal(store.encode_uncached([long_prompt])[0], table[0])
  truncating = embedder_lib.EncoderSettings(backbone=short_backbone).store(str(tmp_path))
  assert not np.array_equal(truncating.embed([long_prompt], progress=False)[0], table[0])
  assert os.path.exists(store.path)


def test_the_baseline_fusion_streams_the_z_training_saw(tmp_path):
  """A frozen baseline encoder's embeddings: the batch path and the one-window predictor take the
  window's embedding and build training's z (the encoder itself is not part of a bundle)."""
  config = make_tiny_config(tmp_path / "cache")
  entry = synthetic.write_simulated_encoders(config.data, str(tmp_path / "encoders"))[0]
  config = make_tiny_config(tmp_path / "cache", **{"model.fusion": "baseline",
                                                   "model.baseline_dir": entry.split(":", 2)[2]})
  inputs = pipeline.prepare(config, cache_lib.StageCache(config.cache_dir))
  usable = np.flatnonzero(inputs.usable)
  assert inputs.recipe.slices() == {"baseline": slice(0, inputs.baseline.shape[1])}
  rep = representation.Representer(inputs.recipe, inputs.lo, inputs.span)(
      inputs.raw, baseline=inputs.baseline)
  np.testing.assert_array_equal(rep.z[:, usable], inputs.z[:, usable])
  d = inputs.z.shape[-1]
  params = mlp.PreferenceMLP(mlp.hidden_sizes(d, PAPER_CAPS)).init(
      jax.random.PRNGKey(0), np.zeros((1, d), np.float32))["params"]
  p = stream.WindowPredictor(params, inputs.recipe,
                             stream.TrainingRange(inputs.lo[1], inputs.span[1]))
  for w in usable[:10]:
    np.testing.assert_array_equal(p.represent(inputs.raw[w], baseline=inputs.baseline[w]),
                                  inputs.z[1, w])
  with pytest.raises(ValueError, match="baseline encoder's window embeddings"):
    p.represent(inputs.raw[usable[0]])


def test_a_dataset_module_must_declare_its_time_base(monkeypatch, tmp_path):
  """Bundles pool new recordings onto the dataset's declared time base: a module without one is
  a config problem before any work, not an error after training."""
  import types  # pylint: disable=import-outside-toplevel
  from lasca_jax.data import datasets  # pylint: disable=import-outside-toplevel
  mine = types.ModuleType("lasca_jax.data.datasets.mine")
  mine.load_recordings = mine.fingerprint = lambda data_config: None
  monkeypatch.setattr(datasets, "get_module", lambda name: mine)
  config = make_tiny_config(tmp_path)
  found = validate.problems(config)
  assert found == ["data.name='synthetic' (module lasca_jax.data.datasets.mine lacks "
                   "time_base_hz; see lasca_jax/data/datasets/__init__.py for what a dataset "
                   "module declares)"]
  mine.time_base_hz = lambda data_config: 25.0
  assert validate.problems(config) == []
