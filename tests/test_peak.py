"""The f32 matmul peak measurement (lasca_jax.encoders.peak)."""

import math

import pytest

from lasca_jax.encoders import peak


def test_matmul_flops_formula():
  assert peak.matmul_flops(1) == 2
  assert peak.matmul_flops(1024) == 2 * 1024 ** 3
  assert peak.matmul_flops(3, 5, 7) == 2 * 3 * 5 * 7
  with pytest.raises(ValueError, match="positive"):
    peak.matmul_flops(0)


def test_best_seconds_takes_the_minimum_of_the_repeats():
  # A fake clock: each call reads start, then end; durations 0.5, 0.2, 0.9.
  ticks = iter([0.0, 0.5, 1.0, 1.2, 2.0, 2.9])
  calls = []
  best = peak.best_seconds(lambda: calls.append(1), 3, clock=lambda: next(ticks))
  assert best == pytest.approx(0.2)
  assert len(calls) == 3
  with pytest.raises(ValueError, match="repeats"):
    peak.best_seconds(lambda: None, 0)


def test_best_over_sizes_and_combine_pick_the_highest_rate():
  # 2 n^3 flops: n = 10 in 1e-6 s -> 2 GFLOP/s; n = 20 in 4e-6 s -> 4 GFLOP/s.
  times = {10: 1e-6, 20: 4e-6}
  rate, n = peak._best_over_sizes(times.__getitem__, [10, 20])
  assert n == 20 and rate == pytest.approx(4.0)
  p = peak.combine((3.0, 512), (5.0, 1024), seconds=1.5)
  assert (p.gflops, p.source, p.xla_gflops, p.numpy_gflops, p.numpy_size) == (
      5.0, "numpy", 3.0, 5.0, 1024)
  assert peak.combine((5.0, 512), (5.0, 1024), 1.0).source == "xla"
  with pytest.raises(ValueError, match="numpy"):
    peak.combine((5.0, 512), (math.inf, 1024), 1.0)


def test_share_of_peak():
  assert peak.share_of_peak(2e9, 1.0, 4.0) == pytest.approx(0.5)
  with pytest.raises(ValueError, match="positive"):
    peak.gflops_rate(1.0, 0.0)


def test_measure_peak_on_this_machine_is_positive_finite_and_the_best_of_both():
  p = peak.measure_peak(sizes=(64, 128), repeats=2)
  for rate in (p.gflops, p.xla_gflops, p.numpy_gflops):
    assert math.isfinite(rate) and rate > 0
  assert p.gflops == max(p.xla_gflops, p.numpy_gflops)
  assert p.source == ("xla" if p.xla_gflops >= p.numpy_gflops else "numpy")
  assert p.xla_size in (64, 128) and p.numpy_size in (64, 128)
  assert p.seconds > 0
