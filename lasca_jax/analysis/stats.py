"""Paired significance tests over fold accuracies (Sec. 5.1: Wilcoxon signed-rank, p < 0.05).

Every model in one table column is evaluated on the same folds (same subject splits or seeds), so
two models' fold accuracies are *paired*. Per column, the model with the highest mean accuracy is
the best; every other model is tested against it with a two-sided Wilcoxon signed-rank test on
the per-fold differences, and is "on par" when ``p >= alpha`` (0.05).

Edge cases, all decided here so that tables and plots agree:

* **NaN folds.** A fold whose accuracy is NaN (e.g. no test pairs) is dropped from *both* sides
  of the pair; ``n`` reports how many pairs were left. Means skip NaN folds the same way.
* **All differences zero** (identical fold accuracies): the models are identical on this
  evidence, so the result is ``p = 1``, on par. scipy is not called (its normal approximation
  divides by zero there).
* **Some differences zero.** ``zero_method="wilcox"`` (scipy's default, and hence what a plain
  ``scipy.stats.wilcoxon(a, b)`` in the paper's code computes) drops the zero differences before
  ranking. ``"pratt"`` (ranks zeros, then drops their ranks; more conservative) and ``"zsplit"``
  are available through the ``zero_method`` argument.
* **Ties and zeros with scipy's ``method="auto"``:** exact null distribution for ``n <= 50``
  without ties/zeros; with ties or zeros, exhaustive permutations for ``n <= 13`` and the normal
  approximation above that (as documented for the pinned scipy 1.17).
* **Few folds.** With fewer than 6 non-zero differences the smallest two-sided exact p-value is
  ``2 / 2**n >= 0.0625``, so *no* difference can be significant: every model is on par by
  construction. The result is still reported, with ``underpowered=True`` and a note.
* **Fewer than one usable pair:** ``p = NaN`` and the model counts as on par (nothing shows it
  is worse); the note says why.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
import scipy.stats

ALPHA = 0.05
ZERO_METHOD = "wilcox"
# Below this many non-zero paired differences the exact two-sided test cannot reach p < 0.05:
# the smallest attainable p-value is 2 / 2**n (0.0625 for n = 5, 0.03125 for n = 6).
MIN_PAIRS_FOR_SIGNIFICANCE = 6
# Means closer than this to the top mean are tied for best (summation-order rounding).
TIE_TOLERANCE = 1e-12


@dataclasses.dataclass(frozen=True)
class PairedTest:
  """Result of one two-sided Wilcoxon signed-rank test.

  Attributes:
    statistic: scipy's statistic (the smaller signed-rank sum); NaN when not computed.
    p_value: two-sided p-value; 1.0 when all differences are zero, NaN with no usable pairs.
    n: pairs left after dropping NaN folds.
    n_nonzero: of those, pairs whose difference is not zero.
    underpowered: True when ``n_nonzero < MIN_PAIRS_FOR_SIGNIFICANCE`` (p < 0.05 unreachable).
    note: human-readable explanation of any special case ("" when none applies).
  """

  statistic: float
  p_value: float
  n: int
  n_nonzero: int
  underpowered: bool
  note: str = ""

  def on_par(self, alpha: float = ALPHA) -> bool:
    """True unless the test shows a significant difference (``p < alpha``)."""
    return not (np.isfinite(self.p_value) and self.p_value < alpha)


@dataclasses.dataclass(frozen=True)
class ColumnComparison:
  """One model's standing in one table column.

  Attributes:
    mean: mean accuracy over non-NaN folds (NaN when there are none).
    std: sample standard deviation (ddof=1) over non-NaN folds (NaN with fewer than two).
    n_folds: non-NaN folds.
    is_best: the model has the column's highest mean (ties at the top are all best).
    on_par: not significantly worse than the best (always True for the best).
    test: the test against the reference best model; None for best models.
  """

  mean: float
  std: float
  n_folds: int
  is_best: bool
  on_par: bool
  test: PairedTest | None

  @property
  def p_value(self) -> float:
    """The p-value against the best model, NaN for a best model."""
    return float("nan") if self.test is None else self.test.p_value


def paired_arrays(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
  """Returns ``a`` and ``b`` as float arrays with folds where either is NaN removed.

  Raises:
    ValueError: if the inputs are not 1-D, differ in length, or contain infinities.
  """
  a = np.asarray(a, dtype=np.float64)
  b = np.asarray(b, dtype=np.float64)
  if a.ndim != 1 or b.ndim != 1:
    raise ValueError(f"paired fold accuracies must be 1-D, got shapes {a.shape} and {b.shape}")
  if a.shape != b.shape:
    raise ValueError(f"paired fold accuracies differ in length: {a.shape[0]} vs {b.shape[0]} "
                     "(models must be evaluated on the same folds)")
  if np.isinf(a).any() or np.isinf(b).any():
    raise ValueError("fold accuracies contain infinite values")
  keep = ~(np.isnan(a) | np.isnan(b))
  return a[keep], b[keep]


def wilcoxon_paired(a: Sequence[float], b: Sequence[float], *,
                    zero_method: str = ZERO_METHOD, method: str = "auto") -> PairedTest:
  """Two-sided Wilcoxon signed-rank test of the paired differences ``a - b``.

  Args:
    a: ``[folds]`` accuracies of one model (NaN for a fold without a result).
    b: ``[folds]`` accuracies of the other model on the same folds.
    zero_method: scipy's ``zero_method`` ("wilcox", "pratt" or "zsplit"); see module docstring.
    method: scipy's ``method`` ("auto", "exact", "asymptotic").

  Returns:
    A :class:`PairedTest`; see the module docstring for NaN, zero and few-fold handling.
  """
  a, b = paired_arrays(a, b)
  d = a - b
  n = int(d.size)
  n_nonzero = int(np.count_nonzero(d))
  underpowered = n_nonzero < MIN_PAIRS_FOR_SIGNIFICANCE
  few = (f"only {n_nonzero} non-zero paired differences: the exact two-sided test cannot reach "
         f"p < 0.05 with fewer than {MIN_PAIRS_FOR_SIGNIFICANCE}") if underpowered else ""
  if n == 0:
    return PairedTest(float("nan"), float("nan"), 0, 0, True, "no fold has both accuracies")
  if n_nonzero == 0:
    return PairedTest(0.0, 1.0, n, 0, True, "all paired differences are zero (identical)")
  res = scipy.stats.wilcoxon(a, b, zero_method=zero_method, alternative="two-sided",
                             method=method)
  p = float(res.pvalue)
  note = few
  if not np.isfinite(p):
    note = "; ".join(x for x in (few, "scipy returned a non-finite p-value") if x)
  return PairedTest(float(res.statistic), p, n, n_nonzero, underpowered, note)


def fold_mean_std(acc: Sequence[float]) -> tuple[float, float, int]:
  """Mean and sample std (ddof=1) over the non-NaN folds, and their count."""
  acc = np.asarray(acc, dtype=np.float64)
  acc = acc[~np.isnan(acc)]
  if acc.size == 0:
    return float("nan"), float("nan"), 0
  std = float(np.std(acc, ddof=1)) if acc.size > 1 else float("nan")
  return float(np.mean(acc)), std, int(acc.size)


def compare_to_best(accuracies: Mapping[str, Sequence[float]], *, alpha: float = ALPHA,
                    zero_method: str = ZERO_METHOD) -> dict[str, ColumnComparison]:
  """Finds the best model of one column and tests every other model against it.

  The best model has the highest mean accuracy over its non-NaN folds. When several models share
  that mean (within ``TIE_TOLERANCE``) they are all best (all bold); the first of them, in the
  mapping's order, is the reference the others are tested against. A model with no finite fold
  is neither best nor on par.

  Args:
    accuracies: model label -> ``[folds]`` accuracies; all on the same folds.
    alpha: significance level; on par means ``p >= alpha``.
    zero_method: passed to :func:`wilcoxon_paired`.

  Returns:
    model label -> :class:`ColumnComparison`, in the mapping's order.
  """
  stats = {k: fold_mean_std(v) for k, v in accuracies.items()}
  means = {k: s[0] for k, s in stats.items() if s[2] > 0}
  out = {}
  if not means:
    return {k: ColumnComparison(s[0], s[1], s[2], False, False, None) for k, s in stats.items()}
  top = max(means.values())
  best = [k for k, m in means.items() if m >= top - TIE_TOLERANCE]
  ref = best[0]
  for k, (mean, std, n) in stats.items():
    if n == 0:
      out[k] = ColumnComparison(mean, std, n, False, False, None)
    elif k in best:
      out[k] = ColumnComparison(mean, std, n, True, True, None)
    else:
      test = wilcoxon_paired(accuracies[ref], accuracies[k], zero_method=zero_method)
      out[k] = ColumnComparison(mean, std, n, False, test.on_par(alpha), test)
  return out
