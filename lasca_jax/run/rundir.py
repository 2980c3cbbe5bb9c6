"""The run directory: the one writer of everything a run leaves on disk.

``experiments/main.py`` (:func:`lasca_jax.run.pipeline.run`), every configuration of a sweep
(:mod:`lasca_jax.run.sweep`), the efficiency experiment
(:func:`lasca_jax.inference.stream.trained_predictor`) and prediction on a new recording
(:func:`lasca_jax.inference.apply.run_predict`) all write through :class:`RunDir`:

* :meth:`RunDir.start` clears the outputs an earlier run left (so a stale file never sits beside
  a new config), writes ``config.json`` (the full config, loadable with ``configs/from_json.py``,
  plus resolved fields such as ``model_label``) and logs ``start`` to ``log.jsonl``;
* :meth:`RunDir.write_results` (``results.npz``), :meth:`RunDir.write_bundle` (``bundle/``,
  :mod:`lasca_jax.model.bundle`), :meth:`RunDir.fail` (``failed.json``, read by a resumed sweep),
  :meth:`RunDir.write_json` / :meth:`RunDir.write_bytes` (other outputs) write to a temporary
  name and rename, so a killed run never leaves a half-written file.

``RunDir(None)`` writes nothing and only logs (a notebook, or a benchmark that keeps no files).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from typing import Any, Mapping

import numpy as np

from configs import from_json
from lasca_jax.data import files as files_lib
from lasca_jax.model import bundle as bundle_lib
from lasca_jax.run import settings

CONFIG_FILE = "config.json"
LOG_FILE = "log.jsonl"
RESULTS_FILE = "results.npz"
FAILED_FILE = "failed.json"
BUNDLE_FILE = os.path.join(bundle_lib.DIRNAME, bundle_lib.JSON_FILE)
# What a run writes after its config: cleared when a run starts. The bundle counts as written
# only once bundle.json (written last) exists.
RUN_OUTPUTS = (LOG_FILE, RESULTS_FILE, FAILED_FILE, BUNDLE_FILE)
PREDICT_OUTPUTS = ("predictions.csv", "trajectory.png", "summary.json")


class RunLog:
  """Appends one JSON object per line to ``<workdir>/log.jsonl`` and mirrors it to logging."""

  def __init__(self, workdir: str | None):
    self.path = os.path.join(workdir, LOG_FILE) if workdir else None
    self.start = time.time()
    self.last_event = "start"   # The stage a failure or an interruption happened in.

  def __call__(self, event: str, **fields: Any) -> None:
    record = {"event": event, "time_s": round(time.time() - self.start, 3), **fields}
    self.last_event = event
    logging.info("%s %s", event, json.dumps(fields, default=str)[:400])
    if self.path:
      with open(self.path, "a") as f:
        f.write(json.dumps(record, default=_json_default) + "\n")


def _json_default(obj):
  if isinstance(obj, np.ndarray):
    return obj.tolist()
  if isinstance(obj, (np.integer, np.floating, np.bool_)):
    return obj.item()
  return str(obj)


def config_json(config, resolved: Mapping[str, Any] | None = None) -> dict:
  """What ``config.json`` holds: the config as JSON plus ``resolved`` fields."""
  payload = json.loads(config.to_json_best_effort())
  payload.update(resolved or {})
  return payload


def describes(saved: Any, config) -> bool:
  """Whether a stored ``config.json`` is ``config``'s, also when it predates newer default
  fields (a sweep resumed after an upgrade keeps its finished runs): the file is read as
  ``configs/from_json.py`` reads it, onto the defaults, and compared with ``config``.

  This relies on a rule for new fields: a field's value in ``configs/default.py`` keeps the
  earlier behaviour. A new field without a default there (e.g. a dataset's own ``data.*``
  field) makes older runs count as different, which is safe: they are trained again.
  """
  if not isinstance(saved, dict):
    return False
  return config_json(from_json.from_values(saved)) == config_json(config)


class RunDir:
  """One run directory (``path``; None: nothing is written, events only go to logging).

  Attributes:
    path: the folder.
    outputs: the files :meth:`start` clears (relative to ``path``).
    log: the run's :class:`RunLog` (``log.jsonl`` when it is among ``outputs``).
  """

  def __init__(self, path: str | None, outputs: tuple[str, ...] = RUN_OUTPUTS):
    self.path = path
    self.outputs = outputs
    self.log = RunLog(path if LOG_FILE in outputs else None)
    self.lock = None   # The folder's lock while this process writes it (``start(claim=...)``).

  @classmethod
  def start(cls, path: str | None, config=None, resolved: Mapping[str, Any] | None = None,
            outputs: tuple[str, ...] = RUN_OUTPUTS, claim: str = "", **fields: Any) -> RunDir:
    """Creates (or reuses) ``path``, clears its stale ``outputs``, writes ``config.json`` when
    ``config`` is given, and logs ``start`` with ``workdir``, the ``resolved`` fields and
    ``fields``. ``claim`` (the writer's name) first takes the folder's lock for this process
    (:func:`lasca_jax.data.files.hold_lock`): a second writer of the same folder stops with one
    line instead of overwriting the first one's files."""
    run = cls(path, outputs)
    if path:
      os.makedirs(path, exist_ok=True)
      if claim:
        run.lock = files_lib.hold_lock(path, claim)
      for name in outputs:
        if os.path.exists(run.file(name)):
          os.remove(run.file(name))
      if BUNDLE_FILE in outputs and os.path.isdir(run.file(bundle_lib.DIRNAME)):
        shutil.rmtree(run.file(bundle_lib.DIRNAME))  # No stale weights beside a new config.
    if config is not None:
      run.write_json(CONFIG_FILE, config_json(config, resolved), indent=2, sort_keys=True)
      run.log("start", workdir=path, **fields, **dict(resolved or {}))
    return run

  def release(self) -> None:
    """Releases the folder's lock (``start(claim=...)``), so that this process or another can
    write the folder again; nothing when it holds none."""
    if self.lock is not None:
      self.lock.close()
      self.lock = None

  def file(self, name: str) -> str:
    """The path of ``name`` in the run directory."""
    if not self.path:
      raise ValueError("this run keeps no files (RunDir(None))")
    return os.path.join(self.path, name)

  def write_bytes(self, name: str, payload: bytes) -> None:
    """``payload`` as the file ``name`` (written to a temporary name, then renamed)."""
    if self.path:
      files_lib.write_bytes_atomic(self.file(name), payload)

  def write_json(self, name: str, obj: Any, **dump_kwargs) -> None:
    """``json.dumps(obj, **dump_kwargs)`` as the file ``name``, atomically."""
    if self.path:
      files_lib.write_json_atomic(self.file(name), obj, **dump_kwargs)

  def write_results(self, arrays: Mapping[str, np.ndarray]) -> None:
    """``results.npz`` (keys documented in the README)."""
    if self.path:
      files_lib.save_npz_atomic(self.file(RESULTS_FILE), arrays)

  def write_bundle(self, config, inputs, params: Any) -> None:
    """``bundle/`` (:func:`lasca_jax.model.bundle.write_bundle`) and a ``bundle`` event."""
    if self.path:
      fields = settings.bundle_fields(config, inputs)
      self.log("bundle", path=bundle_lib.write_bundle(self.path, inputs, params, fields))

  def fail(self, config, stage: str, error: BaseException, announce: bool = True) -> dict:
    """Records that ``stage`` failed: ``failed.json`` (stage, error type, reason, config), a
    ``failed`` event and (``announce``) an error message; returns the record."""
    failure = {"stage": stage, "error": type(error).__name__, "reason": str(error),
               "config": config_json(config)}
    self.write_json(FAILED_FILE, failure, indent=1)
    self.log("failed", stage=stage, error=type(error).__name__, reason=str(error))
    if announce:
      logging.getLogger("lasca_jax.run").error("%s: %s failed: %s: %s", self.path, stage,
                                               type(error).__name__, error)
    return failure

  def holds(self, config) -> bool:
    """True when the directory holds results and a model bundle of exactly ``config``."""
    if not self.path or not all(os.path.exists(self.file(n))
                                for n in (CONFIG_FILE, RESULTS_FILE, BUNDLE_FILE)):
      return False
    try:
      with open(self.file(CONFIG_FILE)) as f:
        saved = json.load(f)
      files_lib.load_npz(self.file(RESULTS_FILE))
    except Exception:  # pylint: disable=broad-except
      return False
    return describes(saved, config)

  def recorded_failure(self, config) -> dict | None:
    """The failure :meth:`fail` recorded for exactly ``config``, else None."""
    try:
      with open(self.file(FAILED_FILE)) as f:
        failure = json.load(f)
    except (OSError, ValueError):
      return None
    saved = failure.get("config") if isinstance(failure, dict) else None
    return failure if describes(saved, config) else None
