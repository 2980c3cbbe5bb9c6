"""The ``results.npz`` layout: the one module that writes and reads it.

Every array has a leading fold (or seed) axis unless noted (the README's *Outputs* table):
``test_accuracy``, ``best_val_accuracy``, ``best_epoch``, ``epochs_run`` ``[folds]``;
``train_loss``, ``val_accuracy`` ``[folds, max_epochs]``; ``num_train_pairs``, ``num_val_pairs``,
``num_test_pairs``, ``degenerate`` (the fold's head learned nothing:
:mod:`lasca_jax.model.degenerate`) ``[folds]``; ``change_<part>`` ``[folds]`` (the median
window-to-window change of each part of ``z`` over the training pairs); under ``train.select``
``select_choice``, ``select_val_accuracy`` ``[folds, G]`` and ``selected_<setting>``; ``test_prob``, ``test_label``, ``test_mask`` ``[folds, n]``;
``subjects``, ``test_subjects``; the scalars ``num_params`` and ``input_dim``; and for runs with
text ``prompts``, ``prompt_index`` ``[folds, windows]`` and ``usable_windows``.
"""

from __future__ import annotations

import os
import pathlib
import zipfile
from typing import Iterable

import numpy as np

from lasca_jax.model import degenerate

FILE = "results.npz"
# ``[folds]`` arrays, one value per fold.
FOLD_METRICS = ("test_accuracy", "best_val_accuracy", "best_epoch", "epochs_run",
                "num_train_pairs", "num_val_pairs", "num_test_pairs", "degenerate")
# Scalars, one per run.
RUN_METRICS = ("num_params", "input_dim")
INTEGER = ("best_epoch", "epochs_run", "num_train_pairs", "num_val_pairs", "num_test_pairs",
           "num_params", "input_dim", "degenerate")


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
  res["degenerate"] = degenerate.degenerate_folds(
      res["test_prob"], res["test_mask"], res["best_epoch"], res["best_val_accuracy"])
  for part, change in inputs_changes(inputs).items():
    res[f"change_{part}"] = change
  res.update(selection_arrays(inputs.train_settings, out.selection))
  if inputs.prompts is not None:
    res["prompts"] = inputs.prompts
    res["prompt_index"] = inputs.prompt_index
    res["usable_windows"] = inputs.usable
  return res


def selection_arrays(settings, selection) -> dict[str, np.ndarray]:
  """``train.select``'s choices: ``select_choice int [folds]`` (grid index),
  ``select_val_accuracy [folds, G]`` and ``selected_<setting> [folds]`` per varied setting."""
  if selection is None:
    return {}
  points = settings.grid()
  choice = np.asarray(selection.choice)
  out = {"select_choice": choice.astype(np.int32),
         "select_val_accuracy": np.asarray(selection.val_accuracy, np.float64)}
  for name, _ in settings.select:
    out[f"selected_{name}"] = np.asarray([points[c][name] for c in choice])
  return out


def inputs_changes(inputs) -> dict[str, np.ndarray]:
  """:func:`lasca_jax.model.degenerate.part_changes` of a run's inputs (``float [folds]`` per
  part of ``z``)."""
  f = inputs.folds
  return degenerate.part_changes(inputs.z, np.asarray(inputs.pairs.first),
                                 np.asarray(inputs.pairs.second), f.train_idx, f.train_count,
                                 inputs.recipe.slices())


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
