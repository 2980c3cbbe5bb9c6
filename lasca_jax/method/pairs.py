"""Preference pairs between consecutive windows (Sec. 3.3, 4.2).

Windows ``t`` and ``t + 1`` of one recording (both usable) form a pair when the relative change
of the target, ``|a(t+1) - a(t)| / max(|a(t)|, eps)``, exceeds the margin ``tau``. The label is 1
when the target increases. Both orders are kept: ``(t, t+1, y)`` and ``(t+1, t, 1 - y)``, which
share a ``pair_id``. A pair's input is the difference ``z[second] - z[first]``.
"""

from __future__ import annotations

import math
import dataclasses

import numpy as np

from lasca_jax.data.records import ArrayRecord
from lasca_jax.method import windows as windows_lib
from lasca_jax.data import checks


@dataclasses.dataclass(frozen=True, eq=False)
class Pairs(ArrayRecord):
  """Preference pairs (the cached ``pairs`` stage), ``[P]`` each; rows ``2k`` and ``2k + 1`` are
  the two orders of one pair."""
  first: np.ndarray     # int32 window index
  second: np.ndarray    # int32 window index
  label: np.ndarray     # int32, 1 = the target increases from first to second
  pair_id: np.ndarray   # int32, shared by both orders
  recording: np.ndarray  # int32 recording of both windows


def make_pairs(windows: windows_lib.Windows, usable: np.ndarray, target: str, margin: float,
               eps: float = 1e-3) -> Pairs:
  """The pairs of consecutive usable windows whose target changes by more than ``margin``.

  Args:
    windows: needs ``recording``, ``position`` and the ``target`` field (a
      :class:`~lasca_jax.method.windows.Windows`).
    usable: ``bool [W]``.
  """
  if target not in ("valence", "arousal"):
    raise ValueError(f"unknown target {target!r}: use valence or arousal")
  if margin < 0 or eps <= 0:
    raise ValueError(f"need margin >= 0 and eps > 0, got margin={margin}, eps={eps}")
  a = getattr(windows, target).astype(np.float64)
  rec = windows.recording
  t = np.arange(len(a) - 1)
  ok = windows_lib.consecutive(rec, windows.position) & usable[t] & usable[t + 1] & np.isfinite(a[t]) & np.isfinite(a[t + 1])
  change = np.abs(a[t + 1] - a[t]) / np.maximum(np.abs(a[t]), eps)
  keep = t[ok & (change > margin)]
  y = (a[keep + 1] > a[keep]).astype(np.int32)
  first = np.stack([keep, keep + 1], axis=1).reshape(-1)
  second = np.stack([keep + 1, keep], axis=1).reshape(-1)
  label = np.stack([y, 1 - y], axis=1).reshape(-1)
  return Pairs(
      first=first.astype(np.int32),
      second=second.astype(np.int32),
      label=label.astype(np.int32),
      pair_id=np.repeat(np.arange(keep.size), 2).astype(np.int32),
      recording=rec[first].astype(np.int32),
  )


TARGETS = ("arousal", "valence")
# The config fields this module reads, and what each accepts (collected by run/validate.py).
FIELDS = (
    ("pairs.target", checks.one_of(TARGETS)),
    ("pairs.margin", checks.number_in(0, math.inf)),
    ("pairs.eps", checks.number_in(0, math.inf, lo_open=True)),
)
