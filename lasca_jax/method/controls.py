"""Controls that isolate what the language adds to the fused representation.

A fused LaScA model ``[x || s]`` differs from the features-only model ``[x]`` in three ways at
once: it knows which cues were salient, it sees a language embedding of them, and its MLP is
larger (the hidden sizes grow with ``d``). Each control removes one of these differences:

* ``mask`` (``model.fusion="mask"``): ``[x || m]``, the features with the binary salience mask
  ``m`` itself: the information the prompt carries, without language and without an encoder;
* ``random_text`` (``model.fusion="random_text"``): ``[x || r]``, where ``r`` is a fixed random
  vector per distinct prompt, drawn from a hash of the prompt (and ``text.random_seed``), with the
  backbone's dimension and norm: the same prompts and the same capacity, but no meaning; nothing
  is encoded;
* capacity-matched features (``model.fusion="features"`` with ``model.hidden_from="fused"``):
  ``[x || 0]``, the features zero-padded to the fused model's input size, hence trained with its
  hidden sizes, parameter count and initial feature weights, but without any text.
  ``model.hidden_from_dim=<d>`` instead only derives the hidden sizes from ``d`` (no padding).
"""

from __future__ import annotations

import math
import hashlib
from typing import Sequence

import numpy as np
from lasca_jax.data import checks

HIDDEN_FROM = ("", "fused")   # model.hidden_from (the padding: lasca_jax.encoders.embedder)


def prompt_seed(prompt: str, seed: int = 0) -> int:
  """A 128-bit integer seed from ``seed`` and the prompt's text (stable across runs and hosts)."""
  digest = hashlib.sha256(f"{int(seed)}\x00{prompt}".encode("utf-8")).digest()
  return int.from_bytes(digest[:16], "little")


def random_prompt_embeddings(prompts: Sequence[str], dim: int, seed: int = 0,
                             norm: float = 1.0) -> np.ndarray:
  """``float32 [len(prompts), dim]``: one fixed random vector per prompt.

  Each vector is a standard normal draw seeded by :func:`prompt_seed`, scaled to L2 norm
  ``norm``: uniformly distributed on the sphere the backbone's (normalised) embeddings live on,
  so the control has the embedding's dimension and scale. The same prompt always gets the same
  vector, whatever run, fold or batch it appears in.
  """
  out = np.empty((len(prompts), int(dim)), np.float32)
  for i, prompt in enumerate(prompts):
    v = np.random.default_rng(prompt_seed(prompt, seed)).standard_normal(int(dim))
    out[i] = v * (float(norm) / np.linalg.norm(v))
  return out


# The config fields this module reads, and what each accepts (collected by run/validate.py).
FIELDS = (
    ("model.hidden_from", checks.one_of(HIDDEN_FROM)),
    ("model.hidden_from_dim", checks.int_at_least(0)),
    ("text.random_seed", checks.int_at_least(0)),
    ("text.random_norm", checks.number_in(0, math.inf)),
)
