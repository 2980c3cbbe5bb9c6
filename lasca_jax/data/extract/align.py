"""Putting per-frame streams (video frames, MFCC frames) onto an annotation time base.

Rule (:func:`pool_to_time_base`): annotation step ``t_k`` owns the half-open interval between the
midpoints to its neighbours. Its value is the NaN-ignoring mean of the source samples inside the
interval (a denser source is mean-pooled, e.g. 100 Hz MFCCs onto 10 Hz SEWA labels). A step whose
interval holds no source sample (a sparser source, e.g. a frame stride, or 30 fps video onto a
finer label grid) takes the nearest source sample when it lies within half a source period,
else NaN. A step whose samples are all NaN (no face in those frames) stays NaN, and so does every
step more than half a source period beyond the source's ends: missing stays missing.
"""

from __future__ import annotations

import numpy as np


def step_edges(times: np.ndarray, default_step: float) -> np.ndarray:
  """``[T + 1]`` interval edges around strictly increasing ``times`` ``[T]``."""
  times = np.asarray(times, np.float64)
  if times.size == 0:
    return np.zeros(1)
  if times.size == 1:
    return np.array([times[0] - default_step / 2, times[0] + default_step / 2])
  mids = (times[1:] + times[:-1]) / 2
  return np.concatenate([[2 * times[0] - mids[0]], mids, [2 * times[-1] - mids[-1]]])


def pool_to_time_base(src_times: np.ndarray, values: np.ndarray, dst_times: np.ndarray,
                      src_period: float) -> np.ndarray:
  """Mean-pools / nearest-fills ``values`` sampled at ``src_times`` onto ``dst_times``.

  Args:
    src_times: ``[N]`` increasing sample times (seconds).
    values: ``[N, D]`` samples, NaN where missing.
    dst_times: ``[T]`` strictly increasing annotation times (seconds).
    src_period: seconds between processed source samples (e.g. ``stride / fps``); bounds the
      nearest-sample fill to half of it.

  Returns:
    ``float32 [T, D]``.
  """
  src_times = np.asarray(src_times, np.float64)
  values = np.asarray(values, np.float64)
  values = values.reshape(src_times.shape[0], values.shape[-1] if values.ndim > 1 else 1)
  dst_times = np.asarray(dst_times, np.float64)
  t, d = dst_times.shape[0], values.shape[1]
  out = np.full((t, d), np.nan)
  if src_times.size == 0 or t == 0:
    return out.astype(np.float32)
  edges = step_edges(dst_times, src_period)  # [T + 1]
  bins = np.searchsorted(edges, src_times, side="right") - 1  # [N], -1 or T = outside
  inside = (bins >= 0) & (bins < t)
  finite = np.isfinite(values) & inside[:, None]  # [N, D]
  sums = np.zeros((t, d))
  counts = np.zeros((t, d))
  np.add.at(sums, bins[inside], np.where(finite, values, 0.0)[inside])
  np.add.at(counts, bins[inside], finite[inside].astype(np.float64))
  with np.errstate(invalid="ignore", divide="ignore"):
    out = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
  occupied = np.zeros(t, bool)
  occupied[bins[inside]] = True
  empty = np.flatnonzero(~occupied)
  if empty.size:
    j = np.clip(np.searchsorted(src_times, dst_times[empty]), 1, src_times.size - 1)
    if src_times.size == 1:
      j = np.zeros_like(empty)
    else:
      j = np.where(np.abs(src_times[j - 1] - dst_times[empty]) <=
                   np.abs(src_times[j] - dst_times[empty]), j - 1, j)
    near = np.abs(src_times[j] - dst_times[empty]) <= src_period / 2 + 1e-9
    out[empty[near]] = values[j[near]]
  return out.astype(np.float32)
