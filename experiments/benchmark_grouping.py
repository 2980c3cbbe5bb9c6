"""Benchmark: equally shaped configurations trained in one compiled call vs one call each.

  python experiments/benchmark_grouping.py --config=configs/synthetic.py

Prepares the four configurations target x margin (arousal/valence x 10 %/20 %) of the config's
modality, window and model (their inputs share a shape), then trains them (all folds each)
twice from a cold compilation cache: as one ``train_configs`` call, and as four ``train_folds``
calls, which is what a sweep with ``sweep.group_size=1`` does. Prints both wall times, with and
without compilation, and checks that the two give identical accuracies.
"""

import time

from absl import app, flags, logging
import jax
from ml_collections import config_flags
import numpy as np

from lasca_jax.model import train
from lasca_jax.run import cache, pipeline, settings as settings_lib, sweep

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")


def main(argv):
  del argv
  base = _CONFIG.value
  store = cache.StageCache(base.cache_dir or None)
  configs, inputs = [], []
  for target in ("arousal", "valence"):
    for margin in (0.1, 0.2):
      c = base.copy_and_resolve_references()
      c.pairs.target, c.pairs.margin = target, margin
      configs.append(c)
      inputs.append(pipeline.prepare(c, store))
  settings = settings_lib.train_settings(base)
  seeds = [int(c.seed) for c in configs]

  def grouped():
    z, pairs, folds = sweep.stack_inputs(inputs)
    return np.asarray(train.train_configs(settings, seeds, z, pairs, folds).test_accuracy)

  def separate():
    return np.stack([np.asarray(train.train_folds(settings, s, i.z, i.pairs,
                                                  i.folds).test_accuracy)
                     for s, i in zip(seeds, inputs)])

  results = {}
  for name, fn in (("one call", grouped), ("one call per configuration", separate)):
    jax.clear_caches()
    train.clear_compiled()
    t0 = time.perf_counter()
    acc = fn()
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    fn()
    warm = time.perf_counter() - t0
    results[name] = (acc, cold, warm)
  (a, cold_a, warm_a), (b, cold_b, warm_b) = results.values()
  shapes = {tuple(i.z.shape) for i in inputs}
  print(f"4 configurations ({base.features.modality}, {base.model.fusion}, "
        f"{base.features.window_seconds:g} s; targets x margins), z shapes {sorted(shapes)}")
  print(f"one compiled call:           {cold_a:6.2f} s with compilation, {warm_a:6.2f} s compiled")
  print(f"one call per configuration:  {cold_b:6.2f} s with compilation, {warm_b:6.2f} s compiled")
  print(f"speed-up of grouping: {cold_b / cold_a:.2f}x cold, {warm_b / warm_a:.2f}x compiled; "
        f"identical accuracies: {bool(np.array_equal(a, b))}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  logging.set_verbosity(logging.WARNING)
  app.run(main)
