"""scikit-learn reference for the preference learner (tests and the benchmark use it).

``MLPClassifier`` with the paper's setting is fitted per fold on the same pairs lasca_jax uses:
the fold's training and validation pairs together (sklearn draws its own 10 % validation split),
scored on the fold's test pairs.
"""

from __future__ import annotations

import numpy as np

from lasca_jax.method import protocols
from lasca_jax.model import train


def pair_inputs(z: np.ndarray, pairs: train.PairData, idx: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
  """``(x [n, d], y [n])`` difference representations for pair rows ``idx``."""
  first, second, label = (np.asarray(a) for a in pairs)
  return z[second[idx]] - z[first[idx]], label[idx]


def sklearn_fold(z: np.ndarray, pairs: train.PairData, folds: protocols.FoldIndices, k: int,
                 seed: int, settings: train.TrainSettings) -> float:
  """Test accuracy of ``MLPClassifier`` on fold ``k`` (``z`` is that fold's ``[W, d]``)."""
  from sklearn.neural_network import MLPClassifier  # pylint: disable=import-outside-toplevel
  fit_rows = np.concatenate([folds.train_idx[k, : folds.train_count[k]],
                             folds.val_idx[k, folds.val_mask[k]]])
  test_rows = folds.test_idx[k, folds.test_mask[k]]
  x, y = pair_inputs(z, pairs, fit_rows)
  x_test, y_test = pair_inputs(z, pairs, test_rows)
  d = z.shape[-1]
  clf = MLPClassifier(hidden_layer_sizes=settings.hidden_sizes(d), max_iter=settings.max_epochs,
                      alpha=settings.alpha, tol=settings.tol, early_stopping=True,
                      n_iter_no_change=settings.patience, shuffle=True,
                      learning_rate_init=settings.learning_rate, random_state=seed + k)
  import warnings  # pylint: disable=import-outside-toplevel
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")   # ConvergenceWarning at max_iter, as in the paper's setting
    clf.fit(x, y)
  return float(clf.score(x_test, y_test))
