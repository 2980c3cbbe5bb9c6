"""Tests for lasca_jax.analysis.stats: agreement with scipy and the edge cases the tables rely on."""

import numpy as np
import pytest
import scipy.stats

from lasca_jax.analysis import stats


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("zero_method", ["wilcox", "pratt", "zsplit"])
def test_agrees_with_scipy_on_random_data(seed, zero_method):
  rng = np.random.default_rng(seed)
  a = rng.uniform(0.5, 0.8, 15)
  b = a + rng.normal(0.02, 0.03, 15)
  b[:2] = a[:2]  # two zero differences
  got = stats.wilcoxon_paired(a, b, zero_method=zero_method)
  ref = scipy.stats.wilcoxon(a, b, zero_method=zero_method)
  assert got.p_value == pytest.approx(float(ref.pvalue), rel=1e-12)
  assert got.statistic == pytest.approx(float(ref.statistic))
  assert (got.n, got.n_nonzero) == (15, 13)


def test_identical_models_are_on_par_with_p_one():
  a = np.array([0.6, 0.7, 0.65, 0.62, 0.7, 0.71, 0.55])
  t = stats.wilcoxon_paired(a, a.copy())
  assert t.p_value == 1.0 and t.n_nonzero == 0 and t.on_par()
  assert "identical" in t.note


def test_nan_folds_are_dropped_pairwise():
  rng = np.random.default_rng(0)
  a = rng.uniform(size=12)
  b = a - 0.1 - rng.uniform(0, 0.01, 12)
  a_nan, b_nan = a.copy(), b.copy()
  a_nan[3] = np.nan
  b_nan[7] = np.nan
  keep = np.ones(12, bool)
  keep[[3, 7]] = False
  t = stats.wilcoxon_paired(a_nan, b_nan)
  assert t.n == 10
  assert t.p_value == pytest.approx(float(scipy.stats.wilcoxon(a[keep], b[keep]).pvalue))


def test_few_folds_cannot_be_significant_and_say_so():
  a = np.array([0.9, 0.9, 0.9, 0.9, 0.9])
  b = np.array([0.1, 0.2, 0.3, 0.4, 0.5])  # always worse, still p = 2/32
  t = stats.wilcoxon_paired(a, b)
  assert t.underpowered and t.on_par()
  assert t.p_value == pytest.approx(2 / 2**5)
  assert "cannot reach" in t.note
  t6 = stats.wilcoxon_paired(np.append(a, 0.9), np.append(b, 0.6))
  assert not t6.underpowered and not t6.on_par()
  assert t6.p_value == pytest.approx(2 / 2**6)


def test_length_mismatch_and_inf_raise():
  with pytest.raises(ValueError, match="same folds"):
    stats.wilcoxon_paired([0.1, 0.2], [0.1, 0.2, 0.3])
  with pytest.raises(ValueError, match="infinite"):
    stats.wilcoxon_paired([0.1, np.inf], [0.1, 0.2])


def test_compare_to_best_marks():
  rng = np.random.default_rng(1)
  base = rng.uniform(0.6, 0.7, 15)
  acc = {
      "A": base,                                    # best
      "B": base - rng.uniform(0.001, 0.002, 15),    # always worse: significant
      "C": base + rng.normal(-0.001, 0.02, 15),     # noisy: on par
      "D": np.full(15, np.nan),                     # no result
  }
  acc["C"] = np.where(acc["C"].mean() >= base.mean(), acc["C"] - 0.01, acc["C"])
  out = stats.compare_to_best(acc)
  assert out["A"].is_best and out["A"].on_par and np.isnan(out["A"].p_value)
  assert not out["B"].is_best and not out["B"].on_par
  assert out["B"].p_value == pytest.approx(float(scipy.stats.wilcoxon(acc["A"], acc["B"]).pvalue))
  assert out["C"].on_par and not out["C"].is_best
  assert not out["D"].on_par and out["D"].n_folds == 0
  assert out["A"].std == pytest.approx(np.std(base, ddof=1))


def test_tied_best_means_are_all_best():
  a = np.array([0.6, 0.7, 0.8, 0.6, 0.7, 0.8])
  b = a[::-1].copy()  # same mean, different folds
  out = stats.compare_to_best({"a": a, "b": b, "c": a - 0.1})
  assert out["a"].is_best and out["b"].is_best
  assert not out["c"].on_par
