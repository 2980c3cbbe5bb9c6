"""Stored training programs: a repeated run skips tracing and lowering as well as compiling.

JAX's persistent compilation cache keys a compiled program by its lowered (StableHLO) form, so
every process still traces and lowers the trainer before the cache can answer: about 0.4-0.5 s of
a repeated CPU run whose training takes 2-3 s. This module keeps, next to that cache, each
training program as a ``jax.export`` artefact (portable, versioned StableHLO, not machine code)
keyed by what produced it:

* the code: SHA-256 of every ``.py`` file of the ``lasca_jax`` package, and the versions of
  Python, jax, jaxlib, flax, optax and numpy;
* the program's identity (static settings, input size, lanes), the devices (platform, kinds,
  ids), the shapes, dtypes and structure of the arguments, the compiler options and JAX's
  configuration values.

A later process with the same key deserialises the artefact (milliseconds) and calls it through
a thin ``jit``; compiling that call is a hit in JAX's persistent cache, which keys it by its HLO,
compiler options and backend version as usual, so a program compiled for another machine is
never reused. The first run exports, stores and calls the same wrapped program, so first and
repeated runs compute the same thing bit for bit (``tests/test_programs.py``).

The store is on exactly when JAX's persistent compilation cache is (``train.enable_compilation_
cache``): its folder is ``<that cache>/lasca_jax_programs``. Files are written atomically (a
temporary file, then a rename), so concurrent runs can share the folder; an unreadable file is
reported on the console and exported again; a program that cannot be exported or stored runs
as it is, with a warning. Files are small (about 50 kB for the synthetic main run's program) and
can be deleted at any time. A change to jax, flax or optax that keeps their version numbers (an
edited installation) is not seen by the key: delete the folder after one.
"""

from __future__ import annotations

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

# Wrapped programs of this process, by key; what the calls of this process did, by outcome.
_LOADED: dict[str, Callable] = {}
counts = {"loaded": 0, "exported": 0, "reexported": 0}


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


_CODE: list[str] = []


def code_fingerprint() -> str:
  """SHA-256 of the package's Python sources and of the versions that shape a traced program
  (computed once per process)."""
  if not _CODE:
    h = hashlib.sha256(sys.version.encode())
    for name in _PACKAGES:
      try:
        version = importlib.metadata.version(name)
      except importlib.metadata.PackageNotFoundError:
        version = "absent"
      h.update(f"\0{name}={version}".encode())
    root = _package_root()
    sources = sorted(os.path.relpath(p, root) for p in files_lib.walk_files(root, (".py",)))
    for rel in sources:
      with open(os.path.join(root, rel), "rb") as f:
        h.update(b"\0" + rel.encode() + b"\0" + f.read())
    _CODE.append(h.hexdigest())
  return _CODE[0]


def _signature(args) -> str:
  leaves, tree = jax.tree.flatten(args)
  return str(tree) + ";" + ";".join(f"{np.shape(a)}:{np.result_type(a)}" for a in leaves)


def key(identity: str, devices, args, compiler_options) -> str:
  """The store key of a program (see the module docstring for what it covers)."""
  config = repr(sorted((k, repr(v)) for k, v in jax.config.values.items()))
  device_id = repr([(d.platform, d.device_kind, d.id) for d in devices])
  h = hashlib.sha256()
  for part in (code_fingerprint(), identity, device_id, _signature(args),
               repr(sorted((compiler_options or {}).items())), config):
    h.update(part.encode() + b"\0")
  return h.hexdigest()


def _wrap(exported: export.Exported, devices, compiler_options) -> Callable:
  """A ``jit`` of the exported program on ``devices``, every argument and result split along its
  leading (units) axis when there are several."""
  if len(devices) == 1:
    return jax.jit(exported.call, compiler_options=compiler_options)
  mesh = jax.sharding.Mesh(np.array(devices), ("units",))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("units"))
  return jax.jit(exported.call, in_shardings=sharding, out_shardings=sharding,
                 compiler_options=compiler_options)


def _read(path: str, devices) -> export.Exported | None:
  """The stored program at ``path``; None when there is none or it cannot be used (reported)."""
  try:
    with open(path, "rb") as f:
      blob = f.read()
  except FileNotFoundError:
    return None
  try:
    exported = export.deserialize(bytearray(blob))
    if exported.nr_devices != len(devices):
      raise ValueError(f"it was exported for {exported.nr_devices} device(s), not {len(devices)}")
    return exported
  except Exception as e:  # pylint: disable=broad-except
    _warn(f"stored training program {path} is unreadable ({type(e).__name__}: "
          f"{_first_line(e)}); exporting it again")
    counts["reexported"] += 1
    return None


def _first_line(e: Exception) -> str:
  return str(e).splitlines()[0] if str(e) else ""


def _warn(message: str) -> None:
  """On the console (stderr) and in absl's log: the store never makes a run fail."""
  logging.warning("%s", message)
  print(f"warning: {message}", file=sys.stderr)


def call(program, args: tuple, identity: str, devices, compiler_options=None) -> Any:
  """``program(*args)``, through the store when it is on.

  Args:
    program: the ``jax.jit``-ed program (its ``in_shardings`` along the units axis when there are
      several devices).
    args: its arguments (host arrays).
    identity: what else determines the traced program (static settings), as a stable string.
    devices: the devices ``program`` runs on.
    compiler_options: the XLA options ``program`` was jitted with.
  """
  folder = directory()
  if folder is None:
    return program(*args)
  k = key(identity, devices, args, compiler_options)
  fn = _LOADED.get(k)
  if fn is None:
    path = os.path.join(folder, k + SUFFIX)
    exported = _read(path, devices)
    if exported is None:
      try:
        exported = export.export(program)(*args)
      except Exception as e:  # pylint: disable=broad-except
        _warn(f"the training program cannot be exported ({type(e).__name__}: "
              f"{_first_line(e)}); it runs without the store")
        fn = _LOADED[k] = program
        return fn(*args)
      try:
        files_lib.write_bytes_atomic(path, exported.serialize())
      except OSError as e:
        _warn(f"cannot store the training program in {path} ({_first_line(e)}); the run "
              "goes on, and the next one traces it again")
      counts["exported"] += 1
    else:
      counts["loaded"] += 1
    fn = _LOADED[k] = _wrap(exported, devices, compiler_options)
  return fn(*args)


def since(before: dict) -> str:
  """What this process's calls did since ``before`` (a copy of :data:`counts`), for the log:
  ``"loaded"`` (a stored program), ``"exported"`` (stored one), ``"in memory"`` (one already
  wrapped by this process) or ``"off"`` (no persistent cache)."""
  if counts["exported"] > before["exported"]:
    return "exported"
  if counts["loaded"] > before["loaded"]:
    return "loaded"
  return "off" if directory() is None else "in memory"


def clear() -> None:
  """Forgets the wrapped programs of this process (not the stored files)."""
  _LOADED.clear()
