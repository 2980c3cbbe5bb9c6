"""One window at a time: the streaming decision path (Sec. 5.5 latency) and its timing.

:class:`WindowPredictor` decides a window against its predecessor from raw mean-pooled features,
through the run's :class:`~lasca_jax.method.representation.Representer` (the z training saw),
the frozen encoder (warm or cold) and the trained ``PreferenceMLP``. :func:`trained_predictor`
trains a config as ``pipeline.run`` does and wraps one fold; :func:`latency_ms` times a step.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lasca_jax.encoders import embedder as embedder_lib
from lasca_jax.method import representation, windows as windows_lib
from lasca_jax.model import mlp, train
from lasca_jax.run import cache as cache_lib, pipeline


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
    model = mlp.PreferenceMLP(mlp.layer_sizes(params)[1:-1])
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
    prompts, index = self._modes["warm"].prompts(np.asarray(raw)[None], ranges=self._ranges)
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


class TrainedPredictor(NamedTuple):
  """A one-window predictor trained like ``pipeline.run`` trains, with its training data."""
  predictor: WindowPredictor
  inputs: pipeline.RunInputs
  output: train.TrainOutput    # all folds (leading fold axis)
  fold: int
  raw: np.ndarray              # float32 [W, F] raw mean-pooled features of the modality
  steps: np.ndarray            # int [N, 2] (predecessor, window) of consecutive usable windows
  encoder: Any                 # the loaded frozen encoder (None for features-only)


def trained_predictor(config, cache: cache_lib.StageCache | None = None, fold: int = 0,
                      encoder: Any = None, workdir: str | None = None) -> TrainedPredictor:
  """Prepares and trains ``config`` exactly as ``pipeline.run`` (all folds, through
  ``pipeline.train_run``) and wraps fold ``fold``.

  Args:
    config: an experiment config (``config.model.fusion`` etc. as for ``pipeline.run``).
    cache: stage cache (default: ``config.cache_dir``).
    fold: whose best parameters and training statistics to use.
    encoder: the frozen text encoder; default ``text_lib.load_model`` of ``config.text``.
    workdir: a run directory to write (config, log, results, bundle); None keeps no files.

  Returns:
    The predictor, whose warm cache is the backbone's ``EmbeddingStore`` table.
  """
  if (representation.get(config.model.fusion).needs_salience and
      config.text.get("salience_stats", "fold") == "recording"):
    raise ValueError(
        "text.salience_stats='recording': the one-window predictor cannot know a recording's "
        "statistics before it ends; time a run with salience_stats 'fold' or 'dataset'")
  cache = cache or cache_lib.StageCache(config.cache_dir or None)
  trained = pipeline.train_run(config, pipeline.start(workdir, config, cache), cache)
  inputs, out = trained.inputs, trained.output
  params = jax.tree.map(lambda a: a[fold], out.params)
  stats = TrainingRange(inputs.lo[fold], inputs.span[fold])
  spec = inputs.recipe.spec
  embedder = None
  if spec.text == "random":
    embedder = embedder_lib.Embedder(random_text=inputs.random_text)
  elif spec.encoded:
    store = inputs.encoder.store(cache.cache_dir)
    if encoder is not None:
      store._model = encoder   # pylint: disable=protected-access
    embedder = embedder_lib.Embedder(store)
    encoder = store.model
  else:
    encoder = None
  predictor = WindowPredictor(params, inputs.recipe, stats, embedder)
  return TrainedPredictor(predictor, inputs, out, fold, inputs.raw,
                          windows_lib.consecutive_steps(inputs.windows, inputs.usable), encoder)
