"""Folds whose preference head learned nothing, flagged wherever results are read.

On real data the paper's head can stay constant: min-max normalised windows change by about
0.01-0.05 between consecutive windows, the first layer's biases dominate, and early stopping
keeps the first epoch. Such a model decides a pair and its mirror the same way, so it scores
exactly 0.5 on validation pairs (which come in both orders) and decides every test pair one
way. A fold is **degenerate** (:func:`degenerate_folds`) when its model

* decides every test pair the same way (:func:`one_class_folds`), or
* kept its first epoch with validation accuracy at chance (exactly 0.5).

The flag is ``results.npz["degenerate"]`` ``bool [folds]``, the ``trained`` event's
``degenerate_folds``, the results table's ``degenerate`` column, a warning with the count and the
likely cause (:func:`warning`), a mark on table cells, and a note in the sweep report.
:func:`part_changes` measures the cause: the typical window-to-window change of each part of
``z`` (``results.npz["change_<part>"]``, the ``train`` event's ``change``), so the scale of the
features, the embedding and the mask can be compared on any dataset. The remedies are options of
:mod:`lasca_jax.model.train` (``train.standardize``, ``train.min_epochs``, ``train.monitor``).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

CHANCE_TOLERANCE = 1e-6


def one_class_folds(test_prob: np.ndarray, test_mask: np.ndarray) -> list[int]:
  """The folds whose model decides every test pair the same way (it learned no direction)."""
  out = []
  for fold, (prob, mask) in enumerate(zip(np.asarray(test_prob), np.asarray(test_mask))):
    decided = prob[mask.astype(bool)] > 0.5
    if decided.size > 1 and (decided.all() or not decided.any()):
      out.append(fold)
  return out


def degenerate_folds(test_prob: np.ndarray, test_mask: np.ndarray, best_epoch: np.ndarray,
                     best_val_accuracy: np.ndarray) -> np.ndarray:
  """``bool [folds]``: one-class folds, and folds that kept epoch 1 at chance on validation."""
  flags = np.zeros(np.shape(best_epoch), bool)
  flags[one_class_folds(test_prob, test_mask)] = True
  at_chance = np.abs(np.asarray(best_val_accuracy, np.float64) - 0.5) <= CHANCE_TOLERANCE
  return flags | ((np.asarray(best_epoch) <= 1) & at_chance)


def part_changes(z: np.ndarray, first: np.ndarray, second: np.ndarray, train_idx: np.ndarray,
                 train_count: np.ndarray, slices: Mapping[str, slice]) -> dict[str, np.ndarray]:
  """Per part of ``z`` (``slices``), ``float [folds]``: the median over a fold's training pairs
  of the mean absolute change of that part's columns between the pair's windows."""
  out = {name: np.zeros(len(train_count), np.float64) for name in slices}
  for k, count in enumerate(np.asarray(train_count)):
    idx = np.asarray(train_idx[k][:int(count)])
    zk = z[min(k, len(z) - 1)]      # one z for all folds when it does not depend on the fold
    diff = np.abs(zk[second[idx]] - zk[first[idx]])
    for name, part in slices.items():
      width = part.stop - part.start
      out[name][k] = float(np.median(diff[:, part].mean(1))) if width and idx.size else 0.0
  return out


def warning(flags: np.ndarray, changes: Mapping[str, np.ndarray], few_pairs: bool,
            margin: float) -> str:
  """The console warning for degenerate folds (empty when there are none): the count, which,
  and the likely cause with its remedy."""
  folds = np.flatnonzero(flags).tolist()
  if not folds:
    return ""
  shown = ", ".join(map(str, folds[:10])) + (" ..." if len(folds) > 10 else "")
  if few_pairs:
    cause = (f"its folds have few pairs (pairs.margin={margin:g}), the likely cause" if margin > 0
             else "its folds have few pairs (too few or too short recordings), the likely cause")
  else:
    sizes = ", ".join(f"{name} {float(np.mean(v)):.3g}" for name, v in changes.items())
    cause = (f"the likely cause is small window-to-window changes of the input (median per "
             f"part: {sizes}); try --config.train.standardize=True (a departure from the paper, "
             "docs/method.md)")
  return (f"{len(folds)} of {len(flags)} folds (fold {shown}) learned nothing: their model "
          "decides every test pair the same way or kept its first epoch at chance on validation, "
          f"so their accuracy is the share of one direction; {cause}")
