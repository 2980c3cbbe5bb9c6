"""Benchmark: how many degenerate folds each remedy rescues, and what it does to the accuracy.

  python experiments/benchmark_learner.py --config=configs/synthetic.py \
      --change_scales=1.0,0.1 --fusions=features,fused --out=/tmp/learner.md

For every ``data.change_scale`` (the synthetic generator's knob that shrinks within-recording
variation to real-data-sized window-to-window changes), fusion and learner setting (the paper's;
``train.standardize``; ``train.min_epochs=10``; ``train.monitor=loss``; all three), trains the
configuration's folds and prints one Markdown row: mean +- sample std of the test accuracy over
folds, the folds flagged degenerate (:mod:`lasca_jax.model.degenerate`) and the median
window-to-window change of each part of ``z``. Stages and embeddings come from the cache, so only
the first configuration of a scale encodes.
"""

import copy
import sys

from absl import app, flags, logging
from ml_collections import config_flags
import numpy as np

from lasca_jax.analysis import stats
from lasca_jax.run import pipeline

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_SCALES = flags.DEFINE_list("change_scales", ["1.0", "0.1"], "data.change_scale values.")
_FUSIONS = flags.DEFINE_list("fusions", ["features", "fused"], "model.fusion values.")
_OUT = flags.DEFINE_string("out", "", "Also write the table to this Markdown file.")

SETTINGS = (
    ("paper", {}),
    ("standardize", {"standardize": True}),
    ("min_epochs=10", {"min_epochs": 10}),
    ("monitor=loss", {"monitor": "loss"}),
    ("all three", {"standardize": True, "min_epochs": 10, "monitor": "loss"}),
)


def main(argv):
  del argv
  rows = ["| change_scale | fusion | learner | test accuracy | degenerate folds | median change "
          "per part |", "| ---: | --- | --- | --- | ---: | --- |"]
  print("\n".join(rows), flush=True)
  for scale in map(float, _SCALES.value):
    for fusion in _FUSIONS.value:
      for name, train_fields in SETTINGS:
        config = copy.deepcopy(_CONFIG.value)
        with config.unlocked():
          config.data.change_scale = scale
          config.model.fusion = fusion
          for key, value in train_fields.items():
            config.train[key] = value
        results = pipeline.run(config, None)
        mean, std, n = stats.fold_mean_std(results["test_accuracy"])
        changes = ", ".join(f"{k[len('change_'):]} {float(np.mean(v)):.4f}"
                            for k, v in results.items() if k.startswith("change_"))
        row = (f"| {scale:g} | {fusion} | {name} | {mean:.4f} +- {std:.4f} | "
               f"{int(results['degenerate'].sum())} of {n} | {changes} |")
        rows.append(row)
        print(row, flush=True)
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      f.write("\n".join(rows) + "\n")
    print(f"-> {_OUT.value}", file=sys.stderr)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  logging.set_verbosity(logging.ERROR)
  app.run(main)
