"""Per-window salience (Sec. 3.1, Eq. 2) and the alternative rules of Sec. 6.

Otsu's split over the ``d`` normalised values of one window: sort them, consider every split
between two *distinct* consecutive sorted values, and pick the one maximising the between-group
variance ``w0 * w1 * (mu0 - mu1)**2`` (weights are group fractions). Features in the upper group
are salient. The search is exact over all ``d - 1`` splits and vectorised over windows with
cumulative sums. If all values of a window are equal there is no split and nothing is salient.
Ties between equally good splits (equal up to 1e-12 relative) take the lowest threshold.
"""

from __future__ import annotations

import numpy as np
from lasca_jax.data import checks


def otsu_thresholds(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Otsu thresholds per row.

  Args:
    values: ``float [N, d]`` (rows are windows).

  Returns:
    ``(threshold [N], variance [N])``: features ``> threshold`` are salient; the threshold is the
    largest value of the lower group (``+inf`` where a row has no split), ``variance`` the best
    between-group variance (0 where there is no split).
  """
  x = np.sort(np.asarray(values, np.float64), axis=-1)              # [N, d]
  n, d = x.shape
  k = np.arange(1, d, dtype=np.float64)                             # lower-group sizes
  csum = np.cumsum(x, axis=-1)                                      # [N, d]
  total = csum[:, -1:]
  mu0 = csum[:, :-1] / k                                            # [N, d-1]
  mu1 = (total - csum[:, :-1]) / (d - k)
  w0 = k / d
  var = w0 * (1.0 - w0) * (mu0 - mu1) ** 2                          # [N, d-1]
  valid = x[:, 1:] > x[:, :-1]                                      # split between distinct values
  var = np.where(valid, var, -np.inf)
  if d > 1:
    # Lowest threshold among splits tied with the best (up to rounding of the cumulative sums).
    top = var.max(axis=-1, keepdims=True)
    best = np.argmax(var >= top - 1e-12 * np.abs(top), axis=-1)
  else:
    best = np.zeros(n, int)
  has_split = valid.any(axis=-1) if d > 1 else np.zeros(n, bool)
  thr = np.where(has_split, x[np.arange(n), best], np.inf)
  best_var = np.where(has_split, var[np.arange(n), best] if d > 1 else 0.0, 0.0)
  return thr, best_var


def otsu_mask(values: np.ndarray) -> np.ndarray:
  """``bool [N, d]``: the upper Otsu group of every row."""
  thr, _ = otsu_thresholds(values)
  return np.asarray(values) > thr[:, None]


def topk_mask(values: np.ndarray, k: int) -> np.ndarray:
  """The ``k`` largest values per row (ties broken by feature order)."""
  values = np.asarray(values)
  k = int(min(max(k, 0), values.shape[-1]))
  order = np.argsort(-values, axis=-1, kind="stable")[:, :k]
  mask = np.zeros(values.shape, bool)
  np.put_along_axis(mask, order, True, axis=-1)
  return mask


def threshold_mask(values: np.ndarray, threshold: float) -> np.ndarray:
  return np.asarray(values) > threshold


def salience_mask(values: np.ndarray, modalities, rule: str = "otsu", k: int = 5,
                  threshold: float = 0.5) -> np.ndarray:
  """Salience per modality group: the rule runs separately on face and on audio features.

  Args:
    values: ``float [..., F]`` normalised window features.
    modalities: ``F`` entries ``"face"``/``"audio"``.
    rule: ``"otsu"``, ``"topk"`` or ``"threshold"``.

  Returns:
    ``bool [..., F]``.
  """
  values = np.asarray(values)
  lead = values.shape[:-1]
  flat = values.reshape(-1, values.shape[-1])
  mods = np.asarray(modalities)
  mask = np.zeros(flat.shape, bool)
  for m in np.unique(mods):
    cols = np.flatnonzero(mods == m)
    sub = flat[:, cols]
    if rule == "otsu":
      mask[:, cols] = otsu_mask(sub)
    elif rule == "topk":
      mask[:, cols] = topk_mask(sub, k)
    elif rule == "threshold":
      mask[:, cols] = threshold_mask(sub, threshold)
    else:
      raise ValueError(f"unknown salience rule {rule!r}: use otsu, topk or threshold")
  return mask.reshape(*lead, -1)


RULES = ("otsu", "topk", "threshold")
# The config fields this module reads, and what each accepts (collected by run/validate.py).
FIELDS = (
    ("text.salience", checks.one_of(RULES)),
    ("text.salience_k", checks.int_at_least(1)),
    ("text.salience_threshold", checks.number_in(0, 1, hi_open=True)),
)
