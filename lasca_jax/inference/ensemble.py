"""A run's fold models as one predictor: raw window features in, every fold's decision out.

:func:`load_bundle` reads a run's bundle (:mod:`lasca_jax.model.bundle`, the file format) and
returns a :class:`BundlePredictor`, which rebuilds ``z`` with the run's saved
:class:`~lasca_jax.method.representation.Recipe` for all fold models at once: its probabilities
on the run's test pairs are bit-identical to ``results.npz["test_prob"]``.
:meth:`BundlePredictor.window_predictor` gives one fold as the streaming
:class:`lasca_jax.inference.stream.WindowPredictor`.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lasca_jax.data import files as files_lib
from lasca_jax.encoders import embedder as embedder_lib, encoding
from lasca_jax.inference import stream
from lasca_jax.method import representation
from lasca_jax.method.representation import Represented
from lasca_jax.model import bundle, mlp
from lasca_jax.model.bundle import BundleError
from lasca_jax.run import settings as settings_lib


class BundlePredictor:
  """The fold models of a bundle, applied to raw window features (see module docstring).

  Attributes:
    meta: the ``bundle.json`` dict.
    params: the ``PreferenceMLP`` parameters, leading fold axis ``K``.
    lo, span: ``[K, F]`` per-fold min-max statistics.
    path: the bundle folder.
  """

  def __init__(self, path: str, meta: dict, state: dict, cache_dir: str | None = None,
               model_path: str | None = None, recipe: representation.Recipe | None = None):
    self.path, self.meta = path, meta
    self.params = jax.tree.map(jnp.asarray, state["params"])
    self.lo, self.span = np.asarray(state["lo"]), np.asarray(state["span"])
    self.num_folds = int(meta["num_folds"])
    self.feature_names: list[str] = list(meta["feature_names"])
    self.modalities: list[str] = list(meta["modalities"])
    self.phrases: list[str | None] | None = meta["phrases"]
    self.recipe = recipe or representation.Recipe.from_json(meta["representation"])
    self.spec = self.recipe.spec
    self.fusion: str = self.spec.name
    self.cache_dir = cache_dir or meta["config"].get("cache_dir") or files_lib.default_cache_dir()
    self.model_path = meta["model_path"] if model_path is None else model_path
    text = dict(meta["config"].get("text", {}), backbone=meta["backbone"])
    if meta.get("precision"):
      text["precision"] = meta["precision"]      # as the run resolved it (float16 on a GPU)
    text["engine"] = meta.get("engine") or text.get("engine", "torch")   # older bundles: torch
    self.encoder_settings = settings_lib.encoder(text).with_model_path(self.model_path)
    self._embedder = None
    model = mlp.PreferenceMLP(tuple(meta["hidden"]))
    self.model = model
    self._logits = jax.jit(jax.vmap(lambda p, x: model.apply({"params": p}, x)))
    self._prob = jax.jit(jax.vmap(lambda p, x: jax.nn.sigmoid(model.apply({"params": p}, x))))

  @property
  def uses_text(self) -> bool:
    return self.spec.needs_prompts

  @property
  def uses_features(self) -> bool:
    return self.spec.has_features

  @property
  def salience_part(self) -> str | None:
    """The part of ``z`` the salient cues enter: ``"text"`` (their phrases, encoded), ``"mask"``
    (the salience-mask control's 0/1 mask) or None (no such part)."""
    parts = self.recipe.slices()
    return "text" if self.uses_text else "mask" if "mask" in parts else None

  @property
  def embedder(self) -> embedder_lib.Embedder:
    """The run's embedder: the shared store of its backbone (under ``cache_dir``), or the
    random-text control's vectors."""
    if self._embedder is None:
      if self.spec.text == "random":
        self._embedder = embedder_lib.Embedder(random_text=self.recipe.random_text)
      else:
        self._embedder = embedder_lib.Embedder(self.encoder_settings.store(self.cache_dir))
    return self._embedder

  @property
  def store(self) -> encoding.EmbeddingStore:
    """The shared embedding store of the bundle's backbone (under ``cache_dir``)."""
    if self.embedder.store is None:
      raise BundleError(f"{self.path}: a {self.fusion!r} model encodes no prompts")
    return self.embedder.store

  def embed(self, prompts: Sequence[str]) -> np.ndarray:
    """``float32 [n, D]``: prompts as training embedded them (:attr:`embedder`)."""
    return self.embedder(list(prompts))

  def slices(self) -> dict[str, slice]:
    """Where each part of the representation lies in ``z``."""
    return self.recipe.slices()

  def representer(self) -> representation.Representer:
    return representation.Representer(self.recipe, self.lo, self.span,
                                      self.embed if self.uses_text else None)

  def normalise(self, raw: np.ndarray) -> np.ndarray:
    """``float32 [K, N, F]``: raw window features ``[N, F]`` under each fold's statistics."""
    return self.representer().normalise(raw)

  def represent(self, raw: np.ndarray, baseline: np.ndarray | None = None,
                recording: np.ndarray | None = None, usable: np.ndarray | None = None,
                ranges: tuple | None = None) -> Represented:
    """Every fold's representation of raw windows ``float [N, F]`` (NaN allowed), as training
    built it (:class:`lasca_jax.method.representation.Representer`). ``recording``/``usable``
    (or ``ranges``) serve ``text.salience_stats="recording"``: default one recording, every
    window with finite features."""
    raw = np.asarray(raw)
    if raw.ndim != 2 or raw.shape[1] != len(self.feature_names):
      raise BundleError(f"{self.path}: expected raw window features [N, {len(self.feature_names)}]"
                        f", got shape {raw.shape}")
    if self.spec.needs_baseline and baseline is None:
      raise BundleError(f"{self.path}: this model was trained on a frozen encoder's "
                        "embeddings (model.fusion='baseline'); new recordings need that "
                        "encoder's embeddings, which predict.py cannot compute: use a "
                        "features, text or fused run")
    if ranges is None and self.recipe.salience_stats == "recording":
      recording = np.zeros(raw.shape[0], np.int32) if recording is None else recording
      usable = np.isfinite(raw).all(axis=1) if usable is None else usable
    return self.representer()(raw, baseline, recording, usable, ranges)

  def probabilities(self, z_first: np.ndarray, z_second: np.ndarray) -> np.ndarray:
    """``float32 [K, n]`` P(increase) of each fold model for pairs of representations."""
    return np.asarray(self._prob(self.params, jnp.asarray(z_second - z_first)))

  def logits(self, diff: np.ndarray) -> np.ndarray:
    """``float32 [K, n]`` logits of each fold model for difference vectors ``[K, n, d]``."""
    return np.asarray(self._logits(self.params, jnp.asarray(diff)))

  def window_predictor(self, fold: int = 0, encoder: Any = None,
                       recording_range: tuple | None = None) -> stream.WindowPredictor:
    """Fold ``fold`` as the streaming :class:`lasca_jax.inference.stream.WindowPredictor` (one
    window at a time, Sec. 5.5 latency path), on the same recipe and embedder as the batch path.

    Args:
      fold: the fold model.
      encoder: a loaded sentence transformer to use instead of loading the backbone again.
      recording_range: ``(lo [F], span [F])``, for ``text.salience_stats="recording"``.

    Raises:
      BundleError: one line, when the model cannot decide one window at a time.
    """
    embedder = None
    if self.uses_text:
      embedder = self.embedder
      if encoder is not None and embedder.store is not None:
        embedder.store._model = encoder   # pylint: disable=protected-access
    try:
      return stream.WindowPredictor(
          jax.tree.map(lambda a: a[fold], self.params), self.recipe,
          stream.TrainingRange(self.lo[fold], self.span[fold]), embedder, recording_range)
    except ValueError as e:
      raise BundleError(f"{self.path}: {e}") from None

  def test_windows(self) -> dict[str, np.ndarray]:
    """The run's test decisions (``test_windows.npz``, module docstring)."""
    return files_lib.load_npz(os.path.join(self.path, bundle.TEST_FILE))

  def test_probabilities(self) -> np.ndarray:
    """``float32 [K, n]``: the run's test pairs re-decided from raw features, laid out and padded
    (0) as ``results.npz["test_prob"]``."""
    t = self.test_windows()
    rep = self.represent(t["features"], t.get("baseline"), ranges=bundle.test_ranges(t))
    k = np.arange(self.num_folds)[:, None]
    prob = self.probabilities(rep.z[k, t["first"]], rep.z[k, t["second"]])
    return np.where(t["mask"], prob, np.float32(0.0))


def load_bundle(run_dir: str, cache_dir: str | None = None,
                model_path: str | None = None) -> BundlePredictor:
  """Loads ``<run_dir>/bundle`` (or a bundle folder itself) as a :class:`BundlePredictor`.

  Args:
    run_dir: a run directory written by ``pipeline.run`` or a sweep, or its ``bundle`` folder.
    cache_dir: where the shared embedding store lives (default: the run's ``cache_dir``, else
      ``$LASCA_JAX_CACHE``).
    model_path: a local folder of the text backbone, overriding the bundle's.

  Raises:
    BundleError: one line naming the file and what to do (:func:`bundle.read_bundle`).
  """
  folder, meta, state, recipe = bundle.read_bundle(run_dir, model_path)
  return BundlePredictor(folder, meta, state, cache_dir, model_path, recipe)
