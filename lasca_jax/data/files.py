"""Files on disk, done one way everywhere: atomic writes, folder walks, table delimiters, names.

* Atomic writes: a file becomes visible under its name only once it is complete (a temporary
  file in the same folder, then ``os.replace``), concurrent writers each use their own temporary
  name, and the file gets the umask's permissions (``mkstemp`` makes 0600, which a group-shared
  cache could not read). Caches, run directories, bundles and feature files all use them.
* :func:`walk_files`: every file below a folder, in sorted order, skipping hidden files and
  excluded folders (a dataset root that also holds its features folder).
* :func:`read_csv` reads a delimited table by column; :func:`sniff_delimiter` tells ``;``, tab
  or ``,`` from its header line.
* :func:`safe_name`: a file or folder name from a label (``"MPNet(F) topk"`` -> ``MPNet_F_topk``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import tempfile
from typing import IO, Any, Iterable, Iterator, Mapping

import numpy as np


def default_cache_dir() -> str:
  """Where caches live unless a config says otherwise: ``$LASCA_JAX_CACHE`` or
  ``~/.cache/lasca_jax``."""
  return os.path.expanduser(os.environ.get("LASCA_JAX_CACHE", "~/.cache/lasca_jax"))


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Every array of an ``.npz`` file, read into memory (no pickles)."""
  with np.load(path, allow_pickle=False) as data:
    return {k: data[k] for k in data.files}


def current_umask() -> int:
  """The process umask (read without changing it for good)."""
  mask = os.umask(0)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def atomic_file(path: str, suffix: str = "") -> Iterator[IO[bytes]]:
  """A binary file that becomes ``path`` only when the ``with`` block completes.

  Readers see either the old file, nothing, or the whole new one.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
  try:
    with os.fdopen(fd, "wb") as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~current_umask())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


class Busy(RuntimeError):
  """Another process holds the folder's lock (:func:`hold_lock`)."""


def hold_lock(folder: str, what: str) -> IO[str]:
  """An exclusive lock on ``folder`` (``<folder>/.lock``) held until the returned file is closed
  or the process ends; :class:`Busy` (one line naming the folder and the holder) when another
  process holds it. ``what`` names the writer in that message (``"experiments/main.py"``)."""
  import fcntl  # pylint: disable=import-outside-toplevel
  os.makedirs(folder, exist_ok=True)
  handle = open(os.path.join(folder, ".lock"), "a+")  # pylint: disable=consider-using-with
  try:
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    handle.seek(0)
    holder = handle.read().strip() or "another process"
    handle.close()
    raise Busy(f"{folder} is being written by {holder}; wait for it to finish or choose another "
               "output folder") from None
  handle.seek(0)
  handle.truncate()
  handle.write(f"{what} (pid {os.getpid()})\n")
  handle.flush()
  return handle


def save_npz_atomic(path: str | os.PathLike, arrays: Mapping[str, np.ndarray],
                    compress: bool = False) -> None:
  """Writes ``arrays`` to ``path`` so that readers see either nothing or the whole file."""
  with atomic_file(os.fspath(path), ".npz") as f:
    (np.savez_compressed if compress else np.savez)(f, **arrays)


def write_bytes_atomic(path: str | os.PathLike, payload: bytes) -> None:
  """Writes ``payload`` to ``path`` atomically."""
  with atomic_file(os.fspath(path)) as f:
    f.write(payload)


def write_json_atomic(path: str | os.PathLike, obj: Any, **dump_kwargs) -> None:
  """Writes ``json.dumps(obj, **dump_kwargs)`` to ``path`` atomically."""
  write_bytes_atomic(path, json.dumps(obj, **dump_kwargs).encode())


def walk_files(root: str | os.PathLike, suffixes: Iterable[str] = (),
               exclude: Iterable[str | os.PathLike] = ()) -> Iterator[str]:
  """Every file below ``root`` in sorted walk order.

  Args:
    root: the folder (``~`` expanded).
    suffixes: keep only names ending in one of these (case-insensitive); empty keeps all.
    exclude: folders not entered (compared as absolute paths; empty entries are ignored).

  Hidden files (``.name``) are left out.
  """
  suffixes = tuple(s.lower() for s in suffixes)
  skip = {os.path.abspath(os.path.expanduser(os.fspath(e))) for e in exclude if e}
  for dirpath, dirnames, filenames in os.walk(os.path.expanduser(os.fspath(root))):
    dirnames[:] = sorted(d for d in dirnames if os.path.abspath(os.path.join(dirpath, d))
                         not in skip)
    for name in sorted(filenames):
      if name.startswith(".") or (suffixes and not name.lower().endswith(suffixes)):
        continue
      yield os.path.join(dirpath, name)


def sniff_delimiter(header: str) -> str:
  """The delimiter of a table whose first line is ``header``: the most frequent of ``;``, tab
  and ``,`` (in that order of preference on a tie)."""
  return max((";", "\t", ","), key=header.count)


def read_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """``{column: values}`` of a delimited table with a header row (delimiter sniffed): numeric
  columns as ``float64 [T]`` (empty cells NaN), other columns as strings."""
  with open(path, newline="", encoding="utf-8-sig") as f:
    first = f.readline()
    f.seek(0)
    rows = list(csv.reader(f, delimiter=sniff_delimiter(first)))
  rows = [r for r in rows if any(c.strip() for c in r)]
  if len(rows) < 2:
    raise ValueError(f"{path}: expected a header row and at least one data row")
  header = [h.strip() for h in rows[0]]
  if len(set(header)) != len(header):
    raise ValueError(f"{path}: duplicate column names in the header")
  for i, r in enumerate(rows[1:], start=2):
    if len(r) != len(header):
      raise ValueError(f"{path}: line {i}: {len(r)} cells, header has {len(header)}")
  columns = {}
  for j, name in enumerate(header):
    cells = [r[j].strip() for r in rows[1:]]
    try:
      columns[name] = np.array([float(c) if c else np.nan for c in cells], np.float64)
    except ValueError:
      columns[name] = np.array(cells, dtype=str)
  return columns


def safe_name(label: str) -> str:
  """``label`` with every run of characters other than letters, digits, ``.+-`` as one ``_``."""
  return re.sub(r"[^A-Za-z0-9.+-]+", "_", label).strip("_")
