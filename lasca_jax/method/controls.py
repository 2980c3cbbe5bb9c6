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

import hashlib
from typing import Sequence

import numpy as np

from lasca_jax.encoders import text as text_lib

HIDDEN_FROM = ("", "fused")


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


def random_norm(text_config) -> float:
  """The L2 norm of the random vectors: ``text.random_norm``, or the backbone's (0 = auto).

  Raises:
    ValueError: auto was asked for a backbone whose embeddings are not unit-norm.
  """
  norm = float(text_config.get("random_norm", 0.0))
  if norm > 0:
    return norm
  if norm < 0:
    raise ValueError(f"text.random_norm={norm}: use a positive norm, or 0 for the backbone's")
  _, unit = text_lib.embedding_geometry(text_config.backbone, text_config.model_path)
  if not unit:
    raise ValueError(
        f"text.random_norm: backbone {text_config.backbone!r} does not normalise its embeddings, "
        "so their scale is unknown without encoding; set --config.text.random_norm to their "
        "typical L2 norm")
  return 1.0


def fused_dim(model_config, text_config, num_features: int) -> int:
  """The input size to zero-pad to (0: none).

  ``model.hidden_from="fused"`` pads the representation with zero columns up to the input size
  of the fused model of the same configuration, ``num_features`` + the dimension of
  ``text.backbone``'s embeddings. The hidden sizes follow from that size, so the control has the
  fused model's architecture, parameter count and (same seed) the same initial weights on its
  features; the zero columns carry no information, and their weights never affect the output.

  Raises:
    ValueError: naming the field for an unknown ``model.hidden_from``.
  """
  source = str(model_config.get("hidden_from", ""))
  if source not in HIDDEN_FROM:
    raise ValueError(f"unknown model.hidden_from {source!r}: use one of {HIDDEN_FROM}")
  if source == "fused":
    dim, _ = text_lib.embedding_geometry(text_config.backbone, text_config.model_path)
    return int(num_features) + int(dim)
  return 0
