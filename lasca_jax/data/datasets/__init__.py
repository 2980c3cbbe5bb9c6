"""Dataset loaders, picked by ``config.data.name``.

A dataset module ``lasca_jax.data.datasets.<name>`` provides

* ``load_recordings(data_config) -> list[lasca_jax.data.types.Recording]``;
* ``fingerprint(data_config) -> dict``: a JSON-able description of every input it reads (files
  with sizes and modification times, relevant config fields); the frame cache is keyed by it;
* ``time_base_hz(data_config) -> float``: the rate a new recording's per-frame features are
  pooled onto before windowing (saved in every model bundle);

and optionally ``validate(data_config) -> list[str]`` (its config fields' problems),
``write_simulated_encoders(data_config, folder)`` (stand-in baseline encoders for
``sweep.simulated_baselines``) and ``DEMONSTRATION`` (a warning every prediction of a model
trained on it carries).
"""

from __future__ import annotations

import importlib
from types import ModuleType


def get_module(name: str) -> ModuleType:
  try:
    return importlib.import_module(f"lasca_jax.data.datasets.{name}")
  except ModuleNotFoundError as e:
    if e.name == f"lasca_jax.data.datasets.{name}":
      raise ValueError(f"unknown dataset {name!r}: no module lasca_jax.data.datasets.{name}") from e
    raise
