"""Stored training programs: a repeated run skips tracing and lowering as well as compiling.

JAX's persistent compilation cache keys a compiled program by its lowered (StableHLO) form, so
every process still traces and lowers the trainer before the cache can answer: about 0.4-0.5 s of
a repeated CPU run whose training takes 2-3 s. This module keeps, next to that cache, each
training program as a ``jax.export`` artefact (portable, versioned StableHLO, not machine code)
keyed by what produced it:

* the code: SHA-256 of every ``.py`` file of the ``lasca_jax`` package as this process imported
  it, and the versions of Python, jax, jaxlib, flax, optax and numpy;
* the program's identity (static settings, input size, lanes), the devices (platform, kinds,
  ids), the shapes, dtypes and structure of the arguments, the compiler options and JAX's
  configuration values.

A later process with the same key deserialises the artefact (milliseconds) and calls it through
a thin ``jit``; compiling that call goes to JAX's persistent cache, which keys it by its HLO,
compiler options and backend as for any program, so the store adds no new way for a compiled
program to be reused. The first run exports, calls and then stores the same wrapped program, so
first and repeated runs compute the same thing bit for bit (``tests/test_programs.py``).

The store is on exactly when JAX's persistent compilation cache is (``placement.enable_compilation_
cache``): its folder is ``<that cache>/lasca_jax_programs``. Files are written atomically (a
temporary file, then a rename), so concurrent runs can share the folder. Nothing about the store
fails a run; each of these is reported on the console and the program runs without it:
* a file whose checksum (SHA-256 of the payload, stored in front of it) does not match, or that
  cannot be read, deserialised or run, is exported again (a file that fails to run is deleted);
* a program that cannot be exported, or a file that cannot be written;
* sources edited after the process imported them (a long run, a reloaded module in a notebook):
  the store is skipped for the rest of the process, so no program is stored under a key that
  names code it was not traced from.
Files are small (about 50 kB for the synthetic main run's program); JAX's cache size limit does
not cover the folder, which can be deleted at any time. A change to jax, flax or optax that keeps
their version numbers (an edited installation) is not seen by the key: delete the folder after
one. Without the package's ``.py`` files (a byte-compiled install) the store stays off.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import sys
from typing import Any, Callable

from absl import logging
import jax
from jax import export
import numpy as np

from lasca_jax.data import files as files_lib

FOLDER = "lasca_jax_programs"
SUFFIX = ".jaxexport"
_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy")
_DIGEST = 32   # a stored file is the SHA-256 of its payload, then the serialised export

# Wrapped programs of this process, by key; what the calls of this process did, by outcome.
_LOADED: dict[str, Callable] = {}
counts = {"loaded": 0, "exported": 0, "reexported": 0, "unstored": 0}


def register_types(*types: type) -> None:
  """Lets ``jax.export`` serialise arguments and results that are these ``NamedTuple`` types."""
  for t in types:
    try:
      export.register_namedtuple_serialization(t, serialized_name=f"lasca_jax.{t.__qualname__}")
    except ValueError:   # already registered (a module imported twice, e.g. reloaded)
      pass


def directory() -> str | None:
  """The store's folder, or None while JAX's persistent compilation cache is off."""
  cache_dir = jax.config.jax_compilation_cache_dir
  if not cache_dir or not jax.config.jax_enable_compilation_cache:
    return None
  return os.path.join(cache_dir, FOLDER)


def _package_root() -> str:
  return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sources_digest() -> str | None:
  """SHA-256 of the package's ``.py`` files as they are on disk now (None without any)."""
  root = _package_root()
  sources = sorted(os.path.relpath(p, root) for p in files_lib.walk_files(root, (".py",)))
  if not sources:
    return None
  h = hashlib.sha256()
  for rel in sources:
    with open(os.path.join(root, rel), "rb") as f:
      h.update(b"\0" + rel.encode() + b"\0" + f.read())
  return h.hexdigest()


def _versions() -> str:
  parts = [sys.version]
  for name in _PACKAGES:
    try:
      parts.append(f"{name}={importlib.metadata.version(name)}")
    except importlib.metadata.PackageNotFoundError:
      parts.append(f"{name}=absent")
  return "\0".join(parts)


# The sources when this module was imported: lasca_jax.model.train imports it, so the code that
# builds the training programs was read from disk by then (about 4 ms).
_IMPORTED_SOURCES = _sources_digest()


def code_fingerprint() -> str | None:
  """SHA-256 of the package's sources as this process imported them and of the versions that
  shape a traced program; None when the sources are not at hand (no store)."""
  if _IMPORTED_SOURCES is None:
    return None
  return hashlib.sha256((_IMPORTED_SOURCES + "\0" + _versions()).encode()).hexdigest()


def _signature(args) -> str:
  leaves, tree = jax.tree.flatten(args)
  return str(tree) + ";" + ";".join(f"{np.shape(a)}:{np.result_type(a)}" for a in leaves)


def key(identity: str, devices, args, compiler_options) -> str:
  """The store key of a program (see the module docstring for what it covers)."""
  config = repr(sorted((k, repr(v)) for k, v in jax.config.values.items()))
  device_id = repr([(d.platform, d.device_kind, d.id) for d in devices])
  h = hashlib.sha256()
  for part in (str(code_fingerprint()), identity, device_id, _signature(args),
               repr(sorted((compiler_options or {}).items())), config):
    h.update(part.encode() + b"\0")
  return h.hexdigest()


UNITS_AXIS = "units"
UNITS = jax.sharding.PartitionSpec(UNITS_AXIS)   # every argument and result: its leading axis


def units_mesh(devices) -> jax.sharding.Mesh:
  """The mesh that splits the training units (leading axes) over ``devices``: the training
  program's ``shard_map`` and the stored programs' wrapper both use it."""
  return jax.sharding.Mesh(np.array(devices), (UNITS_AXIS,))


def _wrap(exported: export.Exported, devices, compiler_options) -> Callable:
  """A ``jit`` of the exported program on ``devices``, every argument and result split along its
  leading (units) axis when there are several."""
  if len(devices) == 1:
    return jax.jit(exported.call, compiler_options=compiler_options)
  sharding = jax.sharding.NamedSharding(units_mesh(devices), UNITS)
  return jax.jit(exported.call, in_shardings=sharding, out_shardings=sharding,
                 compiler_options=compiler_options)


def _read(path: str, devices) -> export.Exported | None:
  """The stored program at ``path``; None when there is none or it cannot be used (reported)."""
  try:
    with open(path, "rb") as f:
      blob = f.read()
    digest, payload = blob[:_DIGEST], blob[_DIGEST:]
    if len(blob) <= _DIGEST or hashlib.sha256(payload).digest() != digest:
      raise ValueError("its checksum does not match: the file is damaged")
    exported = export.deserialize(bytearray(payload))
    if exported.nr_devices != len(devices):
      raise ValueError(f"it was exported for {exported.nr_devices} device(s), not {len(devices)}")
    return exported
  except FileNotFoundError:
    return None
  except Exception as e:  # pylint: disable=broad-except
    _warn(f"stored training program {path} is unreadable ({type(e).__name__}: "
          f"{_first_line(e)}); exporting it again")
    counts["reexported"] += 1
    return None


def _first_line(e: Exception) -> str:
  return str(e).splitlines()[0] if str(e) else ""


def _warn(message: str) -> None:
  """A warning in absl's log (the console): the store never makes a run fail."""
  logging.warning("%s", message)


def _store(path: str, exported: export.Exported) -> bool:
  try:
    payload = exported.serialize()
    files_lib.write_bytes_atomic(path, hashlib.sha256(payload).digest() + payload)
    return True
  except Exception as e:  # pylint: disable=broad-except
    _warn(f"cannot store the training program in {path} ({type(e).__name__}: "
          f"{_first_line(e)}); the run goes on, and the next one traces it again")
    return False


def call(program, args: tuple, identity: str, devices, compiler_options=None) -> Any:
  """``program(*args)``, through the store when it is on.

  A program is stored only after its wrapped export has run once; whatever goes wrong with the
  store (a program that cannot be exported, a file that cannot be read, written or run) is
  reported, and ``program`` itself runs.

  Args:
    program: the ``jax.jit``-ed program (its ``in_shardings`` along the units axis when there are
      several devices).
    args: its arguments (host arrays).
    identity: what else determines the traced program (static settings), as a stable string.
    devices: the devices ``program`` runs on.
    compiler_options: the XLA options ``program`` was jitted with.
  """
  folder = directory()
  if folder is None or code_fingerprint() is None:
    return program(*args)
  if _sources_digest() != _IMPORTED_SOURCES:
    _warn("lasca_jax's sources changed after this process imported them: its training programs "
          "run without the store (a new process uses it again)")
    return program(*args)
  k = key(identity, devices, args, compiler_options)
  fn = _LOADED.get(k)
  if fn is not None:
    return fn(*args)
  path = os.path.join(folder, k + SUFFIX)
  exported = _read(path, devices)
  loaded = exported is not None
  if not loaded:
    try:
      exported = export.export(program)(*args)
    except Exception as e:  # pylint: disable=broad-except
      _warn(f"the training program cannot be exported ({type(e).__name__}: {_first_line(e)}); "
            "it runs without the store")
      counts["unstored"] += 1
      _LOADED[k] = program
      return program(*args)
  fn = _wrap(exported, devices, compiler_options)
  try:
    out = fn(*args)
  except Exception as e:  # pylint: disable=broad-except
    _warn(f"the {'stored' if loaded else 'exported'} training program {path} failed to run "
          f"({type(e).__name__}: {_first_line(e)}); it runs without the store")
    if loaded:
      with contextlib.suppress(OSError):
        os.remove(path)
    counts["unstored"] += 1
    _LOADED[k] = program
    return program(*args)
  if loaded:
    counts["loaded"] += 1
  elif _store(path, exported):
    counts["exported"] += 1
  else:
    counts["unstored"] += 1
  _LOADED[k] = fn
  return out


def since(before: dict) -> str:
  """What this process's calls did since ``before`` (a copy of :data:`counts`), for the log:
  ``"exported"`` (and stored), ``"loaded"`` (a stored program), ``"not stored"`` (the store is
  on, but the program ran without it: see the warning), ``"in memory"`` (a program this process
  already had) or ``"off"`` (no persistent cache)."""
  if counts["exported"] > before["exported"]:
    return "exported"
  if counts["loaded"] > before["loaded"]:
    return "loaded"
  if counts["unstored"] > before["unstored"]:
    return "not stored"
  return "off" if directory() is None else "in memory"


def clear() -> None:
  """Forgets the wrapped programs of this process (not the stored files)."""
  _LOADED.clear()
