"""Where training runs: local devices, host (CPU) devices, XLA options, the compilation cache.

:class:`Layout` (``config.train.devices`` / ``lanes``) and :func:`plan` decide how a call's
(configuration, fold) units spread over the local devices; :func:`use_host_devices` splits a CPU
into one XLA device per core; the compiler options and :func:`enable_compilation_cache` shape
and keep the compiled training program (:mod:`lasca_jax.model.train`).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax

from lasca_jax.data import checks, files as files_lib


class Layout(NamedTuple):
  """How one call lays out its (configuration, fold) units (``config.train.devices/lanes``).

  Attributes:
    devices: local devices the units are split over; 0 means all of them.
    lanes: units ``vmap``-ed together on a device; 0 means automatic (1 on a CPU, where
      vmapped folds run until the slowest stops and batched matmuls are slower; every unit of
      the device on an accelerator).
  """
  devices: int = 0
  lanes: int = 0


HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def host_device_flags(xla_flags: str, count: int) -> str:
  """``XLA_FLAGS`` with ``count`` host (CPU) devices; a count already in ``xla_flags`` is kept."""
  if HOST_DEVICE_FLAG in xla_flags:
    return xla_flags
  return f"{xla_flags} {HOST_DEVICE_FLAG}={count}".strip()


def usable_cores() -> int:
  """The CPU cores this process may run on."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def use_host_devices(count: int = 0) -> int:
  """Splits the CPU into ``count`` XLA devices (``config.train.host_devices``; 0: one per core).

  XLA runs one program on one core: the preference MLP's matmuls are too small for its
  intra-op threads. As separate devices, the cores train different folds at the same time
  (:func:`train_units` shards the units over them); results do not depend on it. JAX reads the
  setting when it starts its backends, so the entry points call this first; once JAX has started,
  or when ``XLA_FLAGS`` already sets a count, nothing changes. Accelerators are not affected.

  Returns:
    The number of host devices asked for (``XLA_FLAGS``'s own count wins when it has one).

  Raises:
    ValueError: naming the field for a negative count.
  """
  if count < 0:
    raise ValueError(f"train.host_devices = {count}: use 0 (one per core) or a positive count")
  count = count or usable_cores()
  from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
  if not xla_bridge.backends_are_initialized():
    os.environ["XLA_FLAGS"] = host_device_flags(os.environ.get("XLA_FLAGS", ""), count)
  return count


def local_devices(count: int = 0) -> list:
  """The first ``count`` local devices (all when 0), with a clear error past what exists."""
  devices = jax.local_devices()
  if count < 0 or count > len(devices):
    raise ValueError(f"train.devices = {count}, but this process sees {len(devices)} local "
                     f"{devices[0].platform} device(s); use 0 for all of them or 1..{len(devices)}")
  return devices[:count or len(devices)]


class UnitsPlan(NamedTuple):
  """The layout one call resolved to (logged by pipelines and sweeps)."""
  units: int        # real (configuration, fold) units
  devices: int      # devices they are split over
  platform: str
  lanes: int        # units vmapped together on a device
  padded_units: int  # units computed, a multiple of devices * lanes


def plan(num_units: int, layout: Layout = Layout()) -> UnitsPlan:
  """Resolves ``layout`` for ``num_units`` units on this process's local devices (all of them
  by default, but never more than there are units)."""
  devices = local_devices(layout.devices)
  if not layout.devices:
    devices = devices[:max(1, num_units)]
  per_device = -(-num_units // len(devices))
  if layout.lanes < 0:
    raise ValueError(f"train.lanes = {layout.lanes}: use 0 (automatic) or a positive count")
  lanes = layout.lanes or (1 if devices[0].platform == "cpu" else per_device)
  lanes = max(1, min(lanes, per_device))
  per_device = -(-per_device // lanes) * lanes
  return UnitsPlan(units=num_units, devices=len(devices), platform=devices[0].platform,
                   lanes=lanes, padded_units=per_device * len(devices))


# XLA:CPU options of the training program. LLVM's most expensive passes buy this program no
# speed, and skipping them shortens its compilation by about a tenth; the results stay bit for bit
# the same (tests/test_train_devices.py).
CPU_COMPILER_OPTIONS = {"xla_llvm_disable_expensive_passes": True}
# ``config.train.fast_compile``: LLVM at -O1 and XLA's classic elemental emitters roughly halve
# the compilation and leave the speed of the compiled loop as it is, but round some operations
# differently, so the last bits of the results (and, rarely, an early-stopping decision) change.
CPU_FAST_COMPILER_OPTIONS = {**CPU_COMPILER_OPTIONS, "xla_backend_optimization_level": 1,
                             "xla_cpu_use_fusion_emitters": False}


def compiler_options(fast_compile: bool, devices: tuple) -> dict | None:
  if devices[0].platform != "cpu":
    return None
  return CPU_FAST_COMPILER_OPTIONS if fast_compile else CPU_COMPILER_OPTIONS


def enable_compilation_cache(path: str | None) -> str | None:
  """Points JAX's persistent compilation cache at ``path`` so a repeated run skips compiling.

  ``None`` or ``"none"`` leaves it off; ``""`` uses ``<LASCA_JAX_CACHE or ~/.cache/lasca_jax>/xla``.
  JAX reads the setting once per process, so a directory already set (an earlier call, or the
  ``JAX_COMPILATION_CACHE_DIR`` environment variable) is kept. Programs compiling in under 0.2 s
  are not stored. Returns the directory in use, or None.
  """
  current = jax.config.jax_compilation_cache_dir
  if current:
    return current
  if path is None or str(path).lower() == "none":
    return None
  if not path:
    path = os.path.join(files_lib.default_cache_dir(), "xla")
  os.makedirs(path, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  return path


# The config fields this module reads, and what each accepts (collected by run/validate.py).
FIELDS = (
    ("train.devices", checks.int_at_least(0)),
    ("train.lanes", checks.int_at_least(0)),
    ("train.host_devices", checks.int_at_least(0)),
    ("compilation_cache", ((lambda v: isinstance(v, str)),
                           "a directory, '' for the default or 'none'")),
)
