"""Shared test fixtures: a tiny synthetic configuration and a private stage cache."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from configs import synthetic  # pylint: disable=wrong-import-position


def make_tiny_config(cache_dir: str, **overrides):
  """6 subjects x 1 minute, 3 folds, features-only unless overridden."""
  config = synthetic.get_config("runlocal")
  config.cache_dir = str(cache_dir)
  config.model.fusion = "features"
  for dotted, value in overrides.items():
    node = config
    *parents, leaf = dotted.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


@pytest.fixture
def tiny_config(tmp_path):
  return make_tiny_config(tmp_path / "cache")
