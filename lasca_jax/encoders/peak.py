"""The f32 matrix-multiply peak of the current process, measured, in GFLOP/s.

A share of peak (achieved FLOP/s over this figure) says how close a kernel runs to what the
hardware does for dense f32 matmuls in the same process, on the same (possibly loaded) machine.
Machines differ in which library reaches the higher rate (on one AMD EPYC XLA's matmul did, on an
Intel Xeon numpy's BLAS did), so :func:`measure_peak` times both, square ``n x n`` products at a
few sizes, best of several repetitions each, and reports the best rate of all.

An ``n x n`` by ``n x n`` product counts ``2 n^3`` floating-point operations (``n^3``
multiply-adds), the usual convention for GEMM peaks.
"""

from __future__ import annotations

import math
import time
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_SIZES = (512, 1024, 1536)
DEFAULT_REPEATS = 3


class Peak(NamedTuple):
  """A measured f32 matmul peak.

  Attributes:
    gflops: the best rate found, ``max(xla_gflops, numpy_gflops)``.
    source: ``"xla"`` or ``"numpy"``, whichever gave ``gflops``.
    xla_gflops: best rate of a jitted ``jnp.matmul`` over the sizes tried.
    numpy_gflops: best rate of ``numpy.matmul`` (the BLAS numpy links) over the sizes tried.
    xla_size: the ``n`` at which XLA's best rate was reached.
    numpy_size: the ``n`` at which numpy's best rate was reached.
    seconds: wall time the measurement took.
  """
  gflops: float
  source: str
  xla_gflops: float
  numpy_gflops: float
  xla_size: int
  numpy_size: int
  seconds: float

  def as_dict(self) -> dict:
    return dict(self._asdict())


def matmul_flops(n: int, m: int | None = None, k: int | None = None) -> int:
  """FLOPs of an ``(n, k) @ (k, m)`` product, ``2 n m k``; square ``n x n`` when ``m, k`` are None."""
  m = n if m is None else m
  k = n if k is None else k
  if min(n, m, k) < 1:
    raise ValueError(f"matmul dimensions must be positive, got n={n}, m={m}, k={k}")
  return 2 * int(n) * int(m) * int(k)


def best_seconds(fn: Callable[[], object], repeats: int, *,
                 clock: Callable[[], float] = time.perf_counter) -> float:
  """The shortest wall time of ``repeats`` calls of ``fn`` (which must block until done)."""
  if repeats < 1:
    raise ValueError(f"repeats must be at least 1, got {repeats}")
  best = math.inf
  for _ in range(repeats):
    start = clock()
    fn()
    best = min(best, clock() - start)
  return best


def gflops_rate(flops: float, seconds: float) -> float:
  """``flops / seconds`` in GFLOP/s (``inf`` never: a non-positive time is an error)."""
  if not seconds > 0:
    raise ValueError(f"elapsed time must be positive, got {seconds}")
  return flops / seconds / 1e9


def _best_over_sizes(time_size: Callable[[int], float], sizes: Sequence[int]) -> tuple[float, int]:
  """Best GFLOP/s over ``sizes`` given ``time_size(n)``, the best seconds of an n x n product."""
  if not len(sizes):
    raise ValueError("no matmul sizes to measure")
  rates = [(gflops_rate(matmul_flops(n), time_size(n)), int(n)) for n in sizes]
  return max(rates)


def xla_matmul_gflops(sizes: Sequence[int] = DEFAULT_SIZES, repeats: int = DEFAULT_REPEATS,
                      *, clock: Callable[[], float] = time.perf_counter) -> tuple[float, int]:
  """Best rate of a jitted, warmed f32 ``jnp.matmul`` on the default device: ``(GFLOP/s, n)``."""
  matmul = jax.jit(jnp.matmul)

  def time_size(n: int) -> float:
    key_a, key_b = jax.random.split(jax.random.PRNGKey(n))
    a = jax.random.normal(key_a, (n, n), jnp.float32)
    b = jax.random.normal(key_b, (n, n), jnp.float32)
    matmul(a, b).block_until_ready()  # compile and warm
    return best_seconds(lambda: matmul(a, b).block_until_ready(), repeats, clock=clock)

  return _best_over_sizes(time_size, sizes)


def numpy_matmul_gflops(sizes: Sequence[int] = DEFAULT_SIZES, repeats: int = DEFAULT_REPEATS,
                        *, clock: Callable[[], float] = time.perf_counter) -> tuple[float, int]:
  """Best rate of f32 ``numpy.matmul`` (numpy's BLAS) into a preallocated output: ``(GFLOP/s, n)``."""

  def time_size(n: int) -> float:
    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    np.matmul(a, b, out=out)  # warm (threads, pages)
    return best_seconds(lambda: np.matmul(a, b, out=out), repeats, clock=clock)

  return _best_over_sizes(time_size, sizes)


def combine(xla: tuple[float, int], numpy_: tuple[float, int], seconds: float) -> Peak:
  """The :class:`Peak` of two ``(GFLOP/s, n)`` bests: the higher rate wins (XLA on a tie)."""
  for name, (rate, _) in (("xla", xla), ("numpy", numpy_)):
    if not (math.isfinite(rate) and rate > 0):
      raise ValueError(f"{name} matmul rate must be positive and finite, got {rate}")
  source = "xla" if xla[0] >= numpy_[0] else "numpy"
  return Peak(gflops=float(max(xla[0], numpy_[0])), source=source, xla_gflops=float(xla[0]),
              numpy_gflops=float(numpy_[0]), xla_size=int(xla[1]), numpy_size=int(numpy_[1]),
              seconds=float(seconds))


def measure_peak(sizes: Sequence[int] = DEFAULT_SIZES, repeats: int = DEFAULT_REPEATS) -> Peak:
  """Measures the f32 matmul peak now, in this process (about 1-3 s with the defaults on 2 cores)."""
  start = time.perf_counter()
  xla = xla_matmul_gflops(sizes, repeats)
  numpy_ = numpy_matmul_gflops(sizes, repeats)
  return combine(xla, numpy_, time.perf_counter() - start)


def share_of_peak(flops: float, seconds: float, peak_gflops: float) -> float:
  """Achieved rate over the peak: ``flops / seconds / (peak_gflops * 1e9)``."""
  if not peak_gflops > 0:
    raise ValueError(f"peak must be positive, got {peak_gflops}")
  return gflops_rate(flops, seconds) / peak_gflops
