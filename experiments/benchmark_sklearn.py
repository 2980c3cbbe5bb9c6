"""Benchmark: lasca_jax's vmapped trainer against scikit-learn's MLPClassifier on the same folds.

  python experiments/benchmark_sklearn.py --config=configs/synthetic.py
  python experiments/benchmark_sklearn.py --config=configs/synthetic.py --config.model.fusion=features

Both learners see identical pairs: for every fold, the training and validation pairs of
lasca_jax's split (MLPClassifier draws its own 10 % validation split from them) and the fold's
test pairs. Prints per-fold test accuracy for both, their means, and wall times: lasca_jax's first
call (compilation included) and a second, compiled call, against scikit-learn fitting the folds
one after another.
"""

import time

from absl import app, flags, logging
from ml_collections import config_flags
import numpy as np

from lasca_jax.model import reference, train
from lasca_jax.run import cache, pipeline, settings as settings_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")


def main(argv):
  del argv
  config = _CONFIG.value
  inputs = pipeline.prepare(config, cache.StageCache(config.cache_dir or None))
  settings = settings_lib.train_settings(config)
  fold = inputs.folds
  num_folds, _, d = inputs.z.shape

  t0 = time.perf_counter()
  out = train.train_folds(settings, int(config.seed), inputs.z, inputs.pairs, fold)
  jax_first = time.perf_counter() - t0
  t0 = time.perf_counter()
  out = train.train_folds(settings, int(config.seed), inputs.z, inputs.pairs, fold)
  jax_warm = time.perf_counter() - t0

  t0 = time.perf_counter()
  sk = [reference.sklearn_fold(inputs.z[k], inputs.pairs, inputs.folds, k, int(config.seed),
                               settings) for k in range(num_folds)]
  sk_time = time.perf_counter() - t0

  ours = np.asarray(out.test_accuracy)
  print(f"config {config.name}: modality={config.features.modality} "
        f"fusion={config.model.fusion} window={config.features.window_seconds}s "
        f"margin={config.pairs.margin} target={config.pairs.target} d={d} folds={num_folds}")
  print(f"{'fold':>4} {'train pairs':>11} {'test pairs':>10} {'lasca_jax':>9} {'sklearn':>8}")
  for k in range(num_folds):
    print(f"{k:>4} {int(inputs.folds.train_count[k] + inputs.folds.val_mask[k].sum()):>11} "
          f"{int(inputs.folds.test_mask[k].sum()):>10} {ours[k]:>9.4f} {sk[k]:>8.4f}")
  print(f"mean {'':>22} {ours.mean():>9.4f} {np.mean(sk):>8.4f}")
  print(f"wall time: lasca_jax {jax_first:.2f} s first call (with compilation), "
        f"{jax_warm:.2f} s compiled; sklearn {sk_time:.2f} s")
  print(f"wall-time ratio sklearn / lasca_jax: {sk_time / jax_first:.2f}x (first call), "
        f"{sk_time / jax_warm:.2f}x (compiled)")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  logging.set_verbosity(logging.WARNING)
  app.run(main)
