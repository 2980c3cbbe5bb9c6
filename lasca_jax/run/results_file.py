"""The ``results.npz`` layout: the one module that writes and reads it.

Every array has a leading fold (or seed) axis unless noted (the README's *Outputs* table):
``test_accuracy``, ``best_val_accuracy``, ``best_epoch``, ``epochs_run`` ``[folds]``;
``train_loss``, ``val_accuracy`` ``[folds, max_epochs]``; ``num_train_pairs``, ``num_val_pairs``,
``num_test_pairs`` ``[folds]``; ``test_prob``, ``test_label``, ``test_mask`` ``[folds, n]``;
``subjects``, ``test_subjects``; the scalars ``num_params`` and ``input_dim``; and for runs with
text ``prompts``, ``prompt_index`` ``[folds, windows]`` and ``usable_windows``.
"""

from __future__ import annotations

import os
import pathlib
import zipfile
from typing import Iterable

import numpy as np

FILE = "results.npz"
# ``[folds]`` arrays, one value per fold.
FOLD_METRICS = ("test_accuracy", "best_val_accuracy", "best_epoch", "epochs_run",
                "num_train_pairs", "num_val_pairs", "num_test_pairs")
# Scalars, one per run.
RUN_METRICS = ("num_params", "input_dim")
INTEGER = ("best_epoch", "epochs_run", "num_train_pairs", "num_val_pairs", "num_test_pairs",
           "num_params", "input_dim")


def arrays(inputs, out, num_params: int) -> dict[str, np.ndarray]:
  """The ``results.npz`` arrays of a trained run (``pipeline.RunInputs``, ``train.TrainOutput``,
  the MLP's trainable parameter count)."""
  f = inputs.folds
  res = {
      "test_accuracy": np.asarray(out.test_accuracy, np.float64),
      "best_val_accuracy": np.asarray(out.val_accuracy, np.float64),
      "best_epoch": np.asarray(out.best_epoch, np.int32),
      "epochs_run": np.asarray(out.epochs_run, np.int32),
      "train_loss": np.asarray(out.train_loss, np.float64),
      "val_accuracy": np.asarray(out.val_curve, np.float64),
      "num_train_pairs": f.train_count.astype(np.int32),
      "num_val_pairs": f.val_mask.sum(1).astype(np.int32),
      "num_test_pairs": f.test_mask.sum(1).astype(np.int32),
      "test_prob": np.asarray(out.test_prob, np.float32),
      "test_label": np.asarray(inputs.pairs.label)[f.test_idx].astype(np.int32),
      "test_mask": f.test_mask,
      "subjects": inputs.splits.subjects,
      "test_subjects": inputs.splits.test,
      "num_params": np.int64(num_params),
      "input_dim": np.int64(inputs.input_dim),
  }
  if inputs.prompts is not None:
    res["prompts"] = inputs.prompts
    res["prompt_index"] = inputs.prompt_index
    res["usable_windows"] = inputs.usable
  return res


def read(run_dir: str | os.PathLike, names: Iterable[str]) -> dict[str, np.ndarray]:
  """The arrays ``names`` of ``<run_dir>/results.npz`` that it holds (the others are left out).

  Raises:
    ValueError: naming the file when it cannot be read.
  """
  path = pathlib.Path(run_dir) / FILE
  if not path.is_file():
    raise ValueError(f"{path}: no such file")
  try:
    with np.load(path, allow_pickle=False) as res:
      return {n: np.asarray(res[n]) for n in names if n in res}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f"{path}: unreadable ({e}); remove it and run the configuration again") \
        from e
