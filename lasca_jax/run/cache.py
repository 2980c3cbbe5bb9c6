"""Content-addressed `.npz` cache for the host-side stages.

Every stage result is stored as ``<cache_dir>/<stage>/<key>.npz`` where ``key`` hashes everything
the stage depends on: its parameters, the keys of its inputs, and the stage's version. A second
run with the same config therefore recomputes nothing, and a changed input recomputes only the
stages downstream of it. Files are written atomically (temporary file, then ``os.replace``), so a
killed run never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any, Callable, Mapping

import numpy as np

from lasca_jax.data import files as files_lib


def _jsonable(obj: Any) -> Any:
  if isinstance(obj, Mapping):
    return {str(k): _jsonable(v) for k, v in sorted(obj.items())}
  if isinstance(obj, (list, tuple)):
    return [_jsonable(v) for v in obj]
  if isinstance(obj, np.ndarray):
    return {"__array__": hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest(),
            "dtype": str(obj.dtype), "shape": list(obj.shape)}
  if isinstance(obj, (np.integer,)):
    return int(obj)
  if isinstance(obj, (np.floating,)):
    return float(obj)
  return obj


def hash_key(stage: str, params: Mapping[str, Any], version: int = 0) -> str:
  """Returns a stable hex key for ``stage`` at ``version`` with ``params`` (JSON-able, arrays
  allowed). The pipeline's stages declare their versions (:mod:`lasca_jax.run.stages`)."""
  payload = {"stage": stage, "version": int(version), "params": _jsonable(params)}
  text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()[:24]


class StageCache:
  """Looks up and stores stage results; counts hits and misses per stage."""

  def __init__(self, cache_dir: str | None = None):
    self.cache_dir = cache_dir or files_lib.default_cache_dir()
    self.hits: dict[str, int] = {}
    self.misses: dict[str, int] = {}

  def path(self, stage: str, key: str) -> str:
    return os.path.join(self.cache_dir, stage, f"{key}.npz")

  def get_or_compute(self, stage: str, key: str, compute: Callable[[], Mapping[str, np.ndarray]],
                     check: Callable[[dict[str, np.ndarray]], Any] | None = None
                     ) -> dict[str, np.ndarray]:
    """The arrays stored under ``key`` (:func:`hash_key`; the stages of
    :mod:`lasca_jax.run.stages` compute it from their inputs), computing and storing them on a
    miss.

    A corrupt entry (for example truncated by a full disk), or one ``check`` raises on (another
    layout), is recomputed, with a warning.
    """
    path = self.path(stage, key)
    if os.path.exists(path):
      try:
        arrays = files_lib.load_npz(path)
        if check is not None:
          check(arrays)
        self.hits[stage] = self.hits.get(stage, 0) + 1
        return arrays
      except Exception as e:  # pylint: disable=broad-except
        logging.warning("cache entry %s is unreadable (%s); recomputing", path, e)
    arrays = {k: np.asarray(v) for k, v in compute().items()}
    files_lib.save_npz_atomic(path, arrays)
    self.misses[stage] = self.misses.get(stage, 0) + 1
    return arrays
