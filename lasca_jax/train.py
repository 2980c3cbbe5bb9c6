"""The preference learner (Sec. 3.3, 5.1), trained for all folds in one ``jit(vmap(...))``.

The model is a two-layer ReLU MLP with hidden sizes ``(min(d/2, 250), min(d/4, 125))`` and a
sigmoid output on the difference ``z[second] - z[first]`` of two window representations. Training
follows scikit-learn's ``MLPClassifier(max_iter=25, alpha=1, tol=1e-3, early_stopping=True,
n_iter_no_change=3, shuffle=True)``:

* Glorot-uniform initialisation of weights and biases with bound ``sqrt(6 / (fan_in + fan_out))``;
* Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8) on minibatches of ``min(200, n_train)``, reshuffled
  every epoch; the loss of a batch is its mean binary cross-entropy plus
  ``0.5 * alpha * sum(W**2) / batch_size`` (weights only, not biases);
* after every epoch the validation accuracy is computed; an epoch counts as "no improvement" when
  it does not beat the best score by ``tol``; training stops once more than ``patience``
  consecutive epochs did not improve, and the weights of the best-scoring epoch are kept.

Everything is a pure function of a PRNG key and arrays: :func:`make_train` closes over the static
settings and returns ``train(key, z, pairs, fold) -> TrainOutput``. Ragged folds are padded, and
masks keep padding out of every sum; an all-padding batch or a finished run leaves the state
unchanged through ``jnp.where``. Each epoch reports to a host-side progress bar through
``jax.debug.callback``. ``train_folds`` maps it over folds; stacking equally shaped
configurations on a further leading axis and wrapping it in another ``vmap`` trains them in the
same compiled call (see :func:`train_configs`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  """Static training settings (they shape the compiled program)."""
  max_epochs: int = 25
  learning_rate: float = 1e-3
  alpha: float = 1.0
  tol: float = 1e-3
  patience: int = 3
  batch_size: int = 200

  @classmethod
  def from_config(cls, train_config) -> "TrainSettings":
    return cls(max_epochs=int(train_config.max_epochs),
               learning_rate=float(train_config.learning_rate), alpha=float(train_config.alpha),
               tol=float(train_config.tol), patience=int(train_config.patience),
               batch_size=int(train_config.batch_size))


def hidden_sizes(d: int, max_hidden=(250, 125), hidden_dim: int = 0) -> tuple[int, int]:
  """``(min(d/2, 250), min(d/4, 125))``, at least one unit each.

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


class PairData(NamedTuple):
  """Pairs shared by all folds: ``[P]`` each."""
  first: jax.Array
  second: jax.Array
  label: jax.Array


class FoldData(NamedTuple):
  """One fold's padded pair indices (see ``lasca_jax.protocols.FoldIndices``)."""
  train_idx: jax.Array   # [n_train_max], a multiple of batch_size
  train_count: jax.Array  # []
  val_idx: jax.Array     # [n_val_max]
  val_mask: jax.Array
  test_idx: jax.Array    # [n_test_max]
  test_mask: jax.Array


class EarlyStopping(NamedTuple):
  """Functional early-stopping state, updated with ``jnp.where`` only."""
  best_score: jax.Array
  best_params: Any
  best_epoch: jax.Array
  bad_epochs: jax.Array
  stopped: jax.Array


class TrainOutput(NamedTuple):
  params: Any                 # best-epoch parameters
  test_accuracy: jax.Array    # []
  test_prob: jax.Array        # [n_test_max] P(increase); 0 where padded
  val_accuracy: jax.Array     # [] best validation accuracy
  best_epoch: jax.Array       # [] 1-based epoch of the kept weights
  epochs_run: jax.Array       # []
  train_loss: jax.Array       # [max_epochs], NaN after stopping
  val_curve: jax.Array        # [max_epochs], NaN after stopping


class _EpochProgress:
  """Host-side progress of the compiled training loop (fed by ``jax.debug.callback``)."""

  def __init__(self):
    self.bar = None

  def __call__(self, epoch):
    if self.bar is not None:
      done = int(np.max(np.asarray(epoch)))
      if done > self.bar.n:
        self.bar.update(done - self.bar.n)

  def start(self, total: int, desc: str):
    from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
    self.bar = tqdm(total=total, desc=desc, unit="epoch", leave=False)

  def stop(self):
    if self.bar is not None:
      self.bar.close()
    self.bar = None


_PROGRESS = _EpochProgress()


def _tree_where(cond, a, b):
  return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def _l2(params) -> jax.Array:
  return sum(jnp.sum(p["kernel"] ** 2) for p in jax.tree.leaves(
      params, is_leaf=lambda n: isinstance(n, dict) and "kernel" in n))


def make_train(settings: TrainSettings, d: int, max_hidden=(250, 125), hidden_dim: int = 0):
  """Returns the pure ``train(key, z, pairs, fold) -> TrainOutput`` for input size ``d``.

  ``z`` is ``float32 [W, d]``: one fold's window representations; pairs index into it.
  ``hidden_dim``: see :func:`hidden_sizes`.
  """
  model = PreferenceMLP(hidden_sizes(d, max_hidden, hidden_dim))
  tx = optax.adam(settings.learning_rate, b1=0.9, b2=0.999, eps=1e-8)
  bs = settings.batch_size

  def inputs(z, pairs: PairData, idx):
    return z[pairs.second[idx]] - z[pairs.first[idx]], pairs.label[idx].astype(jnp.float32)

  def accuracy(params, z, pairs, idx, mask):
    x, y = inputs(z, pairs, idx)
    pred = (model.apply({"params": params}, x) > 0).astype(jnp.float32)
    correct = jnp.sum(jnp.where(mask, pred == y, False))
    return correct / jnp.maximum(jnp.sum(mask), 1)

  def batch_loss(params, x, y, mask):
    count = jnp.maximum(jnp.sum(mask), 1)
    bce = optax.sigmoid_binary_cross_entropy(model.apply({"params": params}, x), y)
    data = jnp.sum(jnp.where(mask, bce, 0.0)) / count
    return data + 0.5 * settings.alpha * _l2(params) / count

  def train(key, z, pairs: PairData, fold: FoldData) -> TrainOutput:
    key_init, key_shuffle = jax.random.split(key)
    params = model.init(key_init, jnp.zeros((1, d), z.dtype))["params"]
    opt_state = tx.init(params)
    n_max = fold.train_idx.shape[0]
    num_batches = n_max // bs

    def run_batch(carry, b):
      params, opt_state, stopped, order, loss_sum = carry
      slot = b * bs + jnp.arange(bs)
      mask = slot < fold.train_count
      x, y = inputs(z, pairs, fold.train_idx[order[slot]])
      loss, grads = jax.value_and_grad(batch_loss)(params, x, y, mask)
      updates, new_opt = tx.update(grads, opt_state, params)
      new_params = optax.apply_updates(params, updates)
      skip = stopped | (jnp.sum(mask) == 0)
      params = _tree_where(skip, params, new_params)
      opt_state = _tree_where(skip, opt_state, new_opt)
      loss_sum = loss_sum + jnp.where(skip, 0.0, loss * jnp.sum(mask))
      return (params, opt_state, stopped, order, loss_sum), None

    def run_epoch(carry):
      epoch, params, opt_state, es, losses, curve = carry
      # Shuffle the real rows; padding sorts last so batches match sklearn's gen_batches.
      # Row i's sort key depends on (epoch, i) only, so extra padding never changes the order.
      key_epoch = jax.random.fold_in(key_shuffle, epoch)
      u = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key_epoch, i)))(
          jnp.arange(n_max))
      order = jnp.argsort(jnp.where(jnp.arange(n_max) < fold.train_count, u, 2.0))
      (params, opt_state, _, _, loss_sum), _ = jax.lax.scan(
          run_batch, (params, opt_state, es.stopped, order, jnp.zeros(())),
          jnp.arange(num_batches))
      score = accuracy(params, z, pairs, fold.val_idx, fold.val_mask)
      active = ~es.stopped
      better = active & (score > es.best_score)
      no_gain = score < es.best_score + settings.tol
      bad = jnp.where(active, jnp.where(no_gain, es.bad_epochs + 1, 0), es.bad_epochs)
      es = EarlyStopping(
          best_score=jnp.where(better, score, es.best_score),
          best_params=_tree_where(better, params, es.best_params),
          best_epoch=jnp.where(better, epoch + 1, es.best_epoch),
          bad_epochs=bad,
          stopped=es.stopped | (active & (bad > settings.patience)))
      jax.debug.callback(_PROGRESS, epoch + 1)
      losses = losses.at[epoch].set(jnp.where(active, loss_sum / fold.train_count, jnp.nan))
      curve = curve.at[epoch].set(jnp.where(active, score, jnp.nan))
      return epoch + 1, params, opt_state, es, losses, curve

    def keep_going(carry):
      epoch, es = carry[0], carry[3]
      return (epoch < settings.max_epochs) & ~es.stopped

    es = EarlyStopping(best_score=jnp.array(-jnp.inf), best_params=params,
                       best_epoch=jnp.array(0), bad_epochs=jnp.array(0),
                       stopped=jnp.array(False))
    nan_curve = jnp.full((settings.max_epochs,), jnp.nan)
    # A while loop: under vmap it runs until the last fold stops, and finished folds keep
    # their state through the `stopped` masks above.
    epochs_run, _, _, es, train_loss, val_curve = jax.lax.while_loop(
        keep_going, run_epoch, (jnp.array(0), params, opt_state, es, nan_curve, nan_curve))
    best = es.best_params
    x_test, _ = inputs(z, pairs, fold.test_idx)
    prob = jnp.where(fold.test_mask, jax.nn.sigmoid(model.apply({"params": best}, x_test)), 0.0)
    return TrainOutput(
        params=best,
        test_accuracy=accuracy(best, z, pairs, fold.test_idx, fold.test_mask),
        test_prob=prob,
        val_accuracy=es.best_score,
        best_epoch=es.best_epoch,
        epochs_run=jnp.sum(jnp.isfinite(val_curve)),
        train_loss=train_loss,
        val_curve=val_curve)

  return train


@functools.lru_cache(maxsize=None)
def _compiled(settings: TrainSettings, d: int, max_hidden: tuple[int, int], nested: bool,
              hidden_dim: int = 0):
  train = make_train(settings, d, max_hidden, hidden_dim)
  over_folds = jax.vmap(train, in_axes=(0, 0, None, 0))
  if nested:
    return jax.jit(jax.vmap(over_folds, in_axes=(0, 0, 0, 0)))
  return jax.jit(over_folds)


def fold_keys(seed: int, num_folds: int) -> jax.Array:
  """One root key per run; fold ``k`` trains with ``fold_in(root, k)``."""
  root = jax.random.key(seed)
  return jax.vmap(lambda k: jax.random.fold_in(root, k))(jnp.arange(num_folds))


def train_folds(settings: TrainSettings, seed: int, z: np.ndarray, pairs: PairData,
                fold: FoldData, max_hidden=(250, 125), hidden_dim: int = 0) -> TrainOutput:
  """Trains every fold in one compiled call.

  Args:
    z: ``float32 [folds, W, d]`` per-fold window representations.
    pairs: shared pairs ``[P]``.
    fold: per-fold indices, each with a leading ``folds`` axis.
    hidden_dim: derive the hidden sizes from this dimension (0: from ``d``).
  """
  num_folds, _, d = z.shape
  fn = _compiled(settings, d, tuple(max_hidden), False, int(hidden_dim))
  _PROGRESS.start(settings.max_epochs, f"train {num_folds} folds")
  try:
    return jax.block_until_ready(fn(fold_keys(seed, num_folds), jnp.asarray(z), pairs, fold))
  finally:
    _PROGRESS.stop()


def train_configs(settings: TrainSettings, seeds, z: np.ndarray, pairs: PairData,
                  fold: FoldData, max_hidden=(250, 125), hidden_dim: int = 0) -> TrainOutput:
  """Trains ``C`` equally shaped configurations x folds in one compiled call.

  Args:
    seeds: ``C`` run seeds.
    z: ``float32 [C, folds, W, d]``; ``pairs`` fields ``[C, P]``; ``fold`` fields ``[C, folds, ...]``.
  """
  _, num_folds, _, d = z.shape
  keys = jnp.stack([fold_keys(int(s), num_folds) for s in seeds])
  fn = _compiled(settings, d, tuple(max_hidden), True, int(hidden_dim))
  _PROGRESS.start(settings.max_epochs, f"train {len(seeds)} configs x {num_folds} folds")
  try:
    return jax.block_until_ready(fn(keys, jnp.asarray(z), pairs, fold))
  finally:
    _PROGRESS.stop()


def num_params(d: int, max_hidden=(250, 125), hidden_dim: int = 0) -> int:
  """Trainable parameters of the preference MLP for input size ``d``."""
  sizes = (d, *hidden_sizes(d, max_hidden, hidden_dim), 1)
  return int(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])))
