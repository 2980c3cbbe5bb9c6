"""Prompts to embeddings the way a run's training got them: the one embedder every path uses.

:class:`EncoderSettings` is the typed form of the encoder fields of ``config.text`` (backbone,
folder, device, batch size, token budget, precision, long prompts, engine; built by
``lasca_jax.run.settings.encoder``); it builds the run's :class:`lasca_jax.encoders.encoding.EmbeddingStore`. :class:`Embedder`
answers ``prompts -> embeddings`` for training, a bundle's batch path, the one-window streaming
predictor (warm: the store's table in memory; cold: the encoder run on the prompt, with the same
chunking and precision) and attribution; for the random-text control it gives each prompt's fixed
random vector.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from lasca_jax.encoders import encoding, text as text_lib
from lasca_jax.method import controls
from lasca_jax.data import checks

@dataclasses.dataclass(frozen=True)
class EncoderSettings:
  """The sentence encoder of a run (``config.text``'s encoder fields)."""
  backbone: str = "all-MiniLM-L6-v2"
  model_path: str = ""
  device: str = "auto"
  batch_size: int = 64
  token_budget: int = 0
  precision: str = "auto"
  long_prompts: str = "truncate"
  engine: str = "torch"

  def geometry(self) -> tuple[int, bool]:
    """``(dimension, unit_norm)`` of this backbone's embeddings, without loading its weights."""
    return text_lib.embedding_geometry(self.backbone, self.model_path)

  def with_model_path(self, model_path: str | None) -> "EncoderSettings":
    return self if model_path is None else dataclasses.replace(self, model_path=model_path)

  def store(self, cache_dir: str, store_path: str = "", wal: bool = True
            ) -> encoding.EmbeddingStore:
    """The shared prompt store of this backbone, precision and engine under ``cache_dir`` (or
    the file ``store_path``: an encoding shard's own store)."""
    return encoding.EmbeddingStore(cache_dir, self.backbone, self.model_path, self.device,
                                   self.batch_size, self.token_budget, self.precision,
                                   self.long_prompts, store_path=store_path, wal=wal,
                                   engine=self.engine)


def random_norm(norm: float, encoder: EncoderSettings) -> float:
  """The L2 norm of the random-text control's vectors: ``text.random_norm``, or the backbone's
  (0 = auto).

  Raises:
    ValueError: auto was asked for a backbone whose embeddings are not unit-norm.
  """
  norm = float(norm)
  if norm > 0:
    return norm
  if norm < 0:
    raise ValueError(f"text.random_norm={norm}: use a positive norm, or 0 for the backbone's")
  _, unit = encoder.geometry()
  if not unit:
    raise ValueError(
        f"text.random_norm: backbone {encoder.backbone!r} does not normalise its embeddings, "
        "so their scale is unknown without encoding; set --config.text.random_norm to their "
        "typical L2 norm")
  return 1.0


def fused_dim(hidden_from: str, encoder: EncoderSettings, num_features: int) -> int:
  """The input size the capacity-matched control zero-pads to (0: none).

  ``model.hidden_from="fused"`` pads the representation with zero columns up to the input size
  of the fused model of the same configuration, ``num_features`` + the dimension of the
  backbone's embeddings (:mod:`lasca_jax.method.controls`).

  Raises:
    ValueError: naming the field for an unknown ``model.hidden_from``.
  """
  if hidden_from not in controls.HIDDEN_FROM:
    raise ValueError(f"unknown model.hidden_from {hidden_from!r}: use one of "
                     f"{controls.HIDDEN_FROM}")
  if hidden_from == "fused":
    dim, _ = encoder.geometry()
    return int(num_features) + int(dim)
  return 0


PROGRESS_FROM = 1000   # Embedder batches of at least this many prompts show a bar


class Embedder:
  """``prompts -> float32 [n, D]`` as the run's training embedded them.

  Exactly one source:

  * ``store``: the run's :class:`~lasca_jax.encoders.encoding.EmbeddingStore` (encodes what it
    lacks, honouring ``long_prompts`` and precision);
  * ``random_text``: the random-text control's ``{"seed", "norm", "dim"}``;
  * ``encoder`` (with an optional ``table`` prompt -> embedding): a plain object with the
    ``SentenceTransformer.encode`` signature, for a caller that holds its own model and table.

  :meth:`warm` looks a prompt up in memory (the store's table, loaded once), encoding a miss once;
  :meth:`cold` runs the encoder on the prompt itself, as a new prompt would be.

  Attributes:
    encoder_calls: prompts encoded by :meth:`warm` misses and :meth:`cold`.
    cache_hits: :meth:`warm` look-ups answered from memory.
  """

  def __init__(self, store: encoding.EmbeddingStore | None = None, *, encoder: Any = None,
               table: dict[str, np.ndarray] | None = None,
               random_text: Mapping[str, Any] | None = None):
    if sum(x is not None for x in (store, encoder, random_text)) > 1:
      raise ValueError("an Embedder has one source: a store, an encoder or random_text")
    self.store, self.encoder = store, encoder
    self.random_text = dict(random_text) if random_text else None
    self._table = table
    self.encoder_calls = 0
    self.cache_hits = 0

  @property
  def table(self) -> dict[str, np.ndarray]:
    if self._table is None:
      self._table = self.store.as_dict() if self.store is not None else {}
    return self._table

  def _random(self, prompts: Sequence[str]) -> np.ndarray:
    r = self.random_text
    return controls.random_prompt_embeddings(list(prompts), r["dim"], r["seed"], r["norm"])

  def __call__(self, prompts: Sequence[str]) -> np.ndarray:
    """``float32 [n, D]`` of ``prompts`` (the batch path)."""
    if self.random_text:
      return self._random(prompts)
    if self.store is not None:   # A bar only for large batches (explanations: thousands).
      return self.store.embed(list(prompts), progress=len(prompts) >= PROGRESS_FROM)
    return np.stack([self.warm(p) for p in prompts])

  def warm(self, prompt: str) -> np.ndarray:
    """One prompt's embedding from memory (a miss is embedded once and kept)."""
    if self.random_text:
      return self._random([prompt])[0]
    emb = self.table.get(prompt)
    if emb is not None:
      self.cache_hits += 1
      return emb
    if self.store is not None:
      self.encoder_calls += 1
      emb = self.store.embed([prompt], progress=False)[0]
    else:
      emb = self.cold(prompt)
    self.table[prompt] = emb
    return emb

  def cold(self, prompt: str) -> np.ndarray:
    """One prompt encoded now (batch of one), with the store's chunking and precision."""
    if self.random_text:
      return self._random([prompt])[0]
    if self.store is not None:
      self.encoder_calls += 1
      return self.store.encode_uncached([prompt])[0]
    if self.encoder is None:
      raise ValueError("this predictor has no text encoder (cold embedding or a cache miss)")
    self.encoder_calls += 1
    emb = self.encoder.encode([prompt], batch_size=1, convert_to_numpy=True,
                              show_progress_bar=False)
    return np.asarray(emb, np.float32)[0]


MIN_SECONDS_FOR_PEAK = 5.0   # shorter encodings log throughput without measuring the peak


def embed_and_log(settings: EncoderSettings, cache_dir: str, prompts: list[str],
                  log: Callable[..., None]) -> np.ndarray:
  """``float32 [len(prompts), D]`` from the prompt store, encoding what it lacks; logs (``log(
  "embeddings", **fields)``) counts, throughput and the share of the device's matmul peak, and
  warns when many prompts are cut."""
  store = settings.store(cache_dir)
  emb = store.embed(prompts)
  cut = store.cut_prompts()
  fields = {}
  if store.encoded_count:
    peak = how = None
    if store.stats.seconds >= MIN_SECONDS_FOR_PEAK:
      peak, how = text_lib.device_peak_gflops(store.device, store.precision)
    fields = store.throughput(peak)
    if how:
      fields["peak"] = how
  log("embeddings", backbone=settings.backbone, store=store.path, key=store.key,
      dim=int(emb.shape[1]), newly_encoded=store.encoded_count,
      newly_encoded_truncated=store.truncated_count, prompts=len(prompts),
      over_window=cut, long_prompts=store.long_prompts, chunked=store.stats.chunked,
      pieces=store.stats.pieces, **fields)
  if not store.encoded_count:  # All from the store: nothing warned before an encoding.
    encoding.warn_long_prompts(cut, len(set(prompts)), settings.backbone, store.limit(),
                               store.long_prompts)
  store.store.close()
  return emb


# The config fields of EncoderSettings, and what each accepts (collected by run/validate.py).
FIELDS = (
    ("text.batch_size", checks.int_at_least(1)),
    ("text.token_budget", checks.int_at_least(0)),
    ("text.device", ((lambda v: isinstance(v, str) and v.split(":")[0] in
                      ("auto", "cpu", "cuda", "mps")), "auto, cpu, cuda or cuda:N")),
    ("text.precision", checks.one_of(text_lib.PRECISIONS)),
    ("text.long_prompts", checks.one_of(text_lib.LONG_PROMPTS)),
    ("text.engine", checks.one_of(text_lib.ENGINES)),
)
