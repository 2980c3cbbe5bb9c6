"""Cached stages, bad input, lexicons, the encoder store, and a smoke run of main."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lasca_jax.data.types import FACE_FEATURE_NAMES, MFCC_NAMES, Recording
from lasca_jax.encoders import encoding, text as text_lib
from lasca_jax.method import lexicon
from lasca_jax.run import cache, pipeline
from conftest import ROOT, make_tiny_config


def test_second_run_recomputes_nothing_and_returns_identical_arrays(tmp_path):
  config = make_tiny_config(tmp_path / "cache", **{"model.fusion": "fused"})
  first = pipeline.run(config, str(tmp_path / "run1"))
  assert first["_cache_hits"] == {}
  second = pipeline.run(config, str(tmp_path / "run2"))
  assert second["_cache_misses"] == {}
  assert set(second["_cache_hits"]) == {"frames", "windows", "normalise", "pairs", "salience",
                                        "prompts"}
  for key in ("test_accuracy", "best_epoch", "train_loss", "test_prob", "prompt_index"):
    np.testing.assert_array_equal(first[key], second[key])
  log = [json.loads(l) for l in open(tmp_path / "run2" / "log.jsonl")]
  assert [e["newly_encoded"] for e in log if e["event"] == "embeddings"] == [0]
  # main's runs switch the persistent cache on; the second finds the first's wrapped program.
  assert [e["stored_program"] for e in log if e["event"] == "trained"] == ["in memory"]


def test_a_changed_margin_recomputes_only_the_pairs(tmp_path):
  config = make_tiny_config(tmp_path / "cache")
  pipeline.run(config, str(tmp_path / "a"))
  config.pairs.margin = 0.2
  out = pipeline.run(config, str(tmp_path / "b"))
  assert out["_cache_misses"] == {"pairs": 1}
  config.features.window_seconds = 5.0
  out = pipeline.run(config, str(tmp_path / "c"))
  assert out["_cache_misses"] == {"windows": 1, "normalise": 1, "pairs": 1}


def test_cache_entries_are_written_atomically(tmp_path):
  store = cache.StageCache(str(tmp_path))
  key = cache.hash_key("windows", {"x": 1})
  store.get_or_compute("windows", key, lambda: {"a": np.arange(3)})
  path = store.path("windows", key)
  assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]   # no temp files left

  def boom():
    raise KeyboardInterrupt
  with pytest.raises(KeyboardInterrupt):
    store.get_or_compute("windows", cache.hash_key("windows", {"x": 2}), boom)
  assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]
  with open(path, "wb") as f:          # a truncated entry is recomputed, not trusted
    f.write(b"PK\x03")
  again = store.get_or_compute("windows", key, lambda: {"a": np.arange(3)})
  np.testing.assert_array_equal(again["a"], np.arange(3))


def _fake_dataset(tmp_path, monkeypatch, features_fn):
  """Registers lasca_jax.data.datasets.fake built from ``features_fn(subject) -> [T, 73]``."""
  import types
  module = types.ModuleType("lasca_jax.data.datasets.fake")
  names = FACE_FEATURE_NAMES + MFCC_NAMES
  mods = ("face",) * len(FACE_FEATURE_NAMES) + ("audio",) * len(MFCC_NAMES)

  def load_recordings(data_config):
    out = []
    for s in range(4):
      rng = np.random.default_rng(s)
      n = 300
      out.append(Recording(f"r{s}", f"s{s}", np.arange(n) / 10.0, features_fn(s, rng, n),
                           names, mods, np.sin(np.arange(n) / 20).astype(np.float32),
                           np.cos(np.arange(n) / 25 + s).astype(np.float32)))
    return out
  module.load_recordings = load_recordings
  module.fingerprint = lambda data_config: {"fake": str(tmp_path)}
  module.time_base_hz = lambda data_config: 10.0      # its recordings' frames are 0.1 s apart
  monkeypatch.setitem(sys.modules, "lasca_jax.data.datasets.fake", module)
  config = make_tiny_config(tmp_path / "cache", **{"data.name": "fake", "protocol.num_folds": 2})
  return config


def test_infinite_features_are_an_error_naming_the_recording(tmp_path, monkeypatch):
  def feats(s, rng, n):
    x = rng.random((n, 73)).astype(np.float32)
    if s == 2:
      x[17, 60] = np.inf
    return x
  config = _fake_dataset(tmp_path, monkeypatch, feats)
  with pytest.raises(ValueError, match=r"r2: infinite feature value at time step 17 \(feature "
                                       r"'mfcc_2'\)"):
    pipeline.run(config, str(tmp_path / "run"))


def test_nan_features_drop_windows_not_runs(tmp_path, monkeypatch):
  def feats(s, rng, n):
    x = rng.random((n, 73)).astype(np.float32)
    x[:150, :58] = np.nan              # no face in the first 15 s of every recording
    return x
  config = _fake_dataset(tmp_path, monkeypatch, feats)
  inputs = pipeline.prepare(config, cache.StageCache(config.cache_dir))
  assert np.isfinite(inputs.z).all()
  assert inputs.usable.sum() == 4 * 5            # windows 5..9 of each 30 s recording
  config.features.modality = "audio"             # audio is complete: every window usable
  assert pipeline.prepare(config, cache.StageCache(config.cache_dir)).usable.all()


def test_no_pairs_after_margin_is_a_clear_error(tmp_path):
  config = make_tiny_config(tmp_path / "cache", **{"pairs.margin": 1e9})
  with pytest.raises(ValueError, match="no preference pairs.*margin"):
    pipeline.run(config, str(tmp_path / "run"))


def test_unknown_backbone_and_missing_model_path(tmp_path):
  with pytest.raises(ValueError, match="unknown text backbone 'bert-huge'"):
    text_lib.resolve("bert-huge")
  with pytest.raises(FileNotFoundError, match="model_path '/nonexistent/model' does not exist"):
    text_lib.resolve("all-mpnet-base-v2", "/nonexistent/model")
  for name in text_lib.PAPER_BACKBONES:            # all five paper backbones selectable by name
    assert text_lib.resolve(name) == f"sentence-transformers/{name}"
  config = make_tiny_config(tmp_path / "cache", **{"model.fusion": "fused",
                                                   "text.backbone": "bert-huge"})
  with pytest.raises(ValueError, match="unknown text backbone"):
    pipeline.run(config, str(tmp_path / "run"))


def test_unavailable_weights_fail_with_instructions(tmp_path, monkeypatch):
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
  with pytest.raises(RuntimeError, match="model_path"):
    text_lib.load_model("all-distilroberta-v1")


def test_embedding_store_encodes_each_prompt_once_across_runs(tmp_path):
  prompts = ["facial: jaw drop shock surprise <|endoftext|>",
             "facial: left smile smirk positivity <|endoftext|>"]
  store = encoding.EmbeddingStore(str(tmp_path), "all-MiniLM-L6-v2")
  emb = store.embed(prompts + prompts[:1], progress=False)
  assert emb.shape == (3, 384) and store.encoded_count == 2
  np.testing.assert_array_equal(emb[0], emb[2])
  again = encoding.EmbeddingStore(str(tmp_path), "all-MiniLM-L6-v2")
  np.testing.assert_array_equal(again.embed(prompts[::-1], progress=False), emb[[1, 0]])
  assert again.encoded_count == 0 and again._model is None        # never even loaded
  model = text_lib.load_model("all-MiniLM-L6-v2")
  direct = model.encode(prompts)
  np.testing.assert_allclose(emb[:2], direct, atol=1e-5)
  # Prompts over the encoder's token limit are counted (and logged) as truncated.
  assert store.truncated_count == 0
  long_prompt = "facial: " + ", ".join(["left blink stress regulation"] * 80) + " <|endoftext|>"
  assert text_lib.count_truncated(model, [long_prompt, prompts[0]]) == 1
  store.embed([long_prompt], progress=False)
  assert store.truncated_count == 1 and store.encoded_count == 3


def test_lexicons():
  names = list(FACE_FEATURE_NAMES + MFCC_NAMES)
  mods = ["face"] * 58 + ["audio"] * 15
  assert len(lexicon.PAPER_FACE_LEXICON) == 43 and len(lexicon.PAPER_AUDIO_LEXICON) == 13
  assert lexicon.uncovered(names) == [
      "_neutral", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight",
      "eyeLookUpLeft", "eyeLookUpRight", "mouthLeft", "mouthRight", "headPitch", "headYaw",
      "headRoll", "headTx", "headTy", "headTz", "mfcc_13", "mfcc_14"]
  llm = lexicon.build_lexicon("llm", names, mods)
  assert llm[names.index("mouthSmileRight")] == "right smile genuine positivity"
  assert llm[names.index("eyeLookUpLeft")] == "eye look up left"
  plain = lexicon.build_lexicon("feature_name", names, mods)
  assert plain[names.index("browDownLeft")] == "brow down left"
  assert plain[names.index("mfcc_3")] == "mfcc 3"
  shuffled = lexicon.build_lexicon("shuffled", names, mods, seed=1)
  assert shuffled != llm
  assert sorted(shuffled[:58]) == sorted(llm[:58]) and sorted(shuffled[58:]) == sorted(llm[58:])
  assert shuffled == lexicon.build_lexicon("shuffled", names, mods, seed=1)


def test_lexicon_file_with_fallback_and_errors(tmp_path):
  path = tmp_path / "lex.csv"
  path.write_text("feature,phrase\nAU12_r,lip corner pull warm smile\n")
  phrases = lexicon.build_lexicon(str(path), ["AU12_r", "AU04_r"], ["face", "face"])
  assert phrases == ["lip corner pull warm smile", "au04 r"]
  bad = tmp_path / "bad.json"
  bad.write_text('{"AU12_r": ""}')
  with pytest.raises(ValueError, match=f"{bad}.*empty"):
    lexicon.build_lexicon(str(bad), ["AU12_r"], ["face"])
  with pytest.raises(ValueError, match="unknown lexicon"):
    lexicon.build_lexicon("gpt", ["AU12_r"], ["face"])


def test_main_smoke_run_and_rerun_from_config_json(tmp_path):
  env = dict(os.environ, LASCA_JAX_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
  cmd = [sys.executable, os.path.join(ROOT, "experiments", "main.py"),
         "--config=" + os.path.join(ROOT, "configs", "synthetic.py") + ":runlocal",
         f"--workdir={tmp_path / 'run'}", "--config.pairs.target=valence"]
  done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  # No start-up noise a user cannot act on: JAX's missing-TPU note, weight-loading bars.
  assert "Unable to initialize backend" not in done.stderr and "Loading weights" not in done.stderr
  results = np.load(tmp_path / "run" / "results.npz")
  assert results["test_accuracy"].shape == (3,)
  assert ((results["test_accuracy"] >= 0) & (results["test_accuracy"] <= 1)).all()
  assert results["train_loss"].shape == results["val_accuracy"].shape == (3, 5)
  saved = json.load(open(tmp_path / "run" / "config.json"))
  assert saved["pairs"]["target"] == "valence" and saved["model_label"] == "MiniLM-L6(F)"
  events = [json.loads(l)["event"] for l in open(tmp_path / "run" / "log.jsonl")]
  assert events[0] == "start" and events[-1] == "done"
  # The saved config reproduces the run exactly.
  again = [sys.executable, os.path.join(ROOT, "experiments", "main.py"),
           "--config=" + os.path.join(ROOT, "configs", "from_json.py") + ":" +
           str(tmp_path / "run" / "config.json"), f"--workdir={tmp_path / 'again'}"]
  done = subprocess.run(again, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  np.testing.assert_array_equal(np.load(tmp_path / "again" / "results.npz")["test_accuracy"],
                                results["test_accuracy"])
