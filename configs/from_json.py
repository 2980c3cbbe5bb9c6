"""Re-runs an experiment from the ``config.json`` a run wrote.

  python experiments/main.py --config=configs/from_json.py:runs/synthetic/config.json \
      --workdir=runs/synthetic_again

Fields that are not part of the config (``model_label`` resolved at run time is one) are kept
only where the config has them.
"""

import json

import ml_collections

from configs import default


def _merge(config: ml_collections.ConfigDict, values: dict) -> None:
  for key, value in values.items():
    if isinstance(value, dict):
      if key not in config:
        config[key] = ml_collections.ConfigDict()
      _merge(config[key], value)
    elif isinstance(value, list):
      config[key] = tuple(value)
    else:
      config[key] = value


def from_values(values: dict) -> ml_collections.ConfigDict:
  """The defaults with ``values`` (a loaded ``config.json``) merged on top: a field the file
  predates keeps its default."""
  config = default.get_config()
  with config.ignore_type():
    _merge(config, values)
  return config


def get_config(path: str) -> ml_collections.ConfigDict:
  with open(path) as f:
    return from_values(json.load(f))
