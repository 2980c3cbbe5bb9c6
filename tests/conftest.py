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
  return apply_overrides(config, overrides)


def apply_overrides(config, overrides: dict):
  """Sets every ``"section.field": value`` of ``overrides`` on ``config``; returns it."""
  from lasca_jax.run import fields  # pylint: disable=import-outside-toplevel
  for dotted, value in overrides.items():
    fields.set_field(config, dotted, value)
  return config


PAPER_CAPS = (250, 125)   # model.max_hidden of configs/default.py: the paper's caps


def train_settings(**fields):
  """``TrainSettings`` of configs/default.py, with ``fields`` replaced."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  from configs import default  # pylint: disable=import-outside-toplevel
  from lasca_jax.run import settings  # pylint: disable=import-outside-toplevel
  return dataclasses.replace(settings.train_settings(default.get_config()), **fields)


@pytest.fixture
def tiny_config(tmp_path):
  return make_tiny_config(tmp_path / "cache")


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory):
  """A randomly initialised 1-layer, 32-d sentence transformer saved to a local folder.

  It uses the real all-MiniLM-L6-v2 tokenizer, so prompts tokenise as they do for the offline
  default backbone, but encodes thousands of prompts per second: for sweep tests only.
  """
  return tiny_sentence_transformer(tmp_path_factory.mktemp("tiny_backbone"), 256)


@pytest.fixture(scope="session")
def short_backbone(tmp_path_factory):
  """:func:`tiny_backbone` with a 24-token window: most multimodal prompts exceed it, so
  ``text.long_prompts`` decides what their embeddings are."""
  return tiny_sentence_transformer(tmp_path_factory.mktemp("short_backbone"), 24)


def st_modules():
  """sentence-transformers' module classes (``Transformer``, ``Pooling``, ``Dense``,
  ``Normalize``) where this version keeps them (``sentence_transformers.models`` before 6, where
  6 warns)."""
  try:
    from sentence_transformers.sentence_transformer import modules  # pylint: disable=C0415
  except ImportError:
    from sentence_transformers import models as modules  # pylint: disable=C0415
  return modules


def tiny_sentence_transformer(base, max_seq_length: int) -> str:
  """The folder of a randomly initialised 1-layer, 32-d sentence transformer (seed 0)."""
  import torch  # pylint: disable=import-outside-toplevel
  from sentence_transformers import SentenceTransformer  # pylint: disable=import-outside-toplevel
  models = st_modules()
  from transformers import AutoTokenizer, BertConfig, BertModel  # pylint: disable=import-outside-toplevel

  from lasca_jax.encoders import text as text_lib  # pylint: disable=import-outside-toplevel
  torch.manual_seed(0)
  tokenizer = AutoTokenizer.from_pretrained(text_lib.resolve("all-MiniLM-L6-v2"))
  bert = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32,
                              num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                              max_position_embeddings=512))
  hf_dir = base / "hf"
  bert.save_pretrained(hf_dir)
  tokenizer.save_pretrained(hf_dir)
  word = models.Transformer(str(hf_dir), max_seq_length=max_seq_length)
  model = SentenceTransformer(modules=[word, models.Pooling(32, pooling_mode="mean")])
  out = base / "sentence_transformer"
  model.save(str(out))
  return str(out)


def _sweep_config(cache_dir, backbone):
  from configs import synthetic
  config = synthetic.get_config("runlocal,sweep")
  config.cache_dir = str(cache_dir)
  config.data.num_subjects = 8
  config.sweep.windows = (3.0, 5.0)
  config.sweep.margins = (0.1,)
  config.sweep.targets = ("arousal",)
  config.sweep.backbones = (backbone,)
  config.sweep.group_size = 4
  config.sweep.lasca_label = ""
  config.sweep.controls = ("mask", "random_text", "capacity")
  config.text.random_norm = 1.0   # the tiny backbone does not normalise its embeddings
  return config


def run_sweep(config, workdir: str, make_report: bool = True, retry_failed: bool = False):
  """What ``experiments/sweep.py`` runs: the sweep, then its report."""
  from lasca_jax.analysis import report  # pylint: disable=import-outside-toplevel
  from lasca_jax.run import sweep  # pylint: disable=import-outside-toplevel
  summary = sweep.run(config, workdir, retry_failed)
  if make_report:
    summary["report"] = report.sweep_report(summary["config"], workdir)
  return summary


@pytest.fixture(scope="session")
def swept(tmp_path_factory, tiny_backbone):
  """A sweep of the shrunk synthetic config (every table kind), shared by several tests."""
  root = tmp_path_factory.mktemp("sweep")
  config = _sweep_config(root / "cache", tiny_backbone)
  summary = run_sweep(config, str(root / "out"))
  assert not config.sweep.baselines                 # the caller's config is left as it was
  config = summary["config"]                        # the grid it ran
  return root, config, summary


@pytest.fixture
def no_program_store(monkeypatch):
  """Training calls its jitted program directly, as in a process without JAX's persistent
  compilation cache (lasca_jax/model/programs.py): for tests that inspect that program."""
  from lasca_jax.model import programs  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(programs, "directory", lambda: None)
