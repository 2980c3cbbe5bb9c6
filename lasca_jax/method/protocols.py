"""Subject-independent evaluation protocols (Sec. 5.1) and per-fold index sets.

* ``kfold``: subjects are shuffled with the run seed and dealt into ``num_folds`` groups; fold
  ``k`` tests on group ``k`` and trains on the rest (SEWA, 15 folds).
* ``random_splits``: ``num_folds`` independent subject-level splits, split ``k`` drawn with seed
  ``(seed, k)``, ``test_fraction`` of the subjects held out (Aff-Wild2, 15 seeds).

The training pairs of every fold are split again into training and validation pairs (for early
stopping) with seed ``(seed, k)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
from lasca_jax.data import checks


class FoldSplits(NamedTuple):
  """Subject membership per fold: ``bool [folds, subjects]`` each; ``subjects [S]`` names."""
  subjects: np.ndarray
  train: np.ndarray
  test: np.ndarray


def subject_splits(subject_ids: np.ndarray, protocol: str, num_folds: int, seed: int,
                   test_fraction: float = 0.2, excluded: Sequence[str] = ()) -> FoldSplits:
  """Subject membership of every fold.

  Args:
    subject_ids: the subject of every recording (repeats allowed).
    protocol: ``kfold`` or ``random_splits``.
    num_folds: folds, or seeds of ``random_splits``.
    seed: the split seed (``protocol.split_seed``, else ``config.seed``).
    test_fraction: test share of subjects per ``random_splits`` seed.
    excluded: subjects left out of the protocol (no usable window): never in a training or a
      test set. The others are drawn exactly as if the excluded ones did not exist.
  """
  subjects = np.unique(subject_ids)
  active = np.flatnonzero(~np.isin(subjects, np.asarray(list(excluded), dtype=subjects.dtype)))
  s = active.size
  test = np.zeros((num_folds, subjects.size), bool)
  left_out = f" ({subjects.size - s} left out: no usable window)" if s < subjects.size else ""
  if protocol == "kfold":
    if s < num_folds:
      raise ValueError(f"kfold with {num_folds} folds needs at least {num_folds} subjects; "
                       f"the dataset has {s}{left_out} (lower protocol.num_folds)")
    order = np.random.default_rng(seed).permutation(s)
    for k, group in enumerate(np.array_split(order, num_folds)):
      test[k, active[group]] = True
  elif protocol == "random_splits":
    n_test = max(1, int(math.ceil(test_fraction * s)))
    if n_test >= s:
      raise ValueError(f"random_splits with test_fraction={test_fraction} leaves no training "
                       f"subject out of {s}{left_out}")
    for k in range(num_folds):
      order = np.random.default_rng([seed, k]).permutation(s)
      test[k, active[order[:n_test]]] = True
  else:
    raise ValueError(f"unknown protocol {protocol!r}: use kfold or random_splits")
  train = ~test
  train[:, np.setdiff1d(np.arange(subjects.size), active)] = False
  return FoldSplits(subjects=subjects, train=train, test=test)


def subject_index(subject_ids: np.ndarray, subjects: np.ndarray) -> np.ndarray:
  return np.searchsorted(subjects, subject_ids).astype(np.int32)


def training_windows(usable: np.ndarray, train_subjects: np.ndarray,
                     window_subject: np.ndarray) -> np.ndarray:
  """``bool [W]``: the usable windows of one fold's training subjects (``train_subjects`` a row
  of ``FoldSplits.train``), the rows its min-max statistics come from."""
  return usable & train_subjects[window_subject]


class FoldIndices(NamedTuple):
  """Padded pair indices per fold; masks mark real entries. Shapes ``[folds, n_max]``.

  The trainer takes the same type (``lasca_jax.model.train.FoldData`` is this class), with or
  without the leading fold axis.
  """
  train_idx: np.ndarray
  train_count: np.ndarray   # [folds]
  val_idx: np.ndarray
  val_mask: np.ndarray
  test_idx: np.ndarray
  test_mask: np.ndarray


def bucket_size(n: int, unit: int) -> int:
  """Rounds ``n`` up to ``unit`` times 1, 2, 4, 8, then a multiple of 4.

  Padding never changes training (see ``lasca_jax.model.train``), and coarse sizes let runs of
  similar size reuse one compiled program; the extra (masked) work is at most a third once
  past 8 units.
  """
  units = max(1, int(math.ceil(n / unit)))
  if units > 8:
    units = int(math.ceil(units / 4) * 4)
  else:
    units = 1 << (units - 1).bit_length()
  return units * unit


def _pad(rows: list[np.ndarray], multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
  n = bucket_size(max(1, max(r.size for r in rows)), multiple)
  idx = np.zeros((len(rows), n), np.int32)
  mask = np.zeros((len(rows), n), bool)
  for k, r in enumerate(rows):
    idx[k, : r.size] = r
    mask[k, : r.size] = True
  return idx, mask


def fold_indices(pairs, pair_subject: np.ndarray, splits: FoldSplits,
                 seed: int, validation_fraction: float, grouping: str = "pair",
                 batch_size: int = 1) -> FoldIndices:
  """Training, validation and test pair indices for every fold.

  Args:
    pairs: output of :func:`lasca_jax.method.pairs.make_pairs`.
    pair_subject: ``int [P]`` subject index (into ``splits.subjects``) of each pair.
    grouping: ``"pair"`` keeps both orders of a pair on the same side of the validation split;
      ``"none"`` splits single rows, stratified by label, like scikit-learn's early stopping.
    batch_size: training indices are padded to a multiple of it (see :func:`bucket_size`).
  """
  if grouping not in ("pair", "none"):
    raise ValueError(f"unknown validation_grouping {grouping!r}: use pair or none")
  train_rows, val_rows, test_rows = [], [], []
  for k in range(splits.train.shape[0]):
    in_train = splits.train[k, pair_subject]
    in_test = splits.test[k, pair_subject]
    rows = np.flatnonzero(in_train)
    rng = np.random.default_rng([seed, k, 1])
    if grouping == "pair":
      groups = np.unique(pairs.pair_id[rows])
      n_val = int(math.ceil(validation_fraction * groups.size))
      val_groups = rng.choice(groups, size=n_val, replace=False)
      is_val = np.isin(pairs.pair_id[rows], val_groups)
    else:
      is_val = np.zeros(rows.size, bool)
      for c in (0, 1):
        members = np.flatnonzero(pairs.label[rows] == c)
        n_val = int(round(validation_fraction * members.size))
        is_val[rng.choice(members, size=n_val, replace=False)] = True
    if (~is_val).sum() < 2 or is_val.sum() < 1 or in_test.sum() < 1:
      raise ValueError(
          f"fold {k}: {int((~is_val).sum())} training, {int(is_val.sum())} validation and "
          f"{int(in_test.sum())} test pairs; every fold needs training, validation and test "
          "pairs (lower pairs.margin, use shorter windows, or fewer folds)")
    train_rows.append(rows[~is_val])
    val_rows.append(rows[is_val])
    test_rows.append(np.flatnonzero(in_test))
  train_idx, train_mask = _pad(train_rows, batch_size)
  val_idx, val_mask = _pad(val_rows, 64)
  test_idx, test_mask = _pad(test_rows, 64)
  return FoldIndices(train_idx, train_mask.sum(1).astype(np.int32), val_idx, val_mask,
                     test_idx, test_mask)


NAMES = ("kfold", "random_splits")
# The config fields this module reads, and what each accepts (collected by run/validate.py).
FIELDS = (
    ("protocol.split_seed", checks.int_at_least(-1)),
    ("protocol.name", checks.one_of(NAMES)),
    ("protocol.num_folds", checks.int_at_least(1)),
    ("protocol.test_fraction", checks.number_in(0, 1, lo_open=True, hi_open=True)),
    ("train.validation_fraction", checks.number_in(0, 1, lo_open=True, hi_open=True)),
    ("train.validation_grouping", checks.one_of(("pair", "none"))),
)
