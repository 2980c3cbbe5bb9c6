"""One measurement in this (fresh) process, printed as one JSON line; benchmark_scale.py runs it.

  python experiments/time_one.py --config=configs/synthetic.py --measure=training \
      --compilation_cache=/tmp/xla --peak
  python experiments/time_one.py --config=configs/synthetic.py --measure=sklearn

``--measure``: ``training`` (one training call, then a second, compiled one; with ``--peak`` the
f32 matmul peak right after), ``phases`` (trace, lower, compile, execute of one call),
``sklearn`` (scikit-learn on the same folds), ``step`` (the minibatch step and its matmuls on one
core). The functions are in ``lasca_jax/run/timing.py``.
"""

import json
import sys

from absl import flags, logging
from ml_collections import config_flags

from lasca_jax.model import placement
from lasca_jax.run import cli, timing, validate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_MEASURE = flags.DEFINE_enum("measure", "training", ["training", "phases", "sklearn", "step"],
                             "What to measure.")
_CACHE = flags.DEFINE_string("compilation_cache", "none", "training, phases: the persistent "
                             "compilation cache to use (none: off).")
_PEAK = flags.DEFINE_bool("peak", False, "training: also measure the f32 matmul peak.")
_STEPS = flags.DEFINE_integer("steps", 400, "step: minibatch steps per timing.", lower_bound=1)


def main(argv):
  del argv
  config = _CONFIG.value
  try:
    validate.check(config)
  except validate.ConfigError as e:
    sys.exit(f"error: {e}")
  if _MEASURE.value == "step":
    placement.use_host_devices(1)                                        # one device, one core
    print(json.dumps(timing.time_step(config, _STEPS.value)))
    return
  placement.use_host_devices(int(config.train.get("host_devices", 0)))   # before JAX starts
  if _MEASURE.value == "sklearn":
    result = timing.time_sklearn(config)
  elif _MEASURE.value == "phases":
    result = timing.time_phases(config, _CACHE.value)
  else:
    result = timing.time_training(config, _CACHE.value, _PEAK.value)
  print(json.dumps(result))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  logging.set_verbosity(logging.WARNING)
  cli.run(main)
