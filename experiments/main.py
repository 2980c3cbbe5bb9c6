"""Runs LaScA for one configuration over all folds or seeds.

  python experiments/main.py --config=configs/synthetic.py --workdir=runs/synthetic
  python experiments/main.py --config=configs/sewa.py --config.data.root=/data/SEWA

Every config field can be overridden on the command line (``--config.pairs.margin=0.2``).
"""

import os
import sys

from absl import flags, logging
from ml_collections import config_flags

from lasca_jax.analysis import stats
from lasca_jax.model import placement
from lasca_jax.run import cli, pipeline, validate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (default runs/<config.name>).")


def main(argv):
  del argv
  config = _CONFIG.value
  workdir = _WORKDIR.value or os.path.join("runs", config.name)
  try:
    validate.check(config)
    placement.use_host_devices(int(config.train.get("host_devices", 0)))   # before JAX starts
    results = pipeline.run(config, workdir)
  except (ValueError, FileNotFoundError, RuntimeError) as e:
    # Bad input or configuration: the message names the file and the problem.
    sys.exit(f"error: {e}")
  mean, std, n = stats.fold_mean_std(results["test_accuracy"])
  print(f"{config.name}: test accuracy {mean:.4f} +- {std:.4f} (sample std over folds, ddof=1, "
        f"as in the tables) over {n} folds -> {os.path.join(workdir, 'results.npz')}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  logging.set_verbosity(logging.INFO)
  cli.run(main)
