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

from lasca_jax.method import representation, windows as windows_lib
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

  The window goes through the run's :class:`lasca_jax.method.representation.Representer` with
  one fold's statistics (normalisation, salience, prompt, embedding, the fusion's parts), exactly
  as training built ``z``; then the difference ``z[window] - z[predecessor]`` -> the trained
  ``PreferenceMLP`` (jitted) -> sigmoid. The decision is the pipeline's pair prediction with
  ``first`` the predecessor and ``second`` the window.

  The text embedding is taken either *warm* (the run's embedding store in memory; a miss is
  encoded once and kept) or *cold* (the encoder runs on the prompt, batch of one, with the
  store's chunking and precision): :class:`lasca_jax.encoders.embedder.Embedder`.

  A model whose salience uses each recording's own statistics (``text.salience_stats=
  "recording"``) needs the whole recording; the one-window path takes them as
  ``recording_range`` or refuses.

  Attributes:
    input_dim: ``d``, the MLP's input size.
    encoder_calls: prompts the encoder has encoded so far.
    cache_hits: warm look-ups answered from memory.
  """

  def __init__(self, params: Any, recipe: representation.Recipe, stats: TrainingRange,
               embedder: Any = None, recording_range: tuple | None = None):
    """Builds the predictor.

    Args:
      params: one fold's ``PreferenceMLP`` parameters (no fold axis).
      recipe: the run's representation settings (``RunInputs.recipe``, a bundle's recipe).
      stats: the fold's training range of the raw features.
      embedder: an :class:`~lasca_jax.encoders.embedder.Embedder` (needed for a text part).
      recording_range: ``(lo [F], span [F])`` of the recording, for ``salience_stats=
        "recording"``.

    Raises:
      ValueError: one line, when the recipe cannot be honoured one window at a time.
    """
    spec = recipe.spec
    if spec.needs_prompts and embedder is None:
      raise ValueError(f"fusion {spec.name!r} needs a text embedder")
    if spec.needs_salience and recipe.salience_stats == "recording" and recording_range is None:
      raise ValueError(
          "text.salience_stats='recording': this model's salience uses each recording's own "
          "min-max over the whole recording, which one window at a time cannot know; pass "
          "recording_range=(lo, span) or predict whole recordings (experiments/predict.py)")
    self.params, self.recipe, self.stats, self.embedder = params, recipe, stats, embedder
    self.fusion = spec.name
    self._ranges = None if recording_range is None else tuple(
        np.asarray(v)[None] for v in recording_range)
    self._modes = {mode: representation.Representer(
        recipe, np.asarray(stats.lo)[None], np.asarray(stats.span)[None],
        None if embedder is None else self._embed_fn(mode)) for mode in ("warm", "cold")}
    self.input_dim = int(params["SklearnDense_0"]["kernel"].shape[0])
    model = train.PreferenceMLP(train.layer_sizes(params)[1:-1])
    self._prob = jax.jit(lambda p, x: jax.nn.sigmoid(model.apply({"params": p}, x)))

  def _embed_fn(self, mode: str):
    one = getattr(self.embedder, mode)
    return lambda prompts: np.stack([one(p) for p in prompts])

  @property
  def encoder_calls(self) -> int:
    return self.embedder.encoder_calls if self.embedder is not None else 0

  @property
  def cache_hits(self) -> int:
    return self.embedder.cache_hits if self.embedder is not None else 0

  def normalise(self, raw: np.ndarray) -> np.ndarray:
    """``float32 [F]`` normalised features of one raw window."""
    return normalise_window(raw, self.stats, self.recipe.clip)

  def _represent(self, raw: np.ndarray, cache: str, baseline: np.ndarray | None):
    if cache not in self._modes:
      raise ValueError(f"unknown cache mode {cache!r}: use warm or cold")
    return self._modes[cache](np.asarray(raw)[None],
                              None if baseline is None else np.asarray(baseline)[None],
                              ranges=self._ranges)

  def prompt(self, raw: np.ndarray) -> str:
    """The prompt of one raw window (as training wrote it)."""
    recipe = self.recipe
    x = self.normalise(raw)[None, None]
    values = recipe.salience_values(x, np.asarray(raw)[None], ranges=self._ranges)
    prompts, index = recipe.prompts(recipe.salience_mask(values), values)
    return str(prompts[index[0, 0]])

  def embed(self, prompt: str, cache: str = "warm") -> np.ndarray:
    """The prompt's embedding, ``cache="warm"`` (look-up) or ``"cold"`` (encoded)."""
    if cache not in self._modes:
      raise ValueError(f"unknown cache mode {cache!r}: use warm or cold")
    return getattr(self.embedder, cache)(prompt)

  def represent(self, raw: np.ndarray, cache: str = "warm",
                baseline: np.ndarray | None = None) -> np.ndarray:
    """``float32 [d]``: the window representation the MLP sees (before differencing)."""
    return self._represent(raw, cache, baseline).z[0, 0]

  def decide_next(self, z_prev: np.ndarray, raw: np.ndarray, cache: str = "warm",
                  baseline: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Streaming step: ``(P(increase), z)`` for a window whose predecessor is already encoded."""
    z = self.represent(raw, cache, baseline)
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
