"""The preference MLP (Sec. 3.3): two ReLU layers and a logit, initialised as scikit-learn does.

Hidden sizes ``(min(d/2, 250), min(d/4, 125))`` (the caps are ``model.max_hidden``), at least one
unit each; Glorot-uniform weights and biases with bound ``sqrt(6 / (fan_in + fan_out))``. The
trainer is :mod:`lasca_jax.model.train`.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


def hidden_sizes(d: int, max_hidden: tuple[int, int], hidden_dim: int = 0) -> tuple[int, int]:
  """``(min(d/2, max_hidden[0]), min(d/4, max_hidden[1]))``, at least one unit each.

  ``hidden_dim > 0`` derives the sizes from that dimension instead of the input size ``d``: a
  capacity-matched control gets the hidden layers of a larger (fused) model.
  """
  ref = int(hidden_dim) if hidden_dim and hidden_dim > 0 else d
  return (max(1, min(ref // 2, max_hidden[0])), max(1, min(ref // 4, max_hidden[1])))


def _glorot_uniform(fan_in: int, fan_out: int):
  bound = math.sqrt(6.0 / (fan_in + fan_out))
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
      key, shape, dtype, -bound, bound)


class SklearnDense(nn.Module):
  """Dense layer with scikit-learn's MLP initialisation (weights and bias both uniform)."""
  features: int

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1]
    init = _glorot_uniform(fan_in, self.features)
    kernel = self.param("kernel", init, (fan_in, self.features))
    bias = self.param("bias", init, (self.features,))
    return x @ kernel + bias


class PreferenceMLP(nn.Module):
  """Two ReLU layers and a single logit (the sigmoid is applied in the loss / prediction)."""
  hidden: tuple[int, ...]

  @nn.compact
  def __call__(self, x):  # [..., d] -> [...]
    for h in self.hidden:
      x = nn.relu(SklearnDense(h)(x))
    return SklearnDense(1)(x)[..., 0]


def layer_sizes(params) -> tuple[int, ...]:
  """``(d, h1, h2, 1)`` of trained ``PreferenceMLP`` parameters (no leading fold axis)."""
  kernels = [params[f"SklearnDense_{i}"]["kernel"] for i in range(len(params))]
  return (int(kernels[0].shape[0]),) + tuple(int(k.shape[1]) for k in kernels)


def num_params(d: int, hidden: tuple[int, int]) -> int:
  """Trainable parameters (weights and biases) of the MLP ``d -> hidden -> 1``."""
  sizes = (d, *hidden, 1)
  return int(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])))


def flops_per_pair(d: int, hidden: tuple[int, int]) -> tuple[int, int]:
  """Matmul FLOPs of the MLP per pair: ``(forward, training step)``.

  A training step is the forward pass plus the backward pass: weight gradients of all three
  layers and input gradients of the second and third (the input needs none); ``2`` FLOPs per
  multiply-add, biases and activations not counted.
  """
  h1, h2 = hidden
  macs = d * h1 + h1 * h2 + h2
  forward = 2 * macs
  return forward, forward + 2 * macs + 2 * (h1 * h2 + h2)
