"""The frozen sentence encoder in JAX: a Flax transformer with sentence-transformers' modules.

:class:`JaxSentenceEncoder` loads a local sentence-transformers folder without torch: the
transformer's shape from ``config.json`` (its ``model_type`` picks the family), its weights from
``model.safetensors`` (read with ``safetensors.numpy``), the tokenizer from ``tokenizer.json``
(the ``tokenizers`` library), the window from ``sentence_bert_config.json``
(``max_seq_length``) and the module list from ``modules.json`` (a ``Transformer``, a ``Pooling``
module: mean, CLS, max or mean-sqrt-len pooling over the attention mask, optional ``Dense``
projections, and an optional ``Normalize``). It answers what
:class:`lasca_jax.encoders.encoding.EmbeddingStore` asks of a ``SentenceTransformer``:
``encode``, ``tokenizer(texts, ...)["input_ids"]`` (untruncated token counts),
``max_seq_length`` and ``get_sentence_embedding_dimension()``; ``config.text.engine="jax"``
selects it (:func:`lasca_jax.encoders.text.load_model`).

The four families share one post-LayerNorm transformer (:class:`Encoder`) and differ in what
:class:`EncoderConfig` records: BERT has token types and positions 0, 1, 2, ...; DistilBERT
has no token types; RoBERTa counts positions from its padding index + 1 over the non-pad
tokens; MPNet does too, has no token types and adds a relative position bias (32 buckets, one
table shared by all layers) to the attention scores. Their weight names are mapped by
:data:`LAYER_WEIGHTS`.

Texts are run in micro-batches (:func:`micro_batches`): sorted longest first, about
:data:`MICRO_TOKENS` padded tokens per device and call, each padded to its own length bucket
(:func:`length_buckets`: 16, then multiples of 16 up to the window), so there is one compiled
shape per length bucket and little padding. On a CPU this is faster than large batches: small
calls keep the attention scores and the feed-forward activations in cache (a 64 x 128 token
batch ran at 58 GFLOP/s, the same tokens as 4 x 128 calls at 87-98, on the 2-core development
machine; calls of 1,024 or 2,048 tokens were slower than 512). The queries, keys and values
come from one projection and the heads are laid out ``[B, H, L, D]`` before the attention
products. The forward pass is one jitted function of the weights and the token ids; a batch of
calls is dispatched before any result is read, and each call's rows are split over the local
devices (the trainer's mesh, :func:`lasca_jax.model.programs.units_mesh`).

Precision (:data:`PRECISIONS`): the transformer's weights and computation in float32, bfloat16
or float16 (LayerNorm statistics in float32, as Flax computes them), the pooling, ``Dense``
modules and ``Normalize`` in float32. Half precision agrees with sentence-transformers run in
the same precision to a cosine of 0.999 (``tests/test_flax_encoder.py``), not to 1e-5.

Scope: ``model_type`` in :data:`FAMILIES`: BERT (all-MiniLM-L6-v2,
all-MiniLM-L12-v2), DistilBERT (multi-qa-distilbert-cos-v1), RoBERTa (all-distilroberta-v1)
and MPNet (all-mpnet-base-v2, multi-qa-mpnet-base-dot-v1), with ``Dense`` modules after the
pooling. Checked against sentence-transformers on the packaged all-MiniLM-L6-v2 and on small
randomly initialised models of each family (``tests/test_flax_families.py``); the other paper
backbones' own weights were not available offline to check.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import safetensors.numpy
import tokenizers

from lasca_jax.encoders import text as text_lib
from lasca_jax.model import programs

FAMILIES = ("bert", "distilbert", "mpnet", "roberta")   # config.json model_type values implemented
MIN_BUCKET = 16                 # shortest padded sequence length
BUCKET_STEP = 16                # padded lengths above it: multiples of this, then the window
PRECISIONS = ("float32", "bfloat16", "float16")   # the transformer's weights and compute
MICRO_TOKENS = 512              # padded tokens per device and compiled call (see micro_batches)
POOLING_MODES = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens")
RELATIVE_BUCKETS = 32           # MPNet's relative position buckets (half per direction) ...
RELATIVE_MAX_DISTANCE = 128     # ... logarithmic from 8 tokens apart up to this distance

# config.json fields named otherwise than BERT's, per family.
RENAMED_FIELDS = {"distilbert": {
    "dim": "hidden_size", "n_layers": "num_hidden_layers", "n_heads": "num_attention_heads",
    "hidden_dim": "intermediate_size", "activation": "hidden_act"}}
# Fields fixed by a family's architecture, whatever config.json says. MPNet's position padding
# index is 1 in its embedding code; RoBERTa's is its pad_token_id (set in from_folder).
FIXED_FIELDS = {"bert": {},
                "roberta": {},
                "distilbert": {"type_vocab_size": 0, "layer_norm_eps": 1e-12},
                "mpnet": {"type_vocab_size": 0, "position_padding_idx": 1,
                          "relative_buckets": RELATIVE_BUCKETS}}


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """What the forward pass needs of a Hugging Face ``config.json``, in BERT's field names."""
  model_type: str
  vocab_size: int
  hidden_size: int
  num_hidden_layers: int
  num_attention_heads: int
  intermediate_size: int
  max_position_embeddings: int = 512
  type_vocab_size: int = 2          # 0: no token-type embedding (DistilBERT, MPNet)
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"
  pad_token_id: int = 0
  position_padding_idx: int = -1    # >= 0: positions count non-pad tokens from this + 1
  relative_buckets: int = 0         # > 0: MPNet's relative position bias

  @property
  def positions(self) -> int:
    """The longest sequence the position embedding covers."""
    return self.max_position_embeddings - max(self.position_padding_idx + 1, 0)

  @classmethod
  def from_folder(cls, folder: str) -> "EncoderConfig":
    """Reads ``folder/config.json``.

    Raises:
      ValueError: naming the folder and its ``model_type`` when it is not one of
        :data:`FAMILIES`, or an unsupported position embedding or activation.
    """
    raw = text_lib.read_json(os.path.join(folder, "config.json"), "the transformer's config")
    model_type = raw.get("model_type")
    if model_type not in FAMILIES:
      raise ValueError(f"{folder}: model_type {model_type!r} is not implemented by the JAX "
                       f"sentence encoder (it supports {FAMILIES}: the MiniLM, DistilBERT, "
                       "DistilRoBERTa and MPNet backbones); use the torch engine for this "
                       "backbone")
    position = raw.get("position_embedding_type", "absolute")
    if position != "absolute":
      raise ValueError(f"{folder}: position_embedding_type {position!r} is not implemented by "
                       "the JAX sentence encoder (absolute only)")
    renamed = RENAMED_FIELDS.get(model_type, {})
    raw = {renamed.get(k, k): v for k, v in raw.items() if v is not None}
    if raw.get("hidden_act", "gelu") not in ACTIVATIONS:
      raise ValueError(f"{folder}: activation {raw.get('hidden_act')!r} is not implemented by "
                       f"the JAX sentence encoder (one of {sorted(ACTIVATIONS)})")
    fields = {f.name for f in dataclasses.fields(cls)} - {"position_padding_idx",
                                                         "relative_buckets"}
    values = {k: v for k, v in raw.items() if k in fields}
    if model_type == "roberta":
      values["position_padding_idx"] = int(raw.get("pad_token_id", 1))
    return cls(**{**values, **FIXED_FIELDS[model_type]})


ACTIVATIONS = {
    "gelu": lambda x: nn.gelu(x, approximate=False),          # erf form, as BERT's "gelu"
    "gelu_new": lambda x: nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: nn.gelu(x, approximate=True),
    "relu": nn.relu,
}


def relative_buckets(length: int, buckets: int = RELATIVE_BUCKETS,
                     max_distance: int = RELATIVE_MAX_DISTANCE) -> np.ndarray:
  """``int [L, L]``: MPNet's bucket of key position ``k`` seen from query position ``q``.

  Half the buckets for keys after the query, half for the others; in each half, distances below
  a quarter of ``buckets`` have their own bucket, longer ones share logarithmically wider ones
  up to ``max_distance``, beyond which they share the last. Computed in float32 on the host
  (the lengths are static), as torch computes it.
  """
  rel = np.arange(length)[None, :] - np.arange(length)[:, None]     # [q, k]: k - q
  half = buckets // 2
  exact = half // 2
  n = np.abs(rel)
  scale = np.float32(np.log(max_distance / exact))
  logs = np.log(np.maximum(n, 1).astype(np.float32) / np.float32(exact)) / scale
  far = np.minimum(exact + (logs * np.float32(half - exact)).astype(np.int64), half - 1)
  return np.where(rel > 0, half, 0) + np.where(n < exact, n, far)


def position_ids(ids, config: EncoderConfig):
  """``int [B, L]``: 0, 1, 2, ... or, with a position padding index ``p`` (RoBERTa, MPNet),
  ``p + 1, p + 2, ...`` over the tokens other than ``p`` and ``p`` at those."""
  p = config.position_padding_idx
  if p < 0:
    return jnp.broadcast_to(jnp.arange(ids.shape[1]), ids.shape)
  real = (ids != p).astype(jnp.int32)
  return jnp.cumsum(real, axis=1) * real + p


class SelfAttention(nn.Module):
  """Multi-head scaled dot-product attention; ``bias`` (``[B or 1, H or 1, L, L]``) is added to
  the scores (the padding mask, MPNet's relative positions).

  One ``[hidden, 3 hidden]`` projection gives the queries, keys and values (one wide matmul
  instead of three), and the heads are laid out ``[B, H, L, D]`` before the two batched
  products, the layout XLA's CPU dot runs without transposing the scores.
  """
  config: EncoderConfig

  @nn.compact
  def __call__(self, x, bias):
    c = self.config
    heads, width = c.num_attention_heads, c.hidden_size // c.num_attention_heads
    qkv = nn.Dense(3 * c.hidden_size, name="qkv")(x)
    q, k, v = qkv.reshape(x.shape[:2] + (3, heads, width)).transpose(2, 0, 3, 1, 4)
    scores = jnp.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(width) + bias
    weights = jax.nn.softmax(scores, axis=-1)
    out = jnp.einsum("bhqk,bhkd->bhqd", weights, v).transpose(0, 2, 1, 3).reshape(x.shape)
    return nn.Dense(c.hidden_size, name="output")(out)


class Layer(nn.Module):
  """One post-LayerNorm transformer block: attention, then the feed-forward network (the same
  block in all four families, under different weight names)."""
  config: EncoderConfig

  @nn.compact
  def __call__(self, x, bias):
    c = self.config
    ln = lambda name: nn.LayerNorm(epsilon=c.layer_norm_eps, name=name)
    x = ln("attention_norm")(x + SelfAttention(c, name="attention")(x, bias))
    h = ACTIVATIONS[c.hidden_act](nn.Dense(c.intermediate_size, name="intermediate")(x))
    return ln("output_norm")(x + nn.Dense(c.hidden_size, name="output")(h))


class Encoder(nn.Module):
  """Token and position embeddings (plus token types where the family has them), LayerNorm,
  then the layers; returns the last hidden states ``[B, L, H]``."""
  config: EncoderConfig

  @nn.compact
  def __call__(self, ids, mask):
    c = self.config
    embed = lambda n, name: nn.Embed(n, c.hidden_size, name=name)
    x = (embed(c.vocab_size, "word")(ids)
         + embed(c.max_position_embeddings, "position")(position_ids(ids, c)))
    if c.type_vocab_size:
      x = x + embed(c.type_vocab_size, "token_type")(jnp.zeros_like(ids))
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, name="embedding_norm")(x)
    bias = jnp.where(mask[:, None, None, :] > 0, 0.0,
                     jnp.finfo(x.dtype).min).astype(x.dtype)               # [B, 1, 1, L]
    if c.relative_buckets:   # one [1, H, L, L] bias for every layer
      table = nn.Embed(c.relative_buckets, c.num_attention_heads, name="relative_bias")
      bias = bias + table(relative_buckets(ids.shape[1], c.relative_buckets)).transpose(2, 0, 1)
    for i in range(c.num_hidden_layers):
      x = Layer(c, name=f"layer_{i}")(x, bias)
    return x


# Hugging Face names of each layer's weights ("{}" is the layer's index), per family.
_BERT_LAYER = {"query": "encoder.layer.{}.attention.self.query",
               "key": "encoder.layer.{}.attention.self.key",
               "value": "encoder.layer.{}.attention.self.value",
               "attention_output": "encoder.layer.{}.attention.output.dense",
               "attention_norm": "encoder.layer.{}.attention.output.LayerNorm",
               "intermediate": "encoder.layer.{}.intermediate.dense",
               "output": "encoder.layer.{}.output.dense",
               "output_norm": "encoder.layer.{}.output.LayerNorm"}
LAYER_WEIGHTS = {
    "bert": _BERT_LAYER,
    "roberta": _BERT_LAYER,
    "mpnet": {**_BERT_LAYER, "query": "encoder.layer.{}.attention.attn.q",
              "key": "encoder.layer.{}.attention.attn.k",
              "value": "encoder.layer.{}.attention.attn.v",
              "attention_output": "encoder.layer.{}.attention.attn.o",
              "attention_norm": "encoder.layer.{}.attention.LayerNorm"},
    "distilbert": {"query": "transformer.layer.{}.attention.q_lin",
                   "key": "transformer.layer.{}.attention.k_lin",
                   "value": "transformer.layer.{}.attention.v_lin",
                   "attention_output": "transformer.layer.{}.attention.out_lin",
                   "attention_norm": "transformer.layer.{}.sa_layer_norm",
                   "intermediate": "transformer.layer.{}.ffn.lin1",
                   "output": "transformer.layer.{}.ffn.lin2",
                   "output_norm": "transformer.layer.{}.output_layer_norm"},
}


def encoder_params(tensors: dict[str, np.ndarray], config: EncoderConfig, folder: str) -> dict:
  """The :class:`Encoder` parameter tree from a Hugging Face state dict, its names with or
  without the model-type prefix (``bert.``, ``roberta.``, ...). ``nn.Linear`` weights are
  ``[out, in]``, Flax kernels ``[in, out]``.

  Raises:
    ValueError: naming the folder and the first missing weight.
  """
  family = config.model_type
  prefix = f"{family}." if any(k.startswith(f"{family}.") for k in tensors) else ""

  def get(name):
    key = prefix + name
    if key not in tensors:
      raise ValueError(f"{folder}: model.safetensors has no weight {key!r}; is it a "
                       f"{family} model?")
    return np.asarray(tensors[key], np.float32)

  dense = lambda n: {"kernel": get(f"{n}.weight").T, "bias": get(f"{n}.bias")}
  norm = lambda n: {"scale": get(f"{n}.weight"), "bias": get(f"{n}.bias")}
  params = {
      "word": {"embedding": get("embeddings.word_embeddings.weight")},
      "position": {"embedding": get("embeddings.position_embeddings.weight")},
      "embedding_norm": norm("embeddings.LayerNorm"),
  }
  if config.type_vocab_size:
    params["token_type"] = {"embedding": get("embeddings.token_type_embeddings.weight")}
  if config.relative_buckets:
    params["relative_bias"] = {"embedding": get("encoder.relative_attention_bias.weight")}
  names = LAYER_WEIGHTS[family]
  for i in range(config.num_hidden_layers):
    n = {part: name.format(i) for part, name in names.items()}
    params[f"layer_{i}"] = {
        "attention": {"qkv": jax.tree.map(lambda *a: np.concatenate(a, axis=-1),
                                          *(dense(n[p]) for p in ("query", "key", "value"))),
                      "output": dense(n["attention_output"])},
        "attention_norm": norm(n["attention_norm"]),
        "intermediate": dense(n["intermediate"]),
        "output": dense(n["output"]),
        "output_norm": norm(n["output_norm"]),
    }
  return params


def pool(hidden, mask, modes: Sequence[str]):
  """sentence-transformers' ``Pooling``: the modes' vectors concatenated in its order."""
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
  return jnp.concatenate(parts, axis=-1)


def normalize(x):
  """sentence-transformers' ``Normalize``: L2, norms clamped at 1e-12."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


# sentence-transformers Dense activations, by the torch class name its config.json records.
DENSE_ACTIVATIONS = {
    "Tanh": jnp.tanh,
    "Identity": lambda x: x,
    "ReLU": nn.relu,
    "Sigmoid": nn.sigmoid,
    "GELU": lambda x: nn.gelu(x, approximate=False),
}


@dataclasses.dataclass(frozen=True)
class Head:
  """What follows the transformer in ``modules.json``: pooling, ``Dense`` projections (their
  activations, in order), ``Normalize``; ``dim`` is the embedding's size."""
  modes: tuple[str, ...]
  dense: tuple[str, ...] = ()
  normalize: bool = False
  dim: int = 0

  def __call__(self, params: list[dict], hidden, mask):
    out = pool(hidden, mask, self.modes)
    for activation, p in zip(self.dense, params):
      out = DENSE_ACTIVATIONS[activation](out @ p["kernel"] + p["bias"])
    return normalize(out) if self.normalize else out


def dense_module(folder: str, path: str) -> tuple[str, dict]:
  """``(activation, {"kernel", "bias"})`` of a sentence-transformers ``Dense`` module folder.

  Raises:
    ValueError: naming the module folder for an option this encoder does not implement or
      weights it cannot read without torch.
  """
  where = os.path.join(folder, path)
  cfg = text_lib.read_json(os.path.join(where, "config.json"), "the Dense module's config")
  activation = str(cfg.get("activation_function") or "Tanh").rsplit(".", 1)[-1]
  if activation not in DENSE_ACTIVATIONS:
    raise ValueError(f"{where}: Dense activation {cfg.get('activation_function')!r} is not "
                     "implemented by the JAX sentence encoder (one of "
                     f"{sorted(DENSE_ACTIVATIONS)})")
  names = (cfg.get("module_input_name"), cfg.get("module_output_name"))
  if cfg.get("use_residual") or any(n not in (None, "sentence_embedding") for n in names):
    raise ValueError(f"{where}: a Dense module with a residual or other input/output names is "
                     "not implemented by the JAX sentence encoder")
  weights = os.path.join(where, "model.safetensors")
  if not os.path.exists(weights):
    raise ValueError(f"{where}: no model.safetensors (the JAX sentence encoder does not read "
                     "pytorch_model.bin); re-save the model with sentence-transformers' "
                     "safe_serialization=True, or use the torch engine")
  tensors = safetensors.numpy.load_file(weights)
  kernel = np.asarray(tensors["linear.weight"], np.float32).T        # [in, out]
  if kernel.shape != (int(cfg["in_features"]), int(cfg["out_features"])):
    raise ValueError(f"{where}: linear.weight has shape {kernel.shape[::-1]}, config.json says "
                     f"({cfg['out_features']}, {cfg['in_features']})")
  bias = tensors.get("linear.bias") if cfg.get("bias", True) else None
  bias = np.zeros(kernel.shape[1], np.float32) if bias is None else np.asarray(bias, np.float32)
  return activation, {"kernel": kernel, "bias": bias}


# sentence-transformers >= 6 names of the pooling modes (its Pooling config's "pooling_mode").
POOLING_NAMES = {"cls": "cls_token", "max": "max_tokens", "mean": "mean_tokens",
                 "mean_sqrt_len_tokens": "mean_sqrt_len_tokens"}


def pooling(folder: str, path: str) -> tuple[list[str], int]:
  """``(modes, dimension)`` of a ``Pooling`` module's config, in either format:
  ``"pooling_mode": "mean"`` or a list, in concatenation order, with ``embedding_dimension``
  (sentence-transformers >= 6), or ``pooling_mode_<mode>: true`` flags, concatenated in
  :data:`POOLING_MODES` order, with ``word_embedding_dimension`` (earlier releases, the hub
  models').

  Raises:
    ValueError: naming the folder for a mode this encoder does not implement, or none.
  """
  cfg = text_lib.read_json(os.path.join(folder, path, "config.json"), "the Pooling config")
  if "pooling_mode" in cfg:
    named = cfg["pooling_mode"]
    named = [named] if isinstance(named, str) else list(named)
    unknown = [m for m in named if m not in POOLING_NAMES]
    modes = [POOLING_NAMES[m] for m in named if m in POOLING_NAMES]
  else:
    modes = [m for m in POOLING_MODES if cfg.get(f"pooling_mode_{m}")]
    unknown = sorted(k for k, v in cfg.items() if k.startswith("pooling_mode_") and v and
                     k[len("pooling_mode_"):] not in POOLING_MODES)
  if unknown or not modes:
    raise ValueError(f"{folder}: pooling {unknown or 'none'} is not implemented by the JAX "
                     f"sentence encoder (modes: {POOLING_MODES})")
  width = cfg.get("embedding_dimension", cfg.get("word_embedding_dimension"))
  return modes, int(width) * len(modes)


def read_modules(folder: str) -> tuple[Head, list[dict]]:
  """The :class:`Head` from ``modules.json`` and its modules' configs, and the ``Dense``
  modules' parameters.

  Raises:
    ValueError: naming the folder for a module this encoder does not implement, modules out of
      order (a ``Dense`` before the pooling or after ``Normalize``), or a missing pooling module.
  """
  modules = text_lib.read_json(os.path.join(folder, "modules.json"),
                               "the sentence-transformers module list")
  modes, dense, params, normalized, dim = None, [], [], False, 0
  for i, module in enumerate(modules):
    kind = str(module.get("type", "")).rsplit(".", 1)[-1]
    if kind == "Transformer" and i == 0:
      continue
    if kind == "Pooling" and modes is None:
      modes, dim = pooling(folder, module.get("path", ""))
    elif kind == "Dense" and modes is not None and not normalized:
      activation, p = dense_module(folder, module.get("path", ""))
      if p["kernel"].shape[0] != dim:
        raise ValueError(f"{folder}: Dense module {i} takes {p['kernel'].shape[0]} features, "
                         f"the module before it gives {dim}")
      dense.append(activation)
      params.append(p)
      dim = p["kernel"].shape[1]
    elif kind == "Normalize" and modes is not None and not normalized:
      normalized = True
    else:
      raise ValueError(f"{folder}: module {i} ({module.get('type')}) is not implemented by the "
                       "JAX sentence encoder (Transformer, Pooling, Dense, Normalize only, in "
                       "that order)")
  if modes is None:
    raise ValueError(f"{folder}: modules.json has no Pooling module")
  return Head(tuple(modes), tuple(dense), normalized, dim), params


def length_buckets(limit: int) -> tuple[int, ...]:
  """Padded sequence lengths: :data:`MIN_BUCKET`, the multiples of :data:`BUCKET_STEP` below
  ``limit``, and ``limit``. (Powers of two padded the synthetic prompts, 60 to 200 tokens, by
  up to 2x; with steps of 16 tokens and micro-batches of similar lengths, 1000 synthetic
  prompts were padded by 7 %, against 14 % with steps of 32, for 9 compiled shapes instead of
  5, about a second of compilation each.)"""
  out = [n for n in range(BUCKET_STEP, int(limit), BUCKET_STEP) if n > MIN_BUCKET]
  return tuple(n for n in (MIN_BUCKET,) if n < limit) + tuple(out) + (int(limit),)


def _bucket(n: int, buckets: Sequence[int]) -> int:
  return next(b for b in buckets if b >= n)


def micro_batches(lengths: Sequence[int], buckets: Sequence[int], devices: int = 1,
                  tokens: int = 0) -> list[tuple[np.ndarray, int, int]]:
  """``(indices, rows, width)`` per compiled call: ``lengths`` longest first, ``rows``
  sequences at a time padded to ``width``, the length bucket of the longest.

  ``rows`` is ``devices`` times the largest power of two with at most ``tokens`` padded tokens
  per device (at least one sequence), so there is one shape per length bucket; the last call
  of a width may hold fewer than ``rows`` sequences (the rest is padding).
  """
  tokens = tokens or MICRO_TOKENS
  order = np.argsort([-n for n in lengths], kind="stable")
  out, start = [], 0
  while start < len(order):
    width = _bucket(lengths[order[start]], buckets)
    rows = devices * (1 << max(tokens // width, 1).bit_length() - 1)
    idx = order[start:start + rows]
    out.append((idx, rows, width))
    start += len(idx)
  return out


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
  """A frozen sentence transformer from a local folder, run by JAX (no torch).

  Attributes:
    folder: the sentence-transformers folder.
    config: its :class:`EncoderConfig`.
    head: its :class:`Head` (pooling, ``Dense`` modules, ``Normalize``).
    max_seq_length: the window; longer inputs are truncated to it (special tokens included).
    tokenizer: a :class:`TokenCounter` (untruncated counts for the store's length checks).
    buckets: the padded sequence lengths a batch is compiled at.
    transformer_shape: ``(layers, hidden, intermediate)`` for the FLOP counts.
    params: the weights, replicated on :attr:`devices`.
    forward: the jitted ``(params, tokens, mask) -> float32 [rows, dim]`` of one padded
      micro-batch (rows split over :attr:`devices`).
  """

  def __init__(self, folder: str, precision: str = "float32"):
    if precision not in PRECISIONS:
      raise ValueError(f"config.text.precision={precision!r}: the JAX sentence encoder runs "
                       f"one of {PRECISIONS}")
    self.precision, dtype = precision, jnp.dtype(precision)
    self.folder = str(folder)
    self.config = EncoderConfig.from_folder(self.folder)
    self.head, dense_params = read_modules(self.folder)
    self.dim = self.head.dim
    self.max_seq_length = self._window()
    tok = tokenizers.Tokenizer.from_file(os.path.join(self.folder, "tokenizer.json"))
    if self._folder_config().get("do_lower_case"):   # lowercase first, as sentence-transformers
      rest = tok.normalizer
      rest = [] if rest is None else list(rest) if isinstance(
          rest, tokenizers.normalizers.Sequence) else [rest]
      tok.normalizer = tokenizers.normalizers.Sequence([tokenizers.normalizers.Lowercase()]
                                                       + rest)
    self.tokenizer = TokenCounter(tok, self.max_seq_length)
    self._tok = tokenizers.Tokenizer.from_str(tok.to_str())
    self._tok.no_padding()
    self._tok.enable_truncation(self.max_seq_length)
    self.buckets = length_buckets(self.max_seq_length)
    tensors = safetensors.numpy.load_file(os.path.join(self.folder, "model.safetensors"))
    self.params = {   # the transformer in ``precision``, the Dense modules in float32
        "encoder": jax.tree.map(lambda a: jnp.asarray(a, dtype),
                                encoder_params(tensors, self.config, self.folder)),
        "dense": jax.tree.map(jnp.asarray, dense_params)}
    self.transformer_shape = (self.config.num_hidden_layers, self.config.hidden_size,
                              self.config.intermediate_size)
    self.devices = jax.local_devices()
    mesh = programs.units_mesh(self.devices)
    rows = jax.sharding.NamedSharding(mesh, programs.UNITS)
    whole = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    self.params = jax.device_put(self.params, whole)
    encoder, head = Encoder(self.config), self.head
    self.forward = jax.jit(lambda params, ids, mask: head(   # pooling etc. in float32
        params["dense"], encoder.apply({"params": params["encoder"]}, ids, mask).astype(
            jnp.float32), mask), in_shardings=(whole, rows, rows), out_shardings=rows)

  def _folder_config(self, name: str = "sentence_bert_config.json") -> dict:
    path = os.path.join(self.folder, name)
    return text_lib.read_json(path, "the Transformer module's config") if os.path.exists(
        path) else {}

  def _window(self) -> int:
    """``max_seq_length`` of ``sentence_bert_config.json`` or else (sentence-transformers >= 6
    keeps it there) the tokenizer's ``model_max_length``, at most the position embedding's
    reach."""
    limit = int(self._folder_config().get("max_seq_length") or 0)
    limit = limit or int(self._folder_config("tokenizer_config.json").get("model_max_length") or 0)
    positions = self.config.positions
    return min(limit, positions) if limit else positions

  def get_sentence_embedding_dimension(self) -> int:
    return self.dim

  get_embedding_dimension = get_sentence_embedding_dimension   # sentence-transformers >= 6 name

  def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
    """Token ids as encoded: special tokens added, truncated at :attr:`max_seq_length`."""
    return [e.ids for e in self._tok.encode_batch(list(texts))]

  def micro_batches(self, ids: Sequence[Sequence[int]]) -> list[tuple[np.ndarray, int, int]]:
    """:func:`micro_batches` of token ids ``ids`` on this encoder's buckets and devices."""
    return micro_batches([len(i) for i in ids], self.buckets, len(self.devices))

  def padded(self, ids: Sequence[Sequence[int]], idx: Sequence[int], rows: int,
             width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(tokens, mask)``, ``int32 [rows, width]``: the sequences ``ids[idx]`` padded, then
    padding rows (the arguments of :attr:`forward` for one micro-batch)."""
    tokens = np.full((rows, width), self.config.pad_token_id, np.int32)
    mask = np.zeros((rows, width), np.int32)
    for r, i in enumerate(idx):
      tokens[r, :len(ids[i])] = ids[i]
      mask[r, :len(ids[i])] = 1
    return tokens, mask

  def encode(self, texts: Sequence[str] | str, batch_size: int = 32, convert_to_numpy: bool = True,
             show_progress_bar: bool = False, **_) -> np.ndarray:
    """``float32 [n, dim]`` (``[dim]`` for one string), as ``SentenceTransformer.encode``.

    Texts are sorted longest first and cut into micro-batches (:func:`micro_batches`) of about
    :data:`MICRO_TOKENS` padded tokens per device, each padded to its own length bucket and
    split over the devices; all are dispatched before any result is read. ``batch_size`` is
    accepted for sentence-transformers' signature; the micro-batches decide the shapes.
    """
    del batch_size, convert_to_numpy, show_progress_bar
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    out = np.zeros((len(texts), self.dim), np.float32)
    ids = self.tokenize(texts)
    pending = [(idx, self.forward(self.params, *self.padded(ids, idx, rows, width)))
               for idx, rows, width in self.micro_batches(ids)]
    for idx, emb in pending:
      out[idx] = np.asarray(emb, np.float32)[:len(idx)]
    return out[0] if single else out
