import itertools

import numpy as np
import pytest

from lasca_jax.method import salience


def brute_force_otsu(row):
  """Tries every threshold between distinct values; returns (mask, variance)."""
  candidates = []
  for thr in np.unique(row)[:-1]:
    upper = row > thr
    w1 = upper.mean()
    w0 = 1 - w1
    candidates.append((w0 * w1 * (row[~upper].mean() - row[upper].mean()) ** 2, upper))
  if not candidates:
    return np.zeros(row.shape, bool), 0.0
  top = max(v for v, _ in candidates)
  # The lowest threshold among (numerically) tied best splits.
  return next((m, v) for v, m in candidates if v >= top - 1e-12 * top)


@pytest.mark.parametrize("d", [2, 3, 15, 58, 73])
def test_otsu_matches_brute_force_on_random_vectors(d):
  rng = np.random.default_rng(d)
  values = np.concatenate([rng.random((200, d)), rng.beta(0.3, 2.0, (200, d))])
  thr, var = salience.otsu_thresholds(values)
  mask = salience.otsu_mask(values)
  for row, m, v in zip(values, mask, var):
    ref_mask, ref_var = brute_force_otsu(row)
    np.testing.assert_allclose(v, ref_var, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(m, ref_mask)


def test_otsu_with_ties_and_constant_rows():
  values = np.array([[0.1, 0.1, 0.9, 0.9, 0.9],
                     [0.5, 0.5, 0.5, 0.5, 0.5],
                     [0.0, 0.0, 0.0, 0.0, 1.0]])
  mask = salience.otsu_mask(values)
  np.testing.assert_array_equal(mask[0], [False, False, True, True, True])
  assert not mask[1].any()          # no split: nothing salient
  np.testing.assert_array_equal(mask[2], [False, False, False, False, True])
  for row, m in zip(values, mask):
    np.testing.assert_array_equal(m, brute_force_otsu(row)[0])


def test_otsu_is_exhaustive_on_small_integer_grids():
  # Every vector over {0, 1, 2, 3}^4: exact agreement, including many tied values.
  values = np.array(list(itertools.product(range(4), repeat=4)), float) / 3
  mask = salience.otsu_mask(values)
  for row, m in zip(values, mask):
    np.testing.assert_array_equal(m, brute_force_otsu(row)[0])


def test_salience_runs_per_modality_and_alternative_rules():
  values = np.array([[0.9, 0.8, 0.1, 0.2, 0.3, 0.95]])
  mods = ["face", "face", "face", "audio", "audio", "audio"]
  otsu = salience.salience_mask(values, mods, "otsu")
  np.testing.assert_array_equal(otsu[0], [True, True, False, False, False, True])
  top1 = salience.salience_mask(values, mods, "topk", k=1)
  np.testing.assert_array_equal(top1[0], [True, False, False, False, False, True])
  fixed = salience.salience_mask(values, mods, "threshold", threshold=0.25)
  np.testing.assert_array_equal(fixed[0], [True, True, False, False, True, True])
  leading = salience.salience_mask(np.stack([values, values]), mods)   # [2, 1, 6]
  assert leading.shape == (2, 1, 6)
  with pytest.raises(ValueError, match="salience rule"):
    salience.salience_mask(values, mods, "learned")
