"""Model-size bookkeeping for Sec. 5.5 (computational efficiency).

LaScA trains only the preference MLP, ``d -> h1 -> h2 -> 1`` with
``(h1, h2) = (min(d // 2, 250), min(d // 4, 125))`` (at least one unit each, as in
``lasca_jax.model.train``), on the window-difference representation of size ``d``; the sentence
transformer stays frozen. The trainable count is therefore

  ``d * h1 + h1 + h1 * h2 + h2 + h2 + 1``  (weights plus biases of the three dense layers).

Reference sizes: 15 MFCCs -> 140; 58 face values -> 2,146; a 768-d text embedding -> 223,751;
768 + 73 fused multimodal -> 242,001 (the paper quotes "129 to 230k").

Latency: :class:`WindowPredictor` runs the deployed inference path for one window and its
predecessor, from raw mean-pooled features to the decision P(increase), with the pipeline's own
functions (``windows.minmax_normalise``, ``salience.salience_mask``, ``templates.prompt_for_mask``,
the frozen encoder, ``train.PreferenceMLP``); :func:`lasca_jax.run.pipeline.trained_predictor`
builds one from a config the way ``pipeline.run`` trains it, and :func:`latency_ms` times it per
window. The trainable sizes are ``train.TrainSettings.hidden_sizes`` / ``num_params``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lasca_jax.method import salience, templates, windows as windows_lib
from lasca_jax.model import train


def frozen_encoder_param_count(model: Any) -> int:
  """All parameters of a torch module (e.g. a ``SentenceTransformer``), trainable or not.

  ``model.parameters()`` yields each shared (tied) tensor once, so tied embeddings are not
  double counted.
  """
  return int(sum(p.numel() for p in model.parameters()))


def seconds_per_sample(fn: Callable[[Sequence[Any]], Any], samples: Sequence[Any], *,
                       warmup: int = 1, repeats: int = 3,
                       clock: Callable[[], float] = time.perf_counter) -> float:
  """Median wall time of ``fn(samples)`` over ``repeats`` calls, divided by ``len(samples)``.

  For the Sec. 5.5 latency figure pass the end-to-end step, e.g. ``lambda batch:
  predict(encoder.encode(prompts_of(batch)))``; ``warmup`` calls first are not timed (model
  loading, JIT compilation). The paper quotes 80-140 ms per sample on a laptop GPU.
  """
  if not len(samples):
    raise ValueError("no samples to time")
  for _ in range(warmup):
    fn(samples)
  times = []
  for _ in range(max(1, repeats)):
    start = clock()
    fn(samples)
    times.append(clock() - start)
  return float(sorted(times)[len(times) // 2]) / len(samples)


PAPER_LATENCY_MS = (80.0, 140.0)   # Sec. 5.5: end-to-end per sample, i5-11th gen + RTX 3060 laptop.


class TrainingRange(NamedTuple):
  """Per-feature minimum and range over one fold's training windows (``[F]`` each), as
  ``windows.minmax_stats`` computes them."""
  lo: np.ndarray
  span: np.ndarray


def normalise_window(raw: np.ndarray, stats: TrainingRange, clip: bool = True) -> np.ndarray:
  """Min-max normalises one raw window ``[F]`` with a fold's training statistics, through the
  pipeline's own ``windows.minmax_apply`` (bit-identical to the batch path)."""
  return windows_lib.minmax_apply(np.asarray(raw), stats.lo, stats.span, clip)


class WindowPredictor:
  """Inference for one window given its predecessor: raw features in, P(increase) out.

  The path, per window: min-max normalisation with the fold's training statistics -> salience
  (``salience.salience_mask``) -> prompt (``templates.prompt_for_mask`` with the lexicon's
  phrases) -> text embedding -> fusion ``[x || s]`` (or ``x`` / ``s`` alone); then the
  difference ``z[window] - z[predecessor]`` -> the trained ``PreferenceMLP`` (jitted) -> sigmoid.
  The decision is the pipeline's pair prediction with ``first`` the predecessor and ``second``
  the window.

  The text embedding is taken either *cold* (the frozen encoder encodes the prompt, batch of 1)
  or *warm* (looked up in ``prompt_cache``, a dict prompt -> embedding such as an
  ``EmbeddingStore``'s table; a prompt missing from it is encoded once and added).

  Attributes:
    input_dim: ``d``, the MLP's input size.
    encoder_calls: prompts the encoder has encoded so far.
    cache_hits: warm look-ups answered by ``prompt_cache``.
  """

  def __init__(self, params: Any, *, fusion: str, modality: str, stats: TrainingRange,
               modalities: Sequence[str] | None = None,
               phrases: Sequence[str | None] | None = None, clip: bool = True,
               salience_rule: str = "otsu", salience_k: int = 5,
               salience_threshold: float = 0.5, encoder: Any = None,
               prompt_cache: dict[str, np.ndarray] | None = None):
    """Builds the predictor.

    Args:
      params: one fold's ``PreferenceMLP`` parameters (no fold axis).
      fusion: ``"features"``, ``"text"`` or ``"fused"``.
      modality: ``"visual"``, ``"audio"`` or ``"multimodal"`` (the prompt template).
      stats: the fold's training range of the raw features.
      modalities: ``F`` entries ``"face"``/``"audio"`` (needed unless ``fusion="features"``).
      phrases: ``F`` lexicon phrases (needed unless ``fusion="features"``).
      clip: clip normalised values into ``[0, 1]`` (``config.features.clip``).
      salience_rule: ``config.text.salience``; ``salience_k`` and ``salience_threshold`` its
        parameters.
      encoder: object with the ``SentenceTransformer.encode`` signature (needed for cold
        embeddings and warm misses).
      prompt_cache: prompt -> ``float32 [D]`` embedding, the warm cache.

    The MLP's input and hidden sizes are read from the shapes of ``params``.
    """
    if fusion not in ("features", "text", "fused"):
      raise ValueError(f"unknown fusion {fusion!r}: use features, text, fused")
    if fusion != "features" and (modalities is None or phrases is None):
      raise ValueError(f"fusion {fusion!r} needs the feature modalities and lexicon phrases")
    self.params = params
    self.fusion, self.modality, self.stats, self.clip = fusion, modality, stats, clip
    self.modalities = None if modalities is None else list(modalities)
    self.phrases = None if phrases is None else list(phrases)
    self.salience_rule, self.salience_k = salience_rule, int(salience_k)
    self.salience_threshold = float(salience_threshold)
    self.encoder = encoder
    self.prompt_cache = {} if prompt_cache is None else prompt_cache
    self.input_dim = int(params["SklearnDense_0"]["kernel"].shape[0])
    model = train.PreferenceMLP(train.layer_sizes(params)[1:-1])
    self._prob = jax.jit(lambda p, x: jax.nn.sigmoid(model.apply({"params": p}, x)))
    self.encoder_calls = 0
    self.cache_hits = 0

  def normalise(self, raw: np.ndarray) -> np.ndarray:
    """``float32 [F]`` normalised features of one raw window."""
    return normalise_window(raw, self.stats, self.clip)

  def prompt_of(self, x: np.ndarray) -> str:
    """The prompt of one normalised window ``x [F]``."""
    mask = salience.salience_mask(x[None], self.modalities, self.salience_rule,
                                  self.salience_k, self.salience_threshold)[0]
    return templates.prompt_for_mask(mask, self.phrases, self.modalities, self.modality)

  def encode_prompt(self, prompt: str) -> np.ndarray:
    """Encodes one prompt with the frozen encoder (batch of 1): ``float32 [D]``."""
    if self.encoder is None:
      raise ValueError("this predictor has no text encoder (cold embedding or a cache miss)")
    self.encoder_calls += 1
    emb = self.encoder.encode([prompt], batch_size=1, convert_to_numpy=True,
                              show_progress_bar=False)
    return np.asarray(emb, np.float32)[0]

  def embed(self, prompt: str, cache: str = "warm") -> np.ndarray:
    """The prompt's embedding, ``cache="warm"`` (look-up) or ``"cold"`` (encoded)."""
    if cache == "cold":
      return self.encode_prompt(prompt)
    if cache != "warm":
      raise ValueError(f"unknown cache mode {cache!r}: use warm or cold")
    emb = self.prompt_cache.get(prompt)
    if emb is None:
      emb = self.prompt_cache[prompt] = self.encode_prompt(prompt)
    else:
      self.cache_hits += 1
    return emb

  def represent(self, raw: np.ndarray, cache: str = "warm") -> np.ndarray:
    """``float32 [d]``: the window representation the MLP sees (before differencing)."""
    x = self.normalise(raw)
    if self.fusion == "features":
      return x
    s = self.embed(self.prompt_of(x), cache)
    return s if self.fusion == "text" else np.concatenate([x, s]).astype(np.float32)

  def decide_next(self, z_prev: np.ndarray, raw: np.ndarray, cache: str = "warm"
                  ) -> tuple[float, np.ndarray]:
    """Streaming step: ``(P(increase), z)`` for a window whose predecessor is already encoded."""
    z = self.represent(raw, cache)
    prob = jax.block_until_ready(self._prob(self.params, jnp.asarray(z - z_prev)))
    return float(prob), z

  def decide(self, raw_prev: np.ndarray, raw: np.ndarray, cache: str = "warm") -> float:
    """P(target increases from ``raw_prev``'s window to ``raw``'s), both from raw features."""
    return self.decide_next(self.represent(raw_prev, cache), raw, cache)[0]


def latency_ms(fn: Callable[[Any], Any], items: Sequence[Any], count: int, *, warmup: int = 5,
               clock: Callable[[], float] = time.perf_counter) -> np.ndarray:
  """Wall time of ``fn(item)`` per call in milliseconds, ``count`` calls after ``warmup``.

  Items are taken in order and cycled; the ``warmup`` calls (JIT compilation, first-call
  allocations) run first on the leading items and are not timed.
  """
  if not len(items):
    raise ValueError("no items to time")
  for i in range(warmup):
    fn(items[i % len(items)])
  times = np.empty(count)
  for i in range(count):
    item = items[i % len(items)]
    start = clock()
    fn(item)
    times[i] = clock() - start
  return times * 1e3
