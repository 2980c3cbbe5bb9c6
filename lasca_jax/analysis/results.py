"""Results as data: a run or a sweep directory read into one tidy table (pandas).

A run directory holds ``config.json`` and ``results.npz`` (README, *Outputs*); a sweep is any
directory tree of them. :func:`load` walks a directory once (:func:`find_run_dirs`, the only walk
for results, through :func:`lasca_jax.data.files.walk_files`) and returns a ``pandas.DataFrame``
with **one row per run x fold**:

  ============================  ==================================================================
  ``run``                       the run directory relative to the loaded one (``"."``: itself)
  ``fold``                      0-based fold (or seed) index (``Int64``)
  ``model_label``               ``config.json``'s ``model_label``, else derived from the
                                config (:func:`lasca_jax.run.labels.model_label`)
  ``<section.field>``           every config field that differs between the runs, by its dotted
                                name, sorted (``pairs.margin``, ``text.backbone``); lists: tuples
  ``test_accuracy`` ...         the fold's metrics: :data:`FOLD_METRICS` (``[folds]`` arrays of
                                ``results.npz``), then :data:`RUN_METRICS` (one per run, repeated)
  ``status``                    ``"ok"``, ``"failed"`` or ``"incomplete"`` (below)
  ``reason``                    why a run is not ``"ok"`` (``""`` when it is)
  ``path``                      the run directory (the loaded path joined with ``run``)
  ============================  ==================================================================

Config fields equal in every run (runs whose config cannot be read do not count) are not columns;
they are in ``frame.attrs["constant"]`` (dotted name -> value), and :func:`field` reads a field
either way. A run recorded as failed by a sweep (``failed.json`` and no ``results.npz``) and a run
that never finished (``config.json`` but neither ``results.npz`` nor ``failed.json``: still
running, or killed) each get **one** row with ``fold`` and the metrics missing (``<NA>`` / NaN),
``status`` ``"failed"`` or ``"incomplete"`` and the ``reason``; keep the finished runs with
``frame[frame.status == "ok"]``.

Built on the table: :func:`records` (one :class:`~lasca_jax.analysis.tables.RunRecord` per run,
what the paper's tables group), :func:`curves` (one row per run x fold x epoch: the learning
curves) and :func:`failures`. :func:`read_arrays` is the one function that opens ``results.npz``
for the analysis (the prompts of Figure 2, the curves, the metrics).

  frame = results.load("runs/synthetic_sweep/runs")
  ok = frame[frame.status == "ok"]
  ok.groupby(["model_label", "pairs.margin"]).test_accuracy.agg(["mean", "std"])
"""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from lasca_jax.analysis import tables
from lasca_jax.data import files as files_lib
from lasca_jax.run import labels, results_file
# The file names lasca_jax.run.rundir.RunDir writes (config, results, a failure record).
from lasca_jax.run.rundir import CONFIG_FILE, FAILED_FILE, RESULTS_FILE

# ``[folds]`` arrays of results.npz, one value per row (integer ones are nullable ``Int64``),
# then its scalars, one per run (repeated on each of its folds).
FOLD_METRICS = results_file.FOLD_METRICS
RUN_METRICS = results_file.RUN_METRICS
_INTEGER = results_file.INTEGER
STATUSES = ("ok", "failed", "incomplete")
_LEADING = ("run", "fold", "model_label")
_TRAILING = FOLD_METRICS + RUN_METRICS + ("status", "reason", "path")
_REQUIRED = object()


# ----------------------------------------------------------------------------- files


def find_run_dirs(root: str | os.PathLike) -> list[pathlib.Path]:
  """Every directory under ``root`` (itself included) holding ``config.json``,
  ``results.npz`` or ``failed.json``, sorted as paths (so a sweep reads in a fixed order)."""
  names = {CONFIG_FILE, RESULTS_FILE, FAILED_FILE}
  return sorted({pathlib.Path(p).parent for p in files_lib.walk_files(root)
                 if os.path.basename(p) in names})


read_arrays = results_file.read   # the arrays ``names`` of ``<run_dir>/results.npz``


def _read_json(path: pathlib.Path) -> dict:
  with open(path) as f:
    payload = json.load(f)
  if not isinstance(payload, dict):
    raise ValueError(f"{path}: expected a JSON object")
  return payload


def _hashable(value: Any) -> Any:
  if isinstance(value, (list, tuple)):
    return tuple(_hashable(v) for v in value)
  if isinstance(value, dict):
    return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
  return value


def flatten(config: Mapping, prefix: str = "") -> dict[str, Any]:
  """``{"pairs": {"margin": 0.1}}`` -> ``{"pairs.margin": 0.1}`` (lists become tuples)."""
  out = {}
  for key, value in config.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping) and value:
      out.update(flatten(value, name + "."))
    else:
      out[name] = _hashable(value)
  return out


# ----------------------------------------------------------------------------- one run


def _failure_reason(path: pathlib.Path) -> tuple[str, dict]:
  """``("stage: error: reason", config recorded with it)`` of a ``failed.json``."""
  try:
    failure = _read_json(path)
    return (f"{failure['stage']}: {failure['error']}: {failure['reason']}",
            failure.get("config") or {})
  except (OSError, ValueError, KeyError) as e:
    return f"unreadable failed.json ({e})", {}


def _label(config: Mapping, run_dir: pathlib.Path, strict: bool) -> str:
  try:
    return labels.model_label(config)
  except ValueError as e:
    if strict:
      raise ValueError(f"{run_dir / CONFIG_FILE}: {e}; set model_label there") from e
    return ""


def _read_run(run_dir: pathlib.Path) -> tuple[dict, list[dict]]:
  """``(config, rows)`` of one run directory; rows carry the metrics and status only."""
  has = {n: (run_dir / n).is_file() for n in (CONFIG_FILE, RESULTS_FILE, FAILED_FILE)}
  config, reason = {}, ""
  if has[CONFIG_FILE]:
    try:
      config = _read_json(run_dir / CONFIG_FILE)
    except (OSError, ValueError) as e:
      if has[RESULTS_FILE]:
        raise ValueError(f"{run_dir / CONFIG_FILE}: unreadable ({e})") from e
      reason = f"unreadable config.json ({e})"
  if has[RESULTS_FILE] and has[CONFIG_FILE]:
    return config, _fold_rows(run_dir)
  if has[FAILED_FILE]:
    status = "failed"
    reason, recorded = _failure_reason(run_dir / FAILED_FILE)
    config = config or recorded
  else:
    status = "incomplete"
    reason = reason or (f"no {CONFIG_FILE}" if has[RESULTS_FILE] else
                        f"no {RESULTS_FILE} (not finished: still running, or stopped)")
  return config, [{"fold": pd.NA, "status": status, "reason": reason}]


def _fold_rows(run_dir: pathlib.Path) -> list[dict]:
  arrays = read_arrays(run_dir, FOLD_METRICS + RUN_METRICS)
  npz = run_dir / RESULTS_FILE
  if "test_accuracy" not in arrays:
    raise ValueError(f"{npz}: no test_accuracy array")
  acc = arrays["test_accuracy"]
  if acc.ndim != 1:
    raise ValueError(f"{npz}: test_accuracy has shape {acc.shape}, expected [folds]")
  n = acc.shape[0]
  for name, shape in [(k, (n,)) for k in FOLD_METRICS] + [(k, ()) for k in RUN_METRICS]:
    if name in arrays and arrays[name].shape != shape:
      logging.getLogger(__name__).warning(
          "%s: %s has shape %s, expected %s; left out of the table", npz, name,
          arrays[name].shape, list(shape) or "a scalar")
      del arrays[name]
  columns = {k: arrays[k].tolist() for k in FOLD_METRICS if k in arrays}
  scalars = {k: arrays[k].item() for k in RUN_METRICS if k in arrays}
  return [{"fold": f, **{k: v[f] for k, v in columns.items()}, **scalars,
           "status": "ok", "reason": ""} for f in range(n)]


# ----------------------------------------------------------------------------- the table


def load(path: str | os.PathLike, keep: Sequence[str] = ()) -> pd.DataFrame:
  """Reads a run or a sweep directory into one row per run x fold (module docstring).

  Args:
    path: a run directory or any directory tree of them.
    keep: dotted config fields to make columns even when they are equal in every run (a field
      no run has is a column of missing values).

  Returns:
    The table, runs in path order, folds in order; ``attrs["constant"]`` holds the config fields
    equal in every run (not columns unless in ``keep``), ``attrs["root"]`` the loaded path and
    ``attrs["no_config"]`` the runs without a readable config (the constants do not apply to them).

  Raises:
    ValueError: when ``path`` is not a directory, or naming the file when a finished run's
      ``config.json`` or ``results.npz`` cannot be read or lacks ``test_accuracy``.
  """
  root = pathlib.Path(path).expanduser()
  if not root.is_dir():
    raise ValueError(f"{root}: not a directory (expected a run directory or a sweep of them)")
  configs, rows = [], []
  for run_dir in find_run_dirs(root):
    config, run_rows = _read_run(run_dir)
    status = run_rows[0]["status"]
    fields = flatten({k: v for k, v in config.items() if k != "model_label"})
    configs.append(fields)
    common = {"run": os.path.relpath(run_dir, root), "path": str(run_dir),
              "model_label": _label(config, run_dir, strict=status == "ok")}
    rows += [{**common, **r, "_config": len(configs) - 1} for r in run_rows]
  names = sorted(set().union(*configs)) if configs else []
  varying, constant = [], {}
  known = [c for c in configs if c]  # A run without a readable config does not count.
  for name in names:
    values = {c.get(name, _REQUIRED) for c in known}
    if len(values) > 1 or name in keep:
      varying.append(name)
    else:
      constant[name] = values.pop()
  varying += sorted(set(keep) - set(varying))
  row_configs = [configs[row.pop("_config")] for row in rows]
  for row, config in zip(rows, row_configs):
    row.update({name: config.get(name, np.nan) for name in varying})
  frame = pd.DataFrame(rows, columns=list(_LEADING) + varying + list(_TRAILING))
  frame["fold"] = frame["fold"].astype("Int64")
  for name in FOLD_METRICS + RUN_METRICS:
    frame[name] = frame[name].astype("Int64" if name in _INTEGER else np.float64)
  frame.attrs["constant"] = constant
  frame.attrs["root"] = str(root)
  frame.attrs["no_config"] = sorted({row["run"] for row, config in zip(rows, row_configs)
                                     if not config})
  return frame


def config_columns(frame: pd.DataFrame) -> list[str]:
  """The config-field columns of a table from :func:`load` (the fields that vary, and ``keep``)."""
  fixed = set(_LEADING + _TRAILING)
  return [c for c in frame.columns if c not in fixed]


def field(frame: pd.DataFrame, name: str, default: Any = _REQUIRED) -> pd.Series:
  """Config field ``name`` (dotted) per row: its column, else its ``attrs["constant"]`` value.

  Args:
    frame: a table from :func:`load` (or rows of one).
    name: e.g. ``"features.modality"``.
    default: the value where no run has the field (missing values of a column stay missing).

  Raises:
    KeyError: when the field is in neither and no ``default`` is given.
  """
  if name in frame.columns:
    return frame[name]
  constant = frame.attrs.get("constant", {})
  if name in constant:
    value = constant[name]
  elif default is not _REQUIRED:
    value = default
  else:
    raise KeyError(f"no config field {name!r} in these runs (load with keep=[{name!r}])")
  return pd.Series([value] * len(frame), index=frame.index, dtype=object)


def _missing(value: Any) -> bool:
  return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def records(frame: pd.DataFrame, dataset: str | None = None) -> list[tables.RunRecord]:
  """One :class:`~lasca_jax.analysis.tables.RunRecord` per finished run (``status == "ok"``),
  in the table's order, optionally only runs with ``data.name == dataset``.

  Raises:
    ValueError: naming the run's ``config.json`` when it lacks ``features.modality``,
      ``features.window_seconds``, ``pairs.target`` or ``pairs.margin``.
  """
  ok = frame[frame["status"] == "ok"]
  required = ("features.modality", "features.window_seconds", "pairs.target", "pairs.margin")
  defaults = {"data.name": "", "model.fusion": "", "text.backbone": "", "text.lexicon": "",
              "model.hidden_from": "", "model.hidden_from_dim": 0, "train.standardize": False,
              "train.min_epochs": 0, "train.monitor": "accuracy", "train.select": "",
              "model.head": "mlp"}
  values = {name: field(ok, name, None) for name in required}
  for name, default in defaults.items():
    values[name] = field(ok, name, default)
  out = []
  for path, rows in ok.groupby("path", sort=False):
    i = rows.index[0]

    def get(name, i=i, path=path):
      value = values[name].loc[i]
      if _missing(value):
        if name in required:
          raise ValueError(f"{pathlib.Path(path) / CONFIG_FILE}: missing field {name}")
        return defaults[name]
      return value

    if dataset is not None and str(get("data.name")) != dataset:
      continue
    fusion = get("model.fusion")
    best_epoch = rows["best_epoch"]
    pairs = {k: rows[f"num_{k}_pairs"] for k in ("train", "val", "test")}
    out.append(tables.RunRecord(
        path=str(path),
        dataset=str(get("data.name")),
        modality=str(get("features.modality")),
        model_label=str(rows["model_label"].loc[i]),
        fusion=str(fusion),
        backbone=str(get("text.backbone")),
        lexicon=str(get("text.lexicon")),
        target=str(get("pairs.target")),
        window_seconds=float(get("features.window_seconds")),
        margin=float(get("pairs.margin")),
        accuracies=rows["test_accuracy"].to_numpy(np.float64),
        best_epoch=None if best_epoch.isna().any() else best_epoch.to_numpy(np.int64),
        num_pairs={k: v.to_numpy(np.int64) for k, v in pairs.items()
                   if not v.isna().any()} or None,
        control=tables.control_kind({"model": {
            "fusion": fusion, "hidden_from": get("model.hidden_from"),
            "hidden_from_dim": get("model.hidden_from_dim"), "head": get("model.head")},
            "train": {"select": get("train.select")}}),
        degenerate=(int(rows["degenerate"].fillna(0).sum()) if "degenerate" in rows else 0),
        learner=labels.learner_label({
            "train": {k: get(f"train.{k}") for k in ("standardize", "min_epochs", "monitor",
                                                     "select")}}),
    ))
  return out


def curves(frame: pd.DataFrame) -> pd.DataFrame:
  """Learning curves: one row per run x fold x epoch of the finished runs of ``frame``.

  Columns ``run``, ``path``, ``fold``, ``epoch`` (1-based), ``train_loss`` and ``val_accuracy``
  (``results.npz``'s ``[folds, max_epochs]`` arrays, NaN after early stopping); runs without
  them are left out. ``pivot(index="fold", columns="epoch", values=...)`` of one run gives the
  arrays back.
  """
  parts = []
  runs = frame.loc[frame["status"] == "ok", ["run", "path"]].drop_duplicates("path")
  for run, path in runs.itertuples(index=False, name=None):
    arrays = read_arrays(path, ("train_loss", "val_accuracy"))
    if len(arrays) < 2:
      continue
    loss, val = arrays["train_loss"], arrays["val_accuracy"]
    folds, epochs = np.meshgrid(np.arange(loss.shape[0]), np.arange(1, loss.shape[1] + 1),
                                indexing="ij")
    parts.append(pd.DataFrame({
        "run": run, "path": path, "fold": folds.ravel(), "epoch": epochs.ravel(),
        "train_loss": loss.astype(np.float64).ravel(),
        "val_accuracy": val.astype(np.float64).ravel()}))
  if not parts:
    return pd.DataFrame(columns=["run", "path", "fold", "epoch", "train_loss", "val_accuracy"])
  return pd.concat(parts, ignore_index=True)


def failures(frame: pd.DataFrame, dataset: str | None = None) -> list[tuple[str, str]]:
  """``(run, reason)`` of every run recorded as failed (``failed.json``, no results); with
  ``dataset``, only those whose recorded ``data.name`` is that dataset or unknown (a failure
  with no readable config is kept: nothing says it belongs elsewhere)."""
  failed = frame[frame["status"] == "failed"]
  if dataset is not None and len(failed):
    names = field(failed, "data.name", "").astype(object)
    unknown = failed["run"].isin(frame.attrs.get("no_config", []))
    failed = failed[unknown | names.isna() | names.isin(["", dataset])]
  return list(failed[["run", "reason"]].itertuples(index=False, name=None))
