"""The frozen sentence encoder in JAX: a Flax BERT with sentence-transformers pooling.

:class:`JaxSentenceEncoder` loads a local sentence-transformers folder without torch: the
transformer's shape from ``config.json``, its weights from ``model.safetensors`` (read with
``safetensors.numpy``), the tokenizer from ``tokenizer.json`` (the ``tokenizers`` library), the
window from ``sentence_bert_config.json`` (``max_seq_length``) and the module list from
``modules.json`` (a ``Transformer``, a ``Pooling`` module: mean, CLS, max or mean-sqrt-len
pooling over the attention mask, and an optional ``Normalize``). It answers what
:class:`lasca_jax.encoders.encoding.EmbeddingStore` asks of a ``SentenceTransformer``:
``encode``, ``tokenizer(texts, ...)["input_ids"]`` (untruncated token counts),
``max_seq_length`` and ``get_sentence_embedding_dimension()``; ``config.text.engine="jax"``
selects it (:func:`lasca_jax.encoders.text.load_model`).

Batches are padded to a length bucket (:func:`length_buckets`: 16, then multiples of 32 up to
the window) and a batch size bucket (powers of two), so each shape compiles once; the forward
pass is one jitted function of the weights and the token ids.

Scope: the BERT family (``model_type == "bert"``: all-MiniLM-L6-v2, all-MiniLM-L12-v2), in
float32. Not yet: DistilBERT, RoBERTa (all-distilroberta-v1) and MPNet (all-mpnet-base-v2,
multi-qa-mpnet-base-dot-v1), ``Dense`` modules after the pooling, half precision, and sharding a
batch over several devices.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import safetensors.numpy
import tokenizers

from lasca_jax.encoders import text as text_lib

FAMILIES = ("bert",)            # config.json model_type values this module implements
MIN_BUCKET = 16                 # shortest padded sequence length
BUCKET_STEP = 32                # padded lengths above it: multiples of this, then the window
POOLING_MODES = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens")


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """The fields of a Hugging Face BERT ``config.json`` the forward pass needs."""
  vocab_size: int
  hidden_size: int
  num_hidden_layers: int
  num_attention_heads: int
  intermediate_size: int
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"
  pad_token_id: int = 0

  @classmethod
  def from_folder(cls, folder: str) -> "BertConfig":
    """Reads ``folder/config.json``.

    Raises:
      ValueError: naming the folder and its ``model_type`` when it is not a BERT, or an
        unsupported position embedding or activation.
    """
    raw = text_lib.read_json(os.path.join(folder, "config.json"), "the transformer's config")
    model_type = raw.get("model_type")
    if model_type not in FAMILIES:
      raise ValueError(f"{folder}: model_type {model_type!r} is not implemented by the JAX "
                       f"sentence encoder (it supports {FAMILIES} only: all-MiniLM-L6-v2, "
                       "all-MiniLM-L12-v2); use the torch engine for this backbone")
    position = raw.get("position_embedding_type", "absolute")
    if position != "absolute":
      raise ValueError(f"{folder}: position_embedding_type {position!r} is not implemented by "
                       "the JAX sentence encoder (absolute only)")
    if raw.get("hidden_act", "gelu") not in ACTIVATIONS:
      raise ValueError(f"{folder}: hidden_act {raw.get('hidden_act')!r} is not implemented by "
                       f"the JAX sentence encoder (one of {sorted(ACTIVATIONS)})")
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in raw.items() if k in fields and v is not None})


ACTIVATIONS = {
    "gelu": lambda x: nn.gelu(x, approximate=False),          # erf form, as BERT's "gelu"
    "gelu_new": lambda x: nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: nn.gelu(x, approximate=True),
    "relu": nn.relu,
}


class SelfAttention(nn.Module):
  """Multi-head scaled dot-product attention over unmasked positions."""
  config: BertConfig

  @nn.compact
  def __call__(self, x, bias):
    c = self.config
    heads, width = c.num_attention_heads, c.hidden_size // c.num_attention_heads
    split = lambda t: t.reshape(t.shape[:2] + (heads, width))
    q = split(nn.Dense(c.hidden_size, name="query")(x))
    k = split(nn.Dense(c.hidden_size, name="key")(x))
    v = split(nn.Dense(c.hidden_size, name="value")(x))
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(jnp.float32(width)) + bias
    weights = jax.nn.softmax(scores, axis=-1)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(x.shape)
    return nn.Dense(c.hidden_size, name="output")(out)


class Layer(nn.Module):
  """One post-LayerNorm transformer block: attention, then the feed-forward network."""
  config: BertConfig

  @nn.compact
  def __call__(self, x, bias):
    c = self.config
    ln = lambda name: nn.LayerNorm(epsilon=c.layer_norm_eps, name=name)
    x = ln("attention_norm")(x + SelfAttention(c, name="attention")(x, bias))
    h = ACTIVATIONS[c.hidden_act](nn.Dense(c.intermediate_size, name="intermediate")(x))
    return ln("output_norm")(x + nn.Dense(c.hidden_size, name="output")(h))


class Bert(nn.Module):
  """Token, position and token-type embeddings, LayerNorm, then the layers; returns the last
  hidden states ``[B, L, H]``."""
  config: BertConfig

  @nn.compact
  def __call__(self, ids, mask):
    c = self.config
    positions = jnp.arange(ids.shape[1])[None, :]
    x = (nn.Embed(c.vocab_size, c.hidden_size, name="word")(ids)
         + nn.Embed(c.max_position_embeddings, c.hidden_size, name="position")(positions)
         + nn.Embed(c.type_vocab_size, c.hidden_size, name="token_type")(jnp.zeros_like(ids)))
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, name="embedding_norm")(x)
    bias = jnp.where(mask[:, None, None, :] > 0, 0.0, jnp.finfo(jnp.float32).min)
    for i in range(c.num_hidden_layers):
      x = Layer(c, name=f"layer_{i}")(x, bias)
    return x


def bert_params(tensors: dict[str, np.ndarray], config: BertConfig, folder: str) -> dict:
  """The :class:`Bert` parameter tree from a Hugging Face BERT state dict (``nn.Linear``
  weights are ``[out, in]``, Flax kernels ``[in, out]``).

  Raises:
    ValueError: naming the folder and the first missing weight.
  """
  prefix = "bert." if any(k.startswith("bert.") for k in tensors) else ""

  def get(name):
    key = prefix + name
    if key not in tensors:
      raise ValueError(f"{folder}: model.safetensors has no weight {key!r}; is it a BERT?")
    return np.asarray(tensors[key], np.float32)

  dense = lambda n: {"kernel": get(f"{n}.weight").T, "bias": get(f"{n}.bias")}
  norm = lambda n: {"scale": get(f"{n}.weight"), "bias": get(f"{n}.bias")}
  params = {
      "word": {"embedding": get("embeddings.word_embeddings.weight")},
      "position": {"embedding": get("embeddings.position_embeddings.weight")},
      "token_type": {"embedding": get("embeddings.token_type_embeddings.weight")},
      "embedding_norm": norm("embeddings.LayerNorm"),
  }
  for i in range(config.num_hidden_layers):
    p = f"encoder.layer.{i}."
    params[f"layer_{i}"] = {
        "attention": {"query": dense(p + "attention.self.query"),
                      "key": dense(p + "attention.self.key"),
                      "value": dense(p + "attention.self.value"),
                      "output": dense(p + "attention.output.dense")},
        "attention_norm": norm(p + "attention.output.LayerNorm"),
        "intermediate": dense(p + "intermediate.dense"),
        "output": dense(p + "output.dense"),
        "output_norm": norm(p + "output.LayerNorm"),
    }
  return params


def pool(hidden, mask, modes: Sequence[str], normalize: bool):
  """sentence-transformers' ``Pooling`` (the modes' vectors concatenated in its order) and
  ``Normalize`` (L2, norms clamped at 1e-12)."""
  m = mask[..., None].astype(hidden.dtype)
  count = jnp.maximum(m.sum(axis=1), 1e-9)
  total = (hidden * m).sum(axis=1)
  parts = []
  for mode in modes:
    if mode == "cls_token":
      parts.append(hidden[:, 0])
    elif mode == "max_tokens":
      parts.append(jnp.where(m > 0, hidden, jnp.finfo(hidden.dtype).min).max(axis=1))
    elif mode == "mean_tokens":
      parts.append(total / count)
    elif mode == "mean_sqrt_len_tokens":
      parts.append(total / jnp.sqrt(count))
  out = jnp.concatenate(parts, axis=-1)
  if normalize:
    out = out / jnp.maximum(jnp.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
  return out


def read_modules(folder: str) -> tuple[list[str], bool, int]:
  """``(pooling modes, normalize, dimension)`` from ``modules.json`` and the pooling config.

  Raises:
    ValueError: naming the folder for a module this encoder does not implement (a ``Dense``
      projection, say) or a missing pooling module.
  """
  modules = text_lib.read_json(os.path.join(folder, "modules.json"),
                               "the sentence-transformers module list")
  modes, normalize, dim = None, False, 0
  for i, module in enumerate(modules):
    kind = str(module.get("type", "")).rsplit(".", 1)[-1]
    if kind == "Transformer" and i == 0:
      continue
    if kind == "Pooling" and modes is None:
      with open(os.path.join(folder, module.get("path", ""), "config.json")) as f:
        cfg = json.load(f)
      modes = [m for m in POOLING_MODES if cfg.get(f"pooling_mode_{m}")]
      unknown = sorted(k for k, v in cfg.items() if k.startswith("pooling_mode_") and v and
                       k[len("pooling_mode_"):] not in POOLING_MODES)
      if unknown or not modes:
        raise ValueError(f"{folder}: pooling {unknown or 'none'} is not implemented by the JAX "
                         f"sentence encoder (modes: {POOLING_MODES})")
      dim = int(cfg["word_embedding_dimension"]) * len(modes)
    elif kind == "Normalize" and modes is not None and not normalize:
      normalize = True
    else:
      raise ValueError(f"{folder}: module {i} ({module.get('type')}) is not implemented by the "
                       "JAX sentence encoder (Transformer, Pooling, Normalize only)")
  if modes is None:
    raise ValueError(f"{folder}: modules.json has no Pooling module")
  return modes, normalize, dim


def length_buckets(limit: int) -> tuple[int, ...]:
  """Padded sequence lengths: :data:`MIN_BUCKET`, the multiples of :data:`BUCKET_STEP` below
  ``limit``, and ``limit``. (Powers of two padded the synthetic prompts, 60 to 200 tokens, by
  up to 2x; steps of 32 tokens waste at most 31 per sequence for a few more compiled shapes.)"""
  out = [n for n in range(BUCKET_STEP, int(limit), BUCKET_STEP) if n > MIN_BUCKET]
  return tuple(n for n in (MIN_BUCKET,) if n < limit) + tuple(out) + (int(limit),)


def _bucket(n: int, buckets: Sequence[int]) -> int:
  return next(b for b in buckets if b >= n)


class TokenCounter:
  """The slice of a Hugging Face tokenizer's call that token counting uses: ``__call__(texts,
  add_special_tokens=True, truncation=False, ...) -> {"input_ids": [[int, ...], ...]}``
  (untruncated unless ``truncation``)."""

  def __init__(self, tokenizer: tokenizers.Tokenizer, limit: int):
    self._whole = tokenizers.Tokenizer.from_str(tokenizer.to_str())
    self._whole.no_truncation()
    self._whole.no_padding()
    self._cut = tokenizers.Tokenizer.from_str(self._whole.to_str())
    self._cut.enable_truncation(limit)
    self.model_max_length = limit

  def __call__(self, texts, add_special_tokens: bool = True, truncation: bool = False,
               **_) -> dict[str, list[list[int]]]:
    texts = [texts] if isinstance(texts, str) else list(texts)
    tok = self._cut if truncation else self._whole
    encs = tok.encode_batch(texts, add_special_tokens=add_special_tokens)
    return {"input_ids": [e.ids for e in encs]}


class JaxSentenceEncoder:
  """A frozen BERT sentence transformer from a local folder, run by JAX (no torch).

  Attributes:
    folder: the sentence-transformers folder.
    config: its :class:`BertConfig`.
    max_seq_length: the window; longer inputs are truncated to it (special tokens included).
    tokenizer: a :class:`TokenCounter` (untruncated counts for the store's length checks).
    buckets: the padded sequence lengths a batch is compiled at.
    transformer_shape: ``(layers, hidden, intermediate)`` for the FLOP counts.
  """

  def __init__(self, folder: str, precision: str = "float32"):
    if precision != "float32":
      raise ValueError(f"config.text.precision={precision!r}: the JAX sentence encoder runs "
                       "float32 only (half precision is not yet implemented); use "
                       "--config.text.precision=float32 or the torch engine")
    self.folder = str(folder)
    self.config = BertConfig.from_folder(self.folder)
    self.modes, self.normalize, self.dim = read_modules(self.folder)
    self.max_seq_length = self._window()
    tok = tokenizers.Tokenizer.from_file(os.path.join(self.folder, "tokenizer.json"))
    self.tokenizer = TokenCounter(tok, self.max_seq_length)
    self._tok = tokenizers.Tokenizer.from_str(tok.to_str())
    self._tok.no_padding()
    self._tok.enable_truncation(self.max_seq_length)
    self.buckets = length_buckets(self.max_seq_length)
    tensors = safetensors.numpy.load_file(os.path.join(self.folder, "model.safetensors"))
    self.params = jax.tree.map(jnp.asarray, bert_params(tensors, self.config, self.folder))
    self.transformer_shape = (self.config.num_hidden_layers, self.config.hidden_size,
                              self.config.intermediate_size)
    bert, modes, normalize = Bert(self.config), tuple(self.modes), self.normalize
    self._forward = jax.jit(lambda params, ids, mask: pool(
        bert.apply({"params": params}, ids, mask), mask, modes, normalize))

  def _window(self) -> int:
    path = os.path.join(self.folder, "sentence_bert_config.json")
    limit = 0
    if os.path.exists(path):
      with open(path) as f:
        limit = int(json.load(f).get("max_seq_length") or 0)
    positions = self.config.max_position_embeddings
    return min(limit, positions) if limit else positions

  def get_sentence_embedding_dimension(self) -> int:
    return self.dim

  get_embedding_dimension = get_sentence_embedding_dimension   # sentence-transformers >= 6 name

  def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
    """Token ids as encoded: special tokens added, truncated at :attr:`max_seq_length`."""
    return [e.ids for e in self._tok.encode_batch(list(texts))]

  def encode(self, texts: Sequence[str] | str, batch_size: int = 32, convert_to_numpy: bool = True,
             show_progress_bar: bool = False, **_) -> np.ndarray:
    """``float32 [n, dim]`` (``[dim]`` for one string), as ``SentenceTransformer.encode``.

    Texts are sorted longest first and run ``batch_size`` at a time, each batch padded to a
    length bucket and a power-of-two batch size.
    """
    del convert_to_numpy, show_progress_bar
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    out = np.zeros((len(texts), self.dim), np.float32)
    if not texts:
      return out
    ids = self.tokenize(texts)
    order = np.argsort([-len(i) for i in ids], kind="stable")
    step = max(int(batch_size), 1)
    for start in range(0, len(texts), step):
      idx = order[start:start + step]
      rows = 1 << (len(idx) - 1).bit_length()
      width = _bucket(max(len(ids[i]) for i in idx), self.buckets)
      tokens = np.full((rows, width), self.config.pad_token_id, np.int32)
      mask = np.zeros((rows, width), np.int32)
      for r, i in enumerate(idx):
        tokens[r, :len(ids[i])] = ids[i]
        mask[r, :len(ids[i])] = 1
      emb = self._forward(self.params, tokens, mask)
      out[idx] = np.asarray(emb, np.float32)[:len(idx)]
    return out[0] if single else out

