"""Content-addressed `.npz` cache for the host-side stages.

Every stage result is stored as ``<cache_dir>/<stage>/<key>.npz`` where ``key`` hashes everything
the stage depends on: its parameters, the keys of its inputs, and the stage's version. A second
run with the same config therefore recomputes nothing, and a changed input recomputes only the
stages downstream of it. Files are written atomically (temporary file, then ``os.replace``), so a
killed run never leaves a half-written entry behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from typing import IO, Any, Callable, Iterator, Mapping

import numpy as np

def default_cache_dir() -> str:
  return os.path.expanduser(os.environ.get("LASCA_JAX_CACHE", "~/.cache/lasca_jax"))


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


def current_umask() -> int:
  """The process umask (read without changing it for good)."""
  mask = os.umask(0)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def _atomic_file(path: str, suffix: str = "") -> Iterator[IO[bytes]]:
  """A binary file that becomes ``path`` only when the ``with`` block completes.

  Readers see either the old file, nothing, or the whole new one; concurrent writers each use
  their own temporary name. The file gets the umask's permissions (mkstemp makes 0600, which a
  group-shared cache cannot read).
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
  try:
    with os.fdopen(fd, "wb") as f:
      yield f
    os.chmod(tmp, 0o666 & ~current_umask())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def save_npz_atomic(path: str, arrays: Mapping[str, np.ndarray], compress: bool = False) -> None:
  """Writes ``arrays`` to ``path`` so that readers see either nothing or the whole file."""
  with _atomic_file(path, ".npz") as f:
    (np.savez_compressed if compress else np.savez)(f, **arrays)


def write_bytes_atomic(path: str, payload: bytes) -> None:
  """Writes ``payload`` to ``path`` atomically (see :func:`save_npz_atomic`)."""
  with _atomic_file(path) as f:
    f.write(payload)


def write_json_atomic(path: str, obj: Any, **dump_kwargs) -> None:
  """Writes ``json.dumps(obj, **dump_kwargs)`` to ``path`` atomically."""
  write_bytes_atomic(path, json.dumps(obj, **dump_kwargs).encode())


def load_npz(path: str) -> dict[str, np.ndarray]:
  with np.load(path, allow_pickle=False) as data:
    return {k: data[k] for k in data.files}


class StageCache:
  """Looks up and stores stage results; counts hits and misses per stage."""

  def __init__(self, cache_dir: str | None = None):
    self.cache_dir = cache_dir or default_cache_dir()
    self.hits: dict[str, int] = {}
    self.misses: dict[str, int] = {}

  def path(self, stage: str, key: str) -> str:
    return os.path.join(self.cache_dir, stage, f"{key}.npz")

  def get_or_compute(self, stage: str, params: Mapping[str, Any],
                     compute: Callable[[], Mapping[str, np.ndarray]], version: int = 0
                     ) -> tuple[str, dict[str, np.ndarray]]:
    """Returns ``(key, arrays)`` for ``hash_key(stage, params, version)``, computing and storing
    them on a miss (:meth:`get_or_compute_key`)."""
    key = hash_key(stage, params, version)
    return key, self.get_or_compute_key(stage, key, compute)

  def get_or_compute_key(self, stage: str, key: str,
                         compute: Callable[[], Mapping[str, np.ndarray]],
                         check: Callable[[dict[str, np.ndarray]], Any] | None = None
                         ) -> dict[str, np.ndarray]:
    """The arrays stored under ``key``, computing and storing them on a miss.

    A corrupt entry (for example truncated by a full disk), or one ``check`` raises on (another
    layout), is recomputed, with a warning.
    """
    path = self.path(stage, key)
    if os.path.exists(path):
      try:
        arrays = load_npz(path)
        if check is not None:
          check(arrays)
        self.hits[stage] = self.hits.get(stage, 0) + 1
        return arrays
      except Exception as e:  # pylint: disable=broad-except
        logging.warning("cache entry %s is unreadable (%s); recomputing", path, e)
    arrays = {k: np.asarray(v) for k, v in compute().items()}
    save_npz_atomic(path, arrays)
    self.misses[stage] = self.misses.get(stage, 0) + 1
    return arrays
