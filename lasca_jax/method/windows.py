"""Windowing (Sec. 4.2) and training-fold min-max normalisation (Sec. 3.1).

Windows tile each recording from time 0: window ``k`` covers ``[k * w, (k + 1) * w)`` seconds.
Per window, each feature is the mean of its finite frame values, and valence and arousal are
the means of their annotated frames. A window also records its *coverage* per stream: the
fraction of the frames a full window holds (``w / frame period``, the period being the median
step of the recording's time base) that have every face feature finite, every audio feature
finite, and both labels annotated (and, per label, the target annotated). :func:`usable_windows`
keeps windows whose coverage reaches ``min_valid_fraction`` in each stream the experiment uses
and in the target's labels.

Windows are fixed-length (Sec. 4.2): a window is *full* when it lies inside the recording's
extent ``[first time, last time + frame period)``; only full windows are usable unless
``partial=True`` (``features.partial_windows``), which also keeps a trailing partial window
whose coverage reaches ``min_valid_fraction`` (the earlier behaviour).
"""

from __future__ import annotations

import math
import dataclasses
from typing import Sequence

import numpy as np

from lasca_jax.data.records import ArrayRecord
from lasca_jax.data.types import Recording
from lasca_jax.data import checks

MODALITY_STREAMS = {"visual": ("face",), "audio": ("audio",), "multimodal": ("face", "audio")}


@dataclasses.dataclass(frozen=True, eq=False)
class Frames(ArrayRecord):
  """Every frame of every recording, flat (the cached ``frames`` stage). ``N`` frames, ``R``
  recordings, ``F`` feature columns."""
  times: np.ndarray          # float64 [N] seconds
  features: np.ndarray       # float32 [N, F]
  valence: np.ndarray        # float32 [N]
  arousal: np.ndarray        # float32 [N]
  recording: np.ndarray      # int32 [N] index into recording_ids
  recording_ids: np.ndarray  # str [R]
  subject_ids: np.ndarray    # str [R] subject of each recording
  feature_names: np.ndarray  # str [F]
  modalities: np.ndarray     # str [F] "face" or "audio"


@dataclasses.dataclass(frozen=True, eq=False)
class Windows(ArrayRecord):
  """Mean-pooled windows of every recording, in recording then time order (the cached
  ``windows`` stage; :func:`make_windows`). ``W`` windows."""
  features: np.ndarray        # float32 [W, F] mean of each feature's finite frame values
  valence: np.ndarray         # float32 [W]
  arousal: np.ndarray         # float32 [W]
  coverage: np.ndarray        # float32 [W, 3] face, audio, labels (fraction of a full window)
  label_coverage: np.ndarray  # float32 [W, 2] valence, arousal annotated
  full: np.ndarray            # bool [W] the window lies inside its recording
  recording: np.ndarray       # int32 [W] index into recording_ids
  position: np.ndarray        # int32 [W] window number in its recording
  start: np.ndarray           # float64 [W] seconds
  recording_ids: np.ndarray   # str [R]
  subject_ids: np.ndarray     # str [R] subject of each recording
  feature_names: np.ndarray   # str [F]
  modalities: np.ndarray      # str [F]

  @property
  def subject(self) -> np.ndarray:
    """``str [W]``: the subject of every window."""
    return self.subject_ids[self.recording]


def frames_to_arrays(recordings: Sequence[Recording]) -> Frames:
  """Concatenates recordings into flat arrays (the cached ``frames`` stage)."""
  first = recordings[0]
  return Frames(
      times=np.concatenate([r.times for r in recordings]).astype(np.float64),
      features=np.concatenate([r.features for r in recordings]).astype(np.float32),
      valence=np.concatenate([r.valence for r in recordings]).astype(np.float32),
      arousal=np.concatenate([r.arousal for r in recordings]).astype(np.float32),
      recording=np.concatenate([np.full(len(r.times), i, np.int32)
                                for i, r in enumerate(recordings)]),
      recording_ids=np.array([r.recording_id for r in recordings]),
      subject_ids=np.array([r.subject_id for r in recordings]),
      feature_names=np.array(first.feature_names),
      modalities=np.array(first.modalities),
  )


def _group_mean(values: np.ndarray, group: np.ndarray, num_groups: int) -> np.ndarray:
  """NaN-aware mean of ``values [N, C]`` per group id; NaN where a group has no finite value."""
  finite = np.isfinite(values)
  sums = np.zeros((num_groups, values.shape[1]))
  counts = np.zeros((num_groups, values.shape[1]))
  np.add.at(sums, group, np.where(finite, values, 0.0))
  np.add.at(counts, group, finite)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def make_windows(frames: Frames, window_seconds: float,
                 periods: np.ndarray | None = None) -> Windows:
  """Mean-pools frames into windows of ``window_seconds`` (see :class:`Windows`).

  ``periods`` ``[R]``: each recording's frame period, when known beyond the frames given (the
  live path pools one window of a longer recording); default the median step of its frames.
  """
  if window_seconds <= 0:
    raise ValueError(f"window_seconds must be positive, got {window_seconds}")
  times, rec = frames.times, frames.recording
  num_rec = len(frames.recording_ids)
  if times.size and times.min() < 0:   # it would index another recording's windows
    raise ValueError(f"negative frame time {times.min():g} s: times count from each "
                     "recording's start (0)")
  position = np.floor(times / window_seconds + 1e-9).astype(np.int64)
  counts = np.bincount(rec, minlength=num_rec)
  if (counts == 0).any():
    raise ValueError(f"recording {frames.recording_ids[np.argmin(counts)]} has no frames")
  windows_per_rec = np.zeros(num_rec, np.int64)
  np.maximum.at(windows_per_rec, rec, position + 1)
  offset = np.concatenate([[0], np.cumsum(windows_per_rec)[:-1]])
  window = offset[rec] + position                                    # [N] window of each frame
  num_windows = int(windows_per_rec.sum())

  feats = frames.features.astype(np.float64)
  labels = np.stack([frames.valence, frames.arousal], axis=1).astype(np.float64)
  mods = frames.modalities
  valid = np.zeros((feats.shape[0], 3), bool)
  for c, m in enumerate(("face", "audio")):
    cols = mods == m
    valid[:, c] = np.isfinite(feats[:, cols]).all(axis=1) if cols.any() else False
  valid[:, 2] = np.isfinite(labels).all(axis=1)
  label_valid = np.isfinite(labels).astype(np.float64)               # [N, 2] valence, arousal

  # Expected frames per full window from each recording's median frame period.
  period = np.ones(num_rec)
  for r in range(num_rec):
    t = times[rec == r]
    if periods is not None:
      period[r] = periods[r]
    elif t.size > 1:
      period[r] = np.median(np.diff(t))
  expected = window_seconds / period                                 # [R]
  rec_of_window = np.repeat(np.arange(num_rec), windows_per_rec)
  coverage = np.zeros((num_windows, 3))
  np.add.at(coverage, window, valid.astype(np.float64))
  coverage = np.minimum(coverage / expected[rec_of_window][:, None], 1.0)
  label_coverage = np.zeros((num_windows, 2))
  np.add.at(label_coverage, window, label_valid)
  label_coverage = np.minimum(label_coverage / expected[rec_of_window][:, None], 1.0)
  # A window is full when it lies inside [first time, last time + period) of its recording.
  first, last = np.full(num_rec, np.inf), np.full(num_rec, -np.inf)
  np.minimum.at(first, rec, times)
  np.maximum.at(last, rec, times)
  position_of_window = np.arange(num_windows) - offset[rec_of_window]
  start = position_of_window * window_seconds
  tol = 1e-6 * max(1.0, window_seconds)
  full = ((start >= first[rec_of_window] - tol) &
          (start + window_seconds <= last[rec_of_window] + period[rec_of_window] + tol))

  means = _group_mean(feats, window, num_windows)
  label_means = _group_mean(labels, window, num_windows)
  return Windows(
      features=means.astype(np.float32),
      valence=label_means[:, 0].astype(np.float32),
      arousal=label_means[:, 1].astype(np.float32),
      coverage=coverage.astype(np.float32),
      label_coverage=label_coverage.astype(np.float32),
      full=full,
      recording=rec_of_window.astype(np.int32),
      position=position_of_window.astype(np.int32),
      start=start,
      recording_ids=frames.recording_ids,
      subject_ids=frames.subject_ids,
      feature_names=frames.feature_names,
      modalities=frames.modalities,
  )


def consecutive(recording: np.ndarray, position: np.ndarray) -> np.ndarray:
  """``bool [W - 1]``: window ``t + 1`` directly follows window ``t`` in the same recording.

  The one definition of "consecutive" (preference pairs, the latency path's steps).
  """
  t = np.arange(recording.size - 1)
  return (recording[t] == recording[t + 1]) & (position[t + 1] == position[t] + 1)


def consecutive_steps(windows: Windows, usable: np.ndarray) -> np.ndarray:
  """``int [N, 2]``: ``(t, t + 1)`` for consecutive usable windows of one recording."""
  t = np.arange(windows.recording.size - 1)
  ok = consecutive(windows.recording, windows.position) & usable[t] & usable[t + 1]
  return np.stack([t[ok], t[ok] + 1], axis=1)


def modality_columns(modalities: np.ndarray, modality: str) -> np.ndarray:
  """Indices of the feature columns a modality setting uses."""
  if modality not in MODALITY_STREAMS:
    raise ValueError(f"unknown modality {modality!r}: use one of {tuple(MODALITY_STREAMS)}")
  cols = np.flatnonzero(np.isin(modalities, MODALITY_STREAMS[modality]))
  if cols.size == 0 or not np.isin(MODALITY_STREAMS[modality], modalities).all():
    raise ValueError(f"modality {modality!r} needs {MODALITY_STREAMS[modality]} features, "
                     f"but the dataset has only {sorted(set(modalities.tolist()))}")
  return cols


def usable_windows(windows: Windows, modality: str, min_valid_fraction: float,
                   target: str | None = None, partial: bool = False) -> np.ndarray:
  """``bool [W]``: windows with enough valid frames in every stream ``modality`` uses.

  Args:
    windows: from :func:`make_windows`.
    modality: ``visual``, ``audio`` or ``multimodal``.
    min_valid_fraction: coverage each stream needs.
    target: ``"valence"`` or ``"arousal"``: only that label must be annotated (datasets with
      one target); None: both labels.
    partial: also keep windows that are not full (a recording's trailing partial window).
  """
  streams = [("face", "audio").index(s) for s in MODALITY_STREAMS[modality]]
  ok = (windows.coverage[:, streams] >= min_valid_fraction).all(axis=1)
  if target is None:
    ok &= windows.coverage[:, 2] >= min_valid_fraction
  else:
    ok &= windows.label_coverage[:, ("valence", "arousal").index(target)] >= min_valid_fraction
  if not partial:
    ok &= windows.full
  return ok


def minmax_stats(features: np.ndarray, train_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``(lo, span)`` per feature over the training windows only.

  A feature constant on the training windows, or never finite there, gets ``span`` 1 (and a
  never-finite one ``lo`` 0), so normalising never divides by zero.
  """
  train = features[train_mask]
  if train.shape[0] == 0:
    raise ValueError("no training windows to compute normalisation statistics from")
  finite = np.isfinite(train).any(axis=0)
  filled = np.where(finite, train, 0.0)          # all-NaN columns: no nanmin warning
  lo = np.where(finite, np.nanmin(filled, axis=0), 0.0)
  hi = np.where(finite, np.nanmax(filled, axis=0), 0.0)
  span = np.where(hi > lo, hi - lo, 1.0)
  return lo, span


def minmax_apply(features: np.ndarray, lo: np.ndarray, span: np.ndarray, clip: bool = True
                 ) -> np.ndarray:
  """``(x - lo) / span``, NaN -> 0, optionally clipped to ``[0, 1]``; ``float32``."""
  out = (features - lo) / span
  out = np.where(np.isfinite(out), out, 0.0)
  if clip:
    out = np.clip(out, 0.0, 1.0)
  return out.astype(np.float32)


def minmax_normalise(features: np.ndarray, train_mask: np.ndarray, clip: bool = True
                     ) -> np.ndarray:
  """Min-max normalisation with statistics of the training windows only.

  Args:
    features: ``float [W, F]`` window features (NaN allowed in unused windows).
    train_mask: ``bool [W]`` windows of training subjects.
    clip: clip every value into ``[0, 1]`` (test windows can exceed the training range).

  Returns:
    ``float32 [W, F]``; a feature constant on the training windows maps to 0 (no NaN), and
    NaN inputs map to 0 (such windows are not usable and never enter a pair).
  """
  lo, span = minmax_stats(features, train_mask)
  return minmax_apply(features, lo, span, clip)


# The config fields this module reads, and what each accepts (collected by run/validate.py).
FIELDS = (
    ("features.modality", checks.one_of(tuple(MODALITY_STREAMS))),
    ("features.window_seconds", checks.number_in(0, math.inf, lo_open=True)),
    ("features.min_valid_fraction", checks.number_in(0, 1, lo_open=True)),
    ("features.clip", checks.BOOL),
    ("features.partial_windows", checks.BOOL),
)
