"""Preference pairs between consecutive windows (Sec. 3.3, 4.2).

Windows ``t`` and ``t + 1`` of one recording (both usable) form a pair when the relative change
of the target, ``|a(t+1) - a(t)| / max(|a(t)|, eps)``, exceeds the margin ``tau``. The label is 1
when the target increases. Both orders are kept: ``(t, t+1, y)`` and ``(t+1, t, 1 - y)``, which
share a ``pair_id``. A pair's input is the difference ``z[second] - z[first]``.
"""

from __future__ import annotations

import numpy as np


def make_pairs(windows: dict[str, np.ndarray], usable: np.ndarray, target: str, margin: float,
               eps: float = 1e-3) -> dict[str, np.ndarray]:
  """Returns ``first``, ``second``, ``label``, ``pair_id`` and ``recording`` arrays ``[P]``.

  Both orders of each consecutive pair are stored next to each other: rows ``2k`` and ``2k+1``.
  """
  if target not in ("valence", "arousal"):
    raise ValueError(f"unknown target {target!r}: use valence or arousal")
  if margin < 0 or eps <= 0:
    raise ValueError(f"need margin >= 0 and eps > 0, got margin={margin}, eps={eps}")
  a = windows[target].astype(np.float64)
  rec, pos = windows["recording"], windows["position"]
  t = np.arange(len(a) - 1)
  consecutive = (rec[t] == rec[t + 1]) & (pos[t + 1] == pos[t] + 1)
  ok = consecutive & usable[t] & usable[t + 1] & np.isfinite(a[t]) & np.isfinite(a[t + 1])
  change = np.abs(a[t + 1] - a[t]) / np.maximum(np.abs(a[t]), eps)
  keep = t[ok & (change > margin)]
  y = (a[keep + 1] > a[keep]).astype(np.int32)
  first = np.stack([keep, keep + 1], axis=1).reshape(-1)
  second = np.stack([keep + 1, keep], axis=1).reshape(-1)
  label = np.stack([y, 1 - y], axis=1).reshape(-1)
  return {
      "first": first.astype(np.int32),
      "second": second.astype(np.int32),
      "label": label.astype(np.int32),
      "pair_id": np.repeat(np.arange(keep.size), 2).astype(np.int32),
      "recording": rec[first].astype(np.int32),
  }
