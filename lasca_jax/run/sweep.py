"""Grids of configurations (the paper's Tables 3-7), trained in shape-sharing groups, resumable.

A sweep expands ``config.sweep`` into one configuration per cell of

  modality x window x margin x target x model,

where the models are ``Features``, each text backbone alone, each backbone fused with the
features, and each baseline encoder (for its own modality); lexicon and salience ablations
(Table 7 and Sec. 6) add fused rows for the modalities in ``sweep.ablation_modalities``.

Every configuration gets its own run directory (``config.json``, ``log.jsonl``, ``results.npz``
exactly as ``experiments/main.py`` writes them). A configuration whose directory already holds
``results.npz`` for the same config is not trained again, so a killed sweep resumes. Pending
configurations are prepared (cached stages) and sorted by the shape of their inputs; up to
``sweep.group_size`` configurations of equal shape are stacked on a leading axis and trained,
with all their folds, in one compiled call (:func:`lasca_jax.model.train.train_configs`). Training is
invariant to padding, so each run's results equal those of its standalone run.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from typing import Any, Iterator, NamedTuple

import jax
import ml_collections
import numpy as np

from lasca_jax.data import datasets, files as files_lib
from lasca_jax.method import representation
from lasca_jax.model import placement, programs, train
from lasca_jax.run import (cache as cache_lib, fields, labels,
                           pipeline, rundir, settings as settings_lib, validate)


def _baselines(sweep) -> list[tuple[str, str, str]]:
  """``sweep.baselines`` entries ``"Name:modality:dir"`` -> ``(name, modality, dir)``."""
  out = []
  for entry in sweep.baselines:
    parts = entry.split(":", 2)
    if len(parts) != 3 or parts[1] not in ("visual", "audio", "multimodal"):
      raise ValueError(f"sweep.baselines entry {entry!r}: expected 'Name:modality:dir' with "
                       "modality visual, audio or multimodal")
    out.append(tuple(parts))
  return out


def _ablation_lexicon(lex: str, base_lexicon: str) -> str:
  """``"shuffled"`` permutes the sweep's own lexicon: a file or ``feature_name`` is named."""
  if lex == "shuffled" and base_lexicon not in ("llm", "dataset", "shuffled"):
    return f"shuffled:{base_lexicon}"
  return lex


def _model_variants(sweep, modality: str, base_lexicon: str = "llm") -> Iterator[dict]:
  """The model rows of one modality: dicts of dotted config overrides."""
  if "features" in sweep.models:
    yield {"model.fusion": "features"}
  for backbone in sweep.backbones:
    for fusion in ("text", "fused"):
      if fusion in sweep.models:
        yield {"model.fusion": fusion, "text.backbone": backbone}
  if modality in sweep.ablation_modalities:
    for backbone in sweep.backbones:
      for lex in sweep.ablation_lexicons:
        yield {"model.fusion": "fused", "text.backbone": backbone,
               "text.lexicon": _ablation_lexicon(lex, base_lexicon)}
      for rule in sweep.ablation_saliences:
        label = f"{labels.fused_label(backbone)} {rule}"
        yield {"model.fusion": "fused", "text.backbone": backbone, "text.salience": rule,
               "model_label": label}
    yield from _control_variants(sweep)
  for name, base_modality, directory in _baselines(sweep):
    if base_modality == modality:
      yield {"model.fusion": "baseline", "model.baseline_name": name,
             "model.baseline_dir": directory}


CAPACITY = "capacity"   # features zero-padded to the fused model's size (model.hidden_from)
LOGISTIC = "logistic"   # logistic regression on the features' pair differences (model.head)
TUNED = "tuned"         # the features with train.select = sweep.tune_select


def controls() -> tuple[str, ...]:
  """``sweep.controls`` choices: the registered control fusions, capacity matching and the two
  baselines without language (logistic regression, tuned features)."""
  return representation.controls() + (CAPACITY, LOGISTIC, TUNED)


def _control_variants(sweep) -> Iterator[dict]:
  """Control rows (:mod:`lasca_jax.method.controls`): a control without a backbone (the mask)
  once, the others per backbone."""
  chosen = tuple(sweep.get("controls", ()))
  unknown = sorted(set(chosen) - set(controls()))
  if unknown:
    raise ValueError(f"sweep.controls: unknown {unknown}; choose from {controls()}")
  fusions = [representation.get(c) for c in representation.controls() if c in chosen]
  for fusion in fusions:
    if not fusion.uses_backbone:
      yield {"model.fusion": fusion.name}
  if LOGISTIC in chosen:
    yield {"model.fusion": "features", "model.head": "logistic"}
  if TUNED in chosen:
    yield {"model.fusion": "features", "train.select": str(sweep.get("tune_select", ""))}
  for backbone in sweep.backbones:
    for fusion in fusions:
      if fusion.uses_backbone:
        yield {"model.fusion": fusion.name, "text.backbone": backbone}
    if CAPACITY in chosen:
      yield {"model.fusion": "features", "text.backbone": backbone,
             "model.hidden_from": "fused"}


def expand(config: ml_collections.ConfigDict) -> list[tuple[str, ml_collections.ConfigDict]]:
  """``(relative run directory, config)`` for every cell of the grid, in a fixed order."""
  sweep = config.sweep
  runs = []
  for modality in sweep.modalities:
    for window in sweep.windows:
      for margin in sweep.margins:
        for target in sweep.targets:
          for overrides in _model_variants(sweep, modality, config.text.lexicon):
            run = copy.deepcopy(config)
            with run.unlocked():
              run.features.modality = modality
              run.features.window_seconds = float(window)
              run.pairs.margin = float(margin)
              run.pairs.target = target
              for key, value in overrides.items():
                fields.set_field(run, key, value)
              label = labels.model_label(run)
              run.model_label = label
              run.name = f"{config.name}/{modality}/{window:g}s/{margin:g}/{target}/{label}"
            tag = (f"{label}_{run.text.lexicon}" if representation.get(run.model.fusion).encoded
                   else label)
            learner = labels.learner_label(run)
            tag += f"_{learner}" if learner else ""   # a tuned run beside the plain one
            runs.append((os.path.join(modality, f"w{window:g}s_m{margin:g}", target,
                                      files_lib.safe_name(tag)), run))
  names = [r for r, _ in runs]
  if len(set(names)) != len(names):
    raise ValueError("sweep produces two runs with the same directory; give baselines and "
                     "backbones distinct names")
  return runs


def group_size(config) -> int:
  """``sweep.group_size``, with 0 meaning 1 on CPU and 8 on an accelerator.

  Stacked configurations run until the slowest of them stops early, so on a CPU, where the
  trainer is compute bound, one call per configuration is faster
  (``experiments/benchmark_grouping.py``); accelerators gain from the larger batch.
  """
  size = int(config.sweep.group_size)
  if size <= 0:
    size = 1 if jax.default_backend() == "cpu" else 8
  return size


def _pad_to(a: np.ndarray, n: int, axis: int) -> np.ndarray:
  width = [(0, 0)] * a.ndim
  width[axis] = (0, n - a.shape[axis])
  return np.pad(a, width)


def stack_inputs(group: list[pipeline.RunInputs]) -> tuple[np.ndarray, train.PairData,
                                                           train.FoldData]:
  """Stacks equally shaped runs on a leading axis, padding pairs and fold indices."""
  p_max = max(g.pairs.label.shape[0] for g in group)
  pairs = train.PairData(*[np.stack([_pad_to(np.asarray(getattr(g.pairs, f)), p_max, 0)
                                     for g in group]) for f in train.PairData._fields])
  stacked = []
  for f in train.FoldData._fields:
    arrays = [np.asarray(getattr(g.folds, f)) for g in group]
    if arrays[0].ndim == 2:
      n = max(a.shape[1] for a in arrays)
      arrays = [_pad_to(a, n, 1) for a in arrays]
    stacked.append(np.stack(arrays))
  z = np.stack([g.z for g in group])
  return z, pairs, train.FoldData(*stacked)


def _shape_signature(config) -> tuple:
  """Config fields that decide the input shape (text-only inputs ignore the modality)."""
  fusion = representation.get(config.model.fusion)
  return (float(config.features.window_seconds), fusion.name,
          "" if fusion.parts == ("text",) else config.features.modality,
          config.text.backbone if fusion.uses_backbone else "",
          config.model.baseline_dir if fusion.needs_baseline else "",
          config.model.get("hidden_from", ""), int(config.model.get("hidden_from_dim", 0)))


def _group_key(config, inputs: pipeline.RunInputs):
  return (inputs.z.shape, inputs.train_settings, int(config.seed))


class Member(NamedTuple):
  """A prepared configuration waiting in a group (equal :func:`_group_key`) to be trained."""
  key: tuple
  config: Any
  inputs: pipeline.RunInputs
  run: rundir.RunDir


def _train_and_write(group: list[Member], log: logging.Logger) -> float:
  """Trains a group of prepared configurations in one call and writes each run."""
  config0, inputs0 = group[0].config, group[0].inputs
  settings = inputs0.train_settings
  z, pairs, folds = stack_inputs([m.inputs for m in group])
  layout = settings_lib.layout(config0)
  plan = placement.plan(len(group) * inputs0.num_folds, layout)
  t0, before = time.time(), dict(programs.counts)
  out = train.train_configs(settings, [int(m.config.seed) for m in group], z, pairs, folds,
                            layout)
  seconds = time.time() - t0
  stored = programs.since(before)
  log.info("trained %d configurations x %d folds (d=%d) in one call on %d %s device(s): %.1f s",
           len(group), inputs0.num_folds, inputs0.input_dim, plan.devices, plan.platform,
           seconds)
  for c, m in enumerate(group):
    one = jax.tree.map(lambda a: np.asarray(a)[c], out)
    one = one._replace(test_prob=one.test_prob[:, :m.inputs.folds.test_idx.shape[1]])
    pipeline.finish(m.run, m.config, m.inputs, one, seconds, group_size=len(group),
                    devices=plan.devices, platform=plan.platform, lanes=plan.lanes,
                    stored_program=stored)
  return seconds


def _train_group(group: list[Member], log: logging.Logger, failures: dict) -> float:
  """Trains ``group``; when the call fails, each member alone, recording the ones that fail."""
  try:
    return _train_and_write(group, log)
  except Exception as e:  # pylint: disable=broad-except
    if len(group) == 1:
      failures[group[0].run.path] = group[0].run.fail(group[0].config, "train", e)
      return 0.0
  return sum(_train_group([member], log, failures) for member in group)


def run_sweep(config, workdir: str, progress: bool = True, retry_failed: bool = False) -> dict:
  """Runs every pending configuration of ``config.sweep``; returns a summary dict.

  A configuration that fails (no pairs after its margin, a fold without test pairs, a missing
  file, ...) is recorded in ``<run dir>/failed.json`` with its reason and the sweep goes on; a
  later call skips it unless ``retry_failed``. The summary lists every failed configuration
  (``failures``: run directory -> reason), including those recorded by earlier calls.
  """
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
  log = logging.getLogger("lasca_jax.run.sweep")
  runs = expand(config)
  pending, failures = [], {}
  for rel, cfg in runs:
    run_dir = os.path.join(workdir, rel)
    if rundir.RunDir(run_dir).holds(cfg):
      continue
    earlier = None if retry_failed else rundir.RunDir(run_dir).recorded_failure(cfg)
    if earlier is not None:
      failures[run_dir] = earlier
      continue
    pending.append((run_dir, cfg))
  log.info("sweep: %d configurations, %d already done, %d failed before (not retried), "
           "%d to run", len(runs), len(runs) - len(pending) - len(failures), len(failures),
           len(pending))
  cache = cache_lib.StageCache(config.cache_dir or None)
  # Runs whose inputs will share a shape are adjacent, so at most one group is in memory.
  pending.sort(key=lambda p: (_shape_signature(p[1]), p[0]))
  size = group_size(config)
  compilation_cache = placement.enable_compilation_cache(config.get("compilation_cache", ""))
  local = placement.local_devices(settings_lib.layout(config).devices)
  log.info("sweep: training on %d local %s device(s)", len(local), local[0].platform)
  group, groups, train_seconds = [], 0, 0.0
  for run_dir, cfg in tqdm(pending, desc="sweep", unit="run", disable=not progress):
    run = pipeline.start(run_dir, cfg, cache, sweep=workdir, compilation_cache=compilation_cache)
    try:
      inputs = pipeline.prepare(cfg, cache, run.log)
    except Exception as e:  # pylint: disable=broad-except
      failures[run_dir] = run.fail(cfg, "prepare", e)
      continue
    key = _group_key(cfg, inputs)
    if group and (key != group[0].key or len(group) == size):
      train_seconds += _train_group(group, log, failures)
      groups += 1
      group = []
    group.append(Member(key, cfg, inputs, run))
  if group:
    train_seconds += _train_group(group, log, failures)
    groups += 1
  failed = {os.path.relpath(d, workdir): f"{f['stage']}: {f['error']}: {f['reason']}"
            for d, f in sorted(failures.items())}
  newly_failed = sum(d in failures for d, _ in pending)
  failed_before = len(failures) - newly_failed
  summary = {"configurations": len(runs), "trained": len(pending) - newly_failed,
             "skipped": len(runs) - len(pending) - failed_before, "failed": len(failed),
             "failures": failed, "groups": groups,
             "train_seconds": round(train_seconds, 2), "devices": len(local),
             "platform": local[0].platform, "cache_hits": cache.hits,
             "cache_misses": cache.misses}
  files_lib.write_json_atomic(os.path.join(workdir, "sweep.json"),
                              {"summary": summary, "runs": [rel for rel, _ in runs]}, indent=2)
  return summary


def with_simulated_baselines(config, workdir: str):
  """The grid a sweep runs: a copy of ``config`` (the caller's is left as it is) whose
  ``sweep.baselines`` include the dataset's stand-in encoders, written to
  ``<workdir>/simulated_encoders``, when ``sweep.simulated_baselines`` is set (a dataset module
  that simulates them declares ``write_simulated_encoders``). Idempotent.

  Raises:
    ValueError: the dataset simulates no encoders.
  """
  config = copy.deepcopy(config)
  if config.sweep.simulated_baselines:
    module = datasets.get_module(config.data.name)
    if not hasattr(module, "write_simulated_encoders"):
      raise ValueError(f"sweep.simulated_baselines: dataset {config.data.name!r} simulates no "
                       "baseline encoders (the synthetic dataset does); set it to False")
    entries = module.write_simulated_encoders(config.data,
                                              os.path.join(workdir, "simulated_encoders"))
    with config.unlocked():
      config.sweep.baselines = tuple(config.sweep.baselines) + tuple(
          e for e in entries if e not in config.sweep.baselines)
  return config


def run(config, workdir: str, retry_failed: bool = False) -> dict:
  """A whole sweep (``experiments/sweep.py``; tests and notebooks call this): checks the config,
  adds the simulated baselines, trains every configuration under ``<workdir>/runs``
  (:func:`run_sweep`) and prints a summary; ``summary["config"]`` is the grid it ran.

  Failed configurations do not stop the others: each is recorded with its reason in its run
  directory (``failed.json``), listed in ``summary["failures"]``, and skipped by later calls
  unless ``retry_failed``.
  """
  validate.check(config, sweep=True)
  config = with_simulated_baselines(config, workdir)
  summary = run_sweep(config, os.path.join(workdir, "runs"), retry_failed=retry_failed)
  print(f"sweep {config.name}: {summary['configurations']} configurations, "
        f"{summary['trained']} trained, {summary['skipped']} already done, "
        f"{summary['failed']} failed, {summary['groups']} compiled calls, "
        f"{summary['train_seconds']} s training on {summary['devices']} {summary['platform']} "
        f"device(s)")
  for rel, reason in summary["failures"].items():
    print(f"  FAILED {rel}: {reason}")
  if summary["failures"]:
    print("  (recorded in each run's failed.json; a rerun skips them unless --retry_failed)")
  summary["config"] = config
  return summary
