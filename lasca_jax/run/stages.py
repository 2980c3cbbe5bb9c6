"""The cached host-side stages: each one function whose keyword arguments are its cache key.

A :class:`Stage` wraps a compute function. Calling it, ``stage(cache, **inputs)``, hashes exactly
the keyword arguments it then passes to the function, so the cache key and the computation cannot
drift apart. An input that is itself a stage result (or any large value with a known identity)
is passed as :class:`Keyed`: the key enters the hash, the value the computation. The result is a
typed :class:`~lasca_jax.data.records.ArrayRecord`, stored as ``<cache_dir>/<stage>/<key>.npz``
(:mod:`lasca_jax.run.cache`) and returned as ``Keyed(key, record)`` for the stages downstream.

  frames -> windows -> normalise (per fold) -> salience -> prompts
                    |           \\-> salience_values (per recording or dataset) -/
                    \\-> pairs        \\-> baseline (precomputed encoder embeddings)
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from lasca_jax.data import datasets, types as data_lib
from lasca_jax.data.records import ArrayRecord
from lasca_jax.encoders import baseline as baseline_lib
from lasca_jax.method import pairs as pairs_lib, protocols, representation
from lasca_jax.method import salience as salience_lib, templates
from lasca_jax.method import windows as windows_lib
from lasca_jax.run import cache as cache_lib


class Keyed(NamedTuple):
  """A value with its cache identity: stages hash ``key`` (a stage result's key, or any JSON-able
  identity such as a dataset fingerprint) and compute with ``value``."""
  key: Any
  value: Any


def _identity(value: Any) -> Any:
  return value.key if isinstance(value, Keyed) else value


@dataclasses.dataclass(frozen=True)
class Stage:
  """A cached stage: ``compute(**inputs) -> result`` keyed by a hash of the same ``inputs``.

  Attributes:
    name: the cache folder (``<cache_dir>/<name>/``) and the name in hit/miss counts.
    version: bump it when ``compute`` changes what it returns for the same inputs.
    compute: the stage's function; only keyword arguments.
    result: the :class:`ArrayRecord` type it returns.
  """
  name: str
  version: int
  compute: Callable[..., ArrayRecord]
  result: type

  def key(self, **inputs: Any) -> str:
    """The cache key of ``inputs`` (a :class:`Keyed` counts by its key, an array by content)."""
    return cache_lib.hash_key(self.name, {k: _identity(v) for k, v in inputs.items()},
                              self.version)

  def __call__(self, cache: cache_lib.StageCache, **inputs: Any) -> Keyed:
    """``Keyed(key, result)``: the cached result of ``inputs``, computed and stored on a miss."""
    args = {k: v.value if isinstance(v, Keyed) else v for k, v in inputs.items()}
    inspect.signature(self.compute).bind(**args)   # the inputs are exactly compute's arguments
    key = self.key(**inputs)

    def compute() -> dict[str, np.ndarray]:
      out = self.compute(**args)
      if not isinstance(out, self.result):
        raise TypeError(f"stage {self.name} returned {type(out).__name__}, not "
                        f"{self.result.__name__}")
      return out.to_npz()

    arrays = cache.get_or_compute(self.name, key, compute, check=self.result.from_npz)
    return Keyed(key, self.result.from_npz(arrays))


def stage(name: str, version: int, result: type) -> Callable[[Callable[..., Any]], Stage]:
  """Decorator: the function becomes a :class:`Stage` of that name, version and result type."""
  def wrap(fn: Callable[..., Any]) -> Stage:
    return Stage(name, version, fn, result)
  return wrap


@dataclasses.dataclass(frozen=True, eq=False)
class Normalised(ArrayRecord):
  """Min-max normalised window features of every fold and the statistics that produced them."""
  values: np.ndarray   # float32 [folds, W, F]
  lo: np.ndarray       # [folds, F] minimum over the fold's usable training windows
  span: np.ndarray     # [folds, F] range there (1 where constant)


@dataclasses.dataclass(frozen=True, eq=False)
class SalienceValues(ArrayRecord):
  """The values salience is computed from when they are not the fold's (``text.salience_stats``
  ``"recording"`` or ``"dataset"``)."""
  values: np.ndarray   # float32 [1, W, F]


@dataclasses.dataclass(frozen=True, eq=False)
class SalienceMask(ArrayRecord):
  mask: np.ndarray     # bool [folds or 1, W, F]


@dataclasses.dataclass(frozen=True, eq=False)
class PromptTable(ArrayRecord):
  """Each distinct prompt once, and every window's index into them."""
  prompts: np.ndarray  # str [U] sorted distinct prompts
  index: np.ndarray    # int32 [folds or 1, W]


@dataclasses.dataclass(frozen=True, eq=False)
class BaselineEmbeddings(ArrayRecord):
  """A frozen encoder's precomputed embeddings per window (``model.fusion="baseline"``)."""
  embeddings: np.ndarray  # float32 [W, B], NaN where the folder has none
  counts: np.ndarray      # int [W] encoder frames averaged into each window


def data_input(data_config) -> Keyed:
  """``config.data`` identified by its dataset's fingerprint (files with sizes and times, or the
  synthetic generator's settings): the ``data`` input of :data:`frames`."""
  return Keyed(datasets.get_module(data_config.name).fingerprint(data_config), data_config)


@stage("frames", version=1, result=windows_lib.Frames)
def frames(data) -> windows_lib.Frames:
  """Every recording of the dataset ``data`` (a ``config.data``, see :func:`data_input`)."""
  recordings = datasets.get_module(data.name).load_recordings(data)
  data_lib.check_consistent(recordings)
  return windows_lib.frames_to_arrays(recordings)


@stage("windows", version=2, result=windows_lib.Windows)
def windows(frames: windows_lib.Frames, window_seconds: float) -> windows_lib.Windows:  # pylint: disable=redefined-outer-name
  return windows_lib.make_windows(frames, window_seconds)


@stage("normalise", version=3, result=Normalised)
def normalise(windows: windows_lib.Windows, modality: str, clip: bool, usable: np.ndarray,  # pylint: disable=redefined-outer-name
              train_subjects: np.ndarray, subjects: np.ndarray) -> Normalised:
  """Each fold's min-max normalisation with the statistics of its usable training windows.

  Args:
    windows: all windows.
    modality: whose feature columns (``windows.modality_columns``).
    clip: clip into ``[0, 1]``.
    usable: ``bool [W]``.
    train_subjects: ``bool [folds, S]`` (``FoldSplits.train``).
    subjects: ``[S]`` subject names (``FoldSplits.subjects``).
  """
  feats = windows.features[:, windows_lib.modality_columns(windows.modalities, modality)]
  window_subject = protocols.subject_index(windows.subject, subjects)            # [W]
  values, lo, span = [], [], []
  for train in train_subjects:
    low, width = windows_lib.minmax_stats(
        feats, protocols.training_windows(usable, train, window_subject))
    values.append(windows_lib.minmax_apply(feats, low, width, clip))
    lo.append(low)
    span.append(width)
  return Normalised(np.stack(values), np.stack(lo), np.stack(span))


@stage("pairs", version=2, result=pairs_lib.Pairs)
def pairs(windows: windows_lib.Windows, usable: np.ndarray, target: str, margin: float,  # pylint: disable=redefined-outer-name
          eps: float) -> pairs_lib.Pairs:
  return pairs_lib.make_pairs(windows, usable, target, margin, eps)


@stage("salience_values", version=1, result=SalienceValues)
def salience_values(windows: windows_lib.Windows, columns: np.ndarray, usable: np.ndarray,  # pylint: disable=redefined-outer-name
                    stats: str, clip: bool) -> SalienceValues:
  """The modality's window features min-max normalised with each recording's own statistics
  (``stats="recording"``) or the whole dataset's (``"dataset"``), over the usable windows."""
  feats = windows.features[:, columns]
  if stats == "dataset":
    values = windows_lib.minmax_normalise(feats, usable, clip)
  elif stats == "recording":
    values = representation.recording_values(feats, windows.recording, usable, clip)
  else:
    raise ValueError(f"unknown config.text.salience_stats {stats!r}: use one of "
                     f"{representation.SALIENCE_STATS}")
  return SalienceValues(values[None])


@stage("salience", version=2, result=SalienceMask)
def salience(values: np.ndarray, modalities: Sequence[str], rule: str, k: int | None,
             threshold: float | None) -> SalienceMask:
  """The salience mask of normalised ``values [..., F]``; ``k`` and ``threshold`` are None unless
  ``rule`` uses them (so an unused setting does not change the key)."""
  params = {name: v for name, v in (("k", k), ("threshold", threshold)) if v is not None}
  return SalienceMask(salience_lib.salience_mask(values, np.asarray(modalities), rule, **params))


@stage("prompts", version=2, result=PromptTable)
def prompts(salience: SalienceMask, phrases: Sequence[str | None], modalities: Sequence[str],  # pylint: disable=redefined-outer-name
            modality: str, values: np.ndarray | None) -> PromptTable:
  """``templates.build_prompts`` of the salience masks; ``values`` (the normalised features)
  orders each part's phrases by value, None keeps feature order (the paper's). The phrases say
  all the lexicon (and its seed) does."""
  return PromptTable(*templates.build_prompts(salience.mask, list(phrases), list(modalities),
                                              modality, values=values))


@stage("baseline", version=2, result=BaselineEmbeddings)
def baseline(windows: windows_lib.Windows, directory: str, window_seconds: float  # pylint: disable=redefined-outer-name
             ) -> BaselineEmbeddings:
  """The embeddings in ``directory`` (pass ``Keyed(directory_fingerprint, directory)``)."""
  return BaselineEmbeddings(*baseline_lib.embeddings_for_windows(
      directory, windows.recording_ids.tolist(), windows.recording, windows.position,
      window_seconds))


def baseline_input(directory: str) -> Keyed:
  """``directory`` identified by its files' names, sizes and modification times."""
  return Keyed(baseline_lib.directory_fingerprint(directory), directory)
