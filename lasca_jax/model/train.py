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
unchanged through ``jnp.where``. An epoch runs only the batches that hold real pairs (a while
loop to ``ceil(train_count / batch_size)``), so padding costs no training compute.

Execution (:func:`train_units`): the (configuration, fold) units are laid out on a
``Mesh`` of the local devices and split over them with ``shard_map`` (padded to a multiple of the
device count by repeating a unit that is marked inactive: it runs no epoch and its results are
dropped). On each device the units run ``lanes`` at a time: each group of ``lanes`` units is
``vmap``-ed, and the groups follow one another in a ``lax.map``. Under ``vmap`` the epoch loop
runs until the slowest unit of the group stops (finished units keep their state through the
``stopped`` masks), so on a CPU, where the MLP is compute bound, ``lanes = 1`` (each fold runs
exactly its own epochs, with unbatched matmuls) is the default; on an accelerator every unit of
a device shares one ``vmap``. Every unit is computed by the same program whatever the device
count, so results do not depend on it. Each unit's key, ``fold_in(key(seed), fold)``, is derived
inside the program, so a call runs no other JAX operation.
Inputs are padded up to a shape class (:func:`shape_class`) so that runs of slightly different
sizes reuse one compiled program; training is invariant to that padding. The compiled program has
no host callbacks, so JAX's persistent compilation cache
(:func:`lasca_jax.model.placement.enable_compilation_cache`) can
store it and a repeated run skips compilation; with that cache on, the program is also kept as a
``jax.export`` artefact (:mod:`lasca_jax.model.programs`), so a repeated run skips tracing and
lowering as well.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lasca_jax.method import protocols
from lasca_jax.model import mlp, placement, programs
from lasca_jax.model.mlp import PreferenceMLP
from lasca_jax.model.placement import Layout
from lasca_jax.data import checks


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  """Static training and model settings: they shape the compiled program.

  Built from a config by :func:`lasca_jax.run.settings.train_settings`; ``configs/default.py``
  holds every default, so a test or a notebook writes
  ``dataclasses.replace(settings.train_settings(config), ...)``.
  """
  max_epochs: int
  learning_rate: float
  alpha: float
  tol: float
  patience: int
  batch_size: int
  max_hidden: tuple[int, int]   # config.model.max_hidden: caps of the two hidden sizes
  hidden_dim: int               # config.model.hidden_from_dim (0: sizes from the input size)
  fast_compile: bool = False    # config.train.fast_compile: CPU_FAST_COMPILER_OPTIONS
  # Remedies for a head that stays constant on small window-to-window changes (departures from
  # the paper, off by default; docs/method.md "When the head learns nothing"):
  standardize: bool = False     # config.train.standardize: pair differences / their training RMS
  min_epochs: int = 0           # config.train.min_epochs: early stopping may stop only after
  monitor: str = "accuracy"     # config.train.monitor: validation "accuracy" (paper) or "loss"
  # config.train.select: a grid ((name, values), ...) of the SELECTABLE settings; every point
  # trains beside the folds in the same call and each fold keeps the point with the best
  # validation accuracy (never test). () trains the settings above only.
  select: tuple = ()
  # config.model.head: "mlp" (the paper's) or "logistic": logistic regression on the same pair
  # differences (a linear baseline), fitted to convergence by L-BFGS with sklearn's
  # LogisticRegression objective, C = logistic_c (config.model.logistic_c).
  head: str = "mlp"
  logistic_c: float = 1.0

  def grid(self) -> list[dict[str, Any]]:
    """Every point of :attr:`select` (the product, first values first) as a full set of the
    selectable settings (the others at this object's values); ``[]`` without a grid."""
    if not self.select:
      return []
    names = [n for n, _ in self.select]
    base = {n: getattr(self, n) for n in SELECTABLE}
    return [dict(base, **dict(zip(names, values)))
            for values in itertools.product(*[v for _, v in self.select])]

  def hidden_sizes(self, d: int) -> tuple[int, ...]:
    """The MLP's hidden sizes for input size ``d`` (:func:`lasca_jax.model.mlp.hidden_sizes`);
    ``()`` for the logistic head (one linear layer)."""
    if self.head == "logistic":
      return ()
    return mlp.hidden_sizes(d, self.max_hidden, self.hidden_dim)

  def num_params(self, d: int) -> int:
    """Trainable parameters of the MLP for input size ``d``."""
    return mlp.num_params(d, self.hidden_sizes(d))


# Settings train.select may vary inside one compiled call (traced per unit, :class:`Hyper`).
SELECTABLE = ("alpha", "learning_rate", "standardize", "min_epochs", "monitor")


def _parse_value(name: str, text: str):
  text = text.strip()
  if name in ("alpha", "learning_rate"):
    value = float(text)
    if not (value > 0 if name == "learning_rate" else value >= 0) or not math.isfinite(value):
      raise ValueError(f"{name}={text} is out of range")
    return value
  if name == "standardize":
    if text.lower() not in ("true", "false", "1", "0"):
      raise ValueError(f"standardize={text} is not true/false")
    return text.lower() in ("true", "1")
  if name == "min_epochs":
    value = int(text)
    if value < 0:
      raise ValueError(f"min_epochs={text} is negative")
    return value
  if text not in ("accuracy", "loss"):
    raise ValueError(f"monitor={text} is not accuracy or loss")
  return text


def parse_select(spec: str) -> tuple:
  """``config.train.select`` (``"alpha=1,0.1;standardize=false,true"``: ``;`` between settings,
  ``,`` between values) as :attr:`TrainSettings.select`; ``""`` is ``()``.

  Raises:
    ValueError: one line naming ``train.select``, the setting and what it accepts.
  """
  out, seen = [], set()
  for part in [p for p in str(spec).split(";") if p.strip()]:
    name, eq, values = part.partition("=")
    name = name.strip()
    try:
      if not eq or name not in SELECTABLE:
        raise ValueError(f"{part.strip()!r} is not <setting>=<v1>,<v2>,... of "
                         f"{', '.join(SELECTABLE)}")
      if name in seen:
        raise ValueError(f"{name} is given twice")
      parsed = tuple(_parse_value(name, v) for v in values.split(",") if v.strip())
      if not parsed:
        raise ValueError(f"{name} has no values")
    except ValueError as e:
      raise ValueError(f"train.select={spec!r}: {e} (e.g. \"alpha=1,0.1;standardize=false,true\""
                       ")") from None
    seen.add(name)
    out.append((name, parsed))
  return tuple(out)


def _select_ok(spec) -> bool:
  try:
    parse_select(spec)
    return isinstance(spec, str)
  except ValueError:
    return False


class Hyper(NamedTuple):
  """One unit's selectable settings as arrays (``train.select``): traced inside the program."""
  alpha: jax.Array          # float32 []
  learning_rate: jax.Array  # float32 []
  standardize: jax.Array    # bool []
  min_epochs: jax.Array     # int32 []
  monitor_loss: jax.Array   # bool []: early stopping on validation loss


def hyper_arrays(points: list[dict[str, Any]]) -> Hyper:
  """:class:`Hyper` with a leading axis over ``points`` (:meth:`TrainSettings.grid`)."""
  return Hyper(np.array([p["alpha"] for p in points], np.float32),
               np.array([p["learning_rate"] for p in points], np.float32),
               np.array([bool(p["standardize"]) for p in points]),
               np.array([int(p["min_epochs"]) for p in points], np.int32),
               np.array([p["monitor"] == "loss" for p in points]))


class Selection(NamedTuple):
  """What ``train.select`` chose per unit (host arrays): ``choice int [N]`` (index into
  :meth:`TrainSettings.grid`) and every point's best validation accuracy ``[N, G]``."""
  choice: np.ndarray
  val_accuracy: np.ndarray


class PairData(NamedTuple):
  """Pairs shared by all folds: ``[P]`` each."""
  first: jax.Array
  second: jax.Array
  label: jax.Array


# One fold's (or, with a leading axis, every fold's) padded pair indices: train_idx
# [n_train_max] (a multiple of batch_size), train_count [], val_idx/val_mask [n_val_max],
# test_idx/test_mask [n_test_max]. The one type the protocols build and the trainer reads.
FoldData = protocols.FoldIndices


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
  selection: Any = None       # train.select's Selection (host side), else None


programs.register_types(PairData, FoldData, TrainOutput, Hyper)


def early_stopping_step(es: EarlyStopping, score, params, epoch, tol: float, patience: int,
                        min_epochs: int = 0) -> EarlyStopping:
  """The state after an epoch that scored ``score`` on validation: the best score, weights and
  epoch are kept with ``jnp.where``; an epoch not beating the best by ``tol`` counts as bad, and
  more than ``patience`` bad epochs in a row stop training (a stopped run's state is frozen) once
  at least ``min_epochs`` epochs have run."""
  active = ~es.stopped
  better = active & (score > es.best_score)
  no_gain = score < es.best_score + tol
  bad = jnp.where(active, jnp.where(no_gain, es.bad_epochs + 1, 0), es.bad_epochs)
  stop = active & (bad > patience)
  if not isinstance(min_epochs, int) or min_epochs:   # a traced value (train.select) or > 0
    stop = stop & (epoch + 1 >= min_epochs)
  return EarlyStopping(
      best_score=jnp.where(better, score, es.best_score),
      best_params=_tree_where(better, params, es.best_params),
      best_epoch=jnp.where(better, epoch + 1, es.best_epoch),
      bad_epochs=bad,
      stopped=es.stopped | stop)


def _tree_where(cond, a, b):
  return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def _l2(params) -> jax.Array:
  return sum(jnp.sum(p["kernel"] ** 2) for p in jax.tree.leaves(
      params, is_leaf=lambda n: isinstance(n, dict) and "kernel" in n))


class Learner(NamedTuple):
  """The model, its optimiser and one minibatch update (:func:`make_learner`)."""
  model: PreferenceMLP
  tx: optax.GradientTransformation
  step: Any   # (params, opt_state, x, y, mask) -> (loss, params, opt_state)


def make_learner(settings: TrainSettings, d: int, alpha=None, learning_rate=None) -> Learner:
  """The MLP for input size ``d``, Adam, and the minibatch update :func:`make_train` runs:
  the masked mean cross-entropy plus the L2 term, its gradient, one Adam step. Benchmarks time
  ``step`` on its own (``experiments/benchmark_scale.py --sections=step``). ``alpha`` and
  ``learning_rate`` (traced values under ``train.select``) override the settings'."""
  model = PreferenceMLP(settings.hidden_sizes(d))
  alpha = settings.alpha if alpha is None else alpha
  tx = optax.adam(settings.learning_rate if learning_rate is None else learning_rate,
                  b1=0.9, b2=0.999, eps=1e-8)

  def batch_loss(params, x, y, mask):
    count = jnp.maximum(jnp.sum(mask), 1)
    bce = optax.sigmoid_binary_cross_entropy(model.apply({"params": params}, x), y)
    data = jnp.sum(jnp.where(mask, bce, 0.0)) / count
    return data + 0.5 * alpha * _l2(params) / count

  def step(params, opt_state, x, y, mask):
    loss, grads = jax.value_and_grad(batch_loss)(params, x, y, mask)
    updates, new_opt = tx.update(grads, opt_state, params)
    return loss, optax.apply_updates(params, updates), new_opt

  return Learner(model, tx, step)


def pair_inputs(z, pairs: PairData, idx):
  """``(z[second] - z[first], label)`` of the pairs at ``idx``."""
  return z[pairs.second[idx]] - z[pairs.first[idx]], pairs.label[idx].astype(jnp.float32)


def pair_rms(z, pairs: PairData, fold: FoldData) -> jax.Array:
  """``[d]``: the root mean square of each column of the fold's training pair differences (1
  where a column never changes). Pairs come in both orders, so their mean difference is 0 and
  this is their standard deviation."""
  n_max = fold.train_idx.shape[0]
  mask = jnp.arange(n_max) < fold.train_count
  x, _ = pair_inputs(z, pairs, fold.train_idx)
  ms = jnp.sum(jnp.where(mask[:, None], x * x, 0.0), 0) / jnp.maximum(fold.train_count, 1)
  rms = jnp.sqrt(ms)
  return jnp.where(rms > 1e-12, rms, 1.0)


def unscale_first_layer(params, scale):
  """Parameters on ``z / scale`` made parameters on ``z``: the first kernel's rows divided by
  ``scale`` (exactly the same function; a bundle then needs no scale)."""
  first = "SklearnDense_0"
  layer = dict(params[first], kernel=params[first]["kernel"] / scale[:, None])
  return {**params, first: layer}


LOGISTIC_MAX_ITER = 1000     # L-BFGS iterations at most (convex: it stops at the optimum)
LOGISTIC_TOL = 1e-7          # ... once the objective's gradient norm falls below this


def make_logistic_train(settings: TrainSettings, d: int):
  """``train(key, z, pairs, fold) -> TrainOutput`` of the logistic head: scikit-learn's
  ``LogisticRegression(C=settings.logistic_c)`` objective (L2 on the weights, not the intercept)
  on the fold's training pairs, divided by ``C * n`` (the same minimiser), fitted from zeros by
  full-batch L-BFGS until the gradient norm is below :data:`LOGISTIC_TOL`. ``best_epoch`` and
  ``epochs_run`` hold the iterations; the curves hold the final loss and validation accuracy at
  index 0. The key is unused (the optimum is unique)."""
  model = PreferenceMLP(())

  def accuracy(params, z, pairs, idx, mask):
    x, y = pair_inputs(z, pairs, idx)
    pred = (model.apply({"params": params}, x) > 0).astype(jnp.float32)
    return jnp.sum(jnp.where(mask, pred == y, False)) / jnp.maximum(jnp.sum(mask), 1)

  def train(key, z, pairs: PairData, fold: FoldData, active=True, hyper=None) -> TrainOutput:
    del key, hyper
    n_max = fold.train_idx.shape[0]
    mask = jnp.arange(n_max) < fold.train_count
    x, y = pair_inputs(z, pairs, fold.train_idx)
    n = jnp.maximum(jnp.sum(mask), 1).astype(z.dtype)

    def objective(params):
      bce = optax.sigmoid_binary_cross_entropy(model.apply({"params": params}, x), y)
      w = params["SklearnDense_0"]["kernel"]
      return (jnp.sum(jnp.where(mask, bce, 0.0)) / n +
              0.5 * jnp.sum(w * w) / (settings.logistic_c * n))

    params = {"SklearnDense_0": {"kernel": jnp.zeros((d, 1), z.dtype),
                                 "bias": jnp.zeros((1,), z.dtype)}}
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def body(carry):
      params, state, i, _ = carry
      value, grad = value_and_grad(params, state=state)
      updates, state = opt.update(grad, state, params, value=value, grad=grad,
                                  value_fn=objective)
      return (optax.apply_updates(params, updates), state, i + 1,
              optax.tree_utils.tree_norm(grad))

    def keep_going(carry):
      _, _, i, grad_norm = carry
      return jnp.asarray(active) & (i < LOGISTIC_MAX_ITER) & (grad_norm >= LOGISTIC_TOL)

    params, _, iterations, _ = jax.lax.while_loop(
        keep_going, body, (params, opt.init(params), jnp.array(0), jnp.array(jnp.inf, z.dtype)))
    x_test, _ = pair_inputs(z, pairs, fold.test_idx)
    prob = jnp.where(fold.test_mask, jax.nn.sigmoid(model.apply({"params": params}, x_test)),
                     0.0)
    val = accuracy(params, z, pairs, fold.val_idx, fold.val_mask)
    curve = jnp.full((settings.max_epochs,), jnp.nan)
    return TrainOutput(
        params=params, test_accuracy=accuracy(params, z, pairs, fold.test_idx, fold.test_mask),
        test_prob=prob, val_accuracy=val, best_epoch=iterations, epochs_run=iterations,
        train_loss=curve.at[0].set(objective(params)), val_curve=curve.at[0].set(val))

  return train


def make_train(settings: TrainSettings, d: int):
  """Returns the pure ``train(key, z, pairs, fold) -> TrainOutput`` for input size ``d``
  (:func:`make_logistic_train` for ``head="logistic"``).

  ``z`` is ``float32 [W, d]``: one fold's window representations; pairs index into it.
  """
  if settings.head == "logistic":
    return make_logistic_train(settings, d)
  model, tx, step = make_learner(settings, d)
  bs = settings.batch_size

  def accuracy(params, z, pairs, idx, mask):
    x, y = pair_inputs(z, pairs, idx)
    pred = (model.apply({"params": params}, x) > 0).astype(jnp.float32)
    correct = jnp.sum(jnp.where(mask, pred == y, False))
    return correct / jnp.maximum(jnp.sum(mask), 1)

  def neg_loss(params, z, pairs, idx, mask):   # higher is better, as accuracy
    x, y = pair_inputs(z, pairs, idx)
    bce = optax.sigmoid_binary_cross_entropy(model.apply({"params": params}, x), y)
    return -jnp.sum(jnp.where(mask, bce, 0.0)) / jnp.maximum(jnp.sum(mask), 1)

  def train(key, z, pairs: PairData, fold: FoldData, active=True,
            hyper: Hyper | None = None) -> TrainOutput:
    """``active=False`` (a padding unit) runs no epoch; its outputs are meaningless. ``hyper``
    (``train.select``) replaces the selectable settings by this unit's traced values."""
    raw_z, tx_, step_ = z, tx, step
    if hyper is None:
      monitor = {"accuracy": accuracy, "loss": neg_loss}[settings.monitor]
      min_epochs, rescaled = settings.min_epochs, settings.standardize
      if settings.standardize:   # trained on z / rms, which divides every pair difference by it
        scale = pair_rms(z, pairs, fold)
        z = z / scale
    else:
      _, tx_, step_ = make_learner(settings, d, hyper.alpha, hyper.learning_rate)
      monitor = lambda *a: jnp.where(hyper.monitor_loss, neg_loss(*a), accuracy(*a))
      min_epochs, rescaled = hyper.min_epochs, True
      scale = jnp.where(hyper.standardize, pair_rms(z, pairs, fold), 1.0)
      z = z / scale
    key_init, key_shuffle = jax.random.split(key)
    params = model.init(key_init, jnp.zeros((1, d), z.dtype))["params"]
    opt_state = tx_.init(params)
    n_max = fold.train_idx.shape[0]
    real_batches = jnp.minimum((fold.train_count + bs - 1) // bs, n_max // bs)

    def run_batch(carry, b):
      params, opt_state, stopped, order, loss_sum = carry
      slot = b * bs + jnp.arange(bs)
      mask = slot < fold.train_count
      x, y = pair_inputs(z, pairs, fold.train_idx[order[slot]])
      loss, new_params, new_opt = step_(params, opt_state, x, y, mask)
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
      # Only the batches holding real pairs run; all-padding ones would leave the state as is.
      params, opt_state, _, _, loss_sum, _ = jax.lax.while_loop(
          lambda c: c[-1] < real_batches, lambda c: (*run_batch(c[:-1], c[-1])[0], c[-1] + 1),
          (params, opt_state, es.stopped, order, jnp.zeros(()), jnp.array(0)))
      score = monitor(params, z, pairs, fold.val_idx, fold.val_mask)
      val_acc = (score if hyper is None and settings.monitor == "accuracy" else
                 accuracy(params, z, pairs, fold.val_idx, fold.val_mask))   # the curve's
      active = ~es.stopped
      es = early_stopping_step(es, score, params, epoch, settings.tol, settings.patience,
                               min_epochs)
      losses = losses.at[epoch].set(jnp.where(active, loss_sum / fold.train_count, jnp.nan))
      curve = curve.at[epoch].set(jnp.where(active, val_acc, jnp.nan))
      return epoch + 1, params, opt_state, es, losses, curve

    def keep_going(carry):
      epoch, _, _, es, _, _ = carry
      return (epoch < settings.max_epochs) & ~es.stopped

    es = EarlyStopping(best_score=jnp.array(-jnp.inf), best_params=params,
                       best_epoch=jnp.array(0), bad_epochs=jnp.array(0),
                       stopped=~jnp.asarray(active))
    nan_curve = jnp.full((settings.max_epochs,), jnp.nan)
    # A while loop: under vmap it runs until the last fold stops, and finished folds keep
    # their state through the `stopped` masks above.
    epochs_run, _, _, es, train_loss, val_curve = jax.lax.while_loop(
        keep_going, run_epoch, (jnp.array(0), params, opt_state, es, nan_curve, nan_curve))
    best = es.best_params
    val_accuracy = es.best_score
    if rescaled:   # the same function on the raw z, which is what a bundle sees
      best = unscale_first_layer(best, scale)
      z = raw_z
    if hyper is not None or settings.monitor != "accuracy":
      val_accuracy = accuracy(best, z, pairs, fold.val_idx, fold.val_mask)
    x_test, _ = pair_inputs(z, pairs, fold.test_idx)
    prob = jnp.where(fold.test_mask, jax.nn.sigmoid(model.apply({"params": best}, x_test)), 0.0)
    return TrainOutput(
        params=best,
        test_accuracy=accuracy(best, z, pairs, fold.test_idx, fold.test_mask),
        test_prob=prob,
        val_accuracy=val_accuracy,
        best_epoch=es.best_epoch,
        epochs_run=jnp.sum(jnp.isfinite(val_curve)),
        train_loss=train_loss,
        val_curve=val_curve)

  return train


def shape_class(n: int, multiple: int = 1) -> int:
  """``n`` rounded up to its shape class: a multiple of ``multiple`` on a grid of 8 steps per
  octave (at most 12.5 % larger), so runs of slightly different sizes share one compiled program.
  """
  m = -(-int(n) // multiple)
  if m > 8:
    step = 1 << (m.bit_length() - 4)   # 2 ** (floor(log2 m) - 3)
    m = -(-m // step) * step
  return m * multiple


def _pad_axis(a, n: int, axis: int):
  a = np.asarray(a)
  if a.shape[axis] == n:
    return a
  width = [(0, 0)] * a.ndim
  width[axis] = (0, n - a.shape[axis])
  return np.pad(a, width)


def _to_shape_classes(z, pairs: PairData, fold: FoldData, batch_size: int):
  """Pads windows, pairs and every fold index array (axis 1) up to their shape classes."""
  z = _pad_axis(z, shape_class(z.shape[1]), 1)
  p = shape_class(np.shape(pairs.label)[1])
  pairs = PairData(*[_pad_axis(a, p, 1) for a in pairs])
  n_train = shape_class(np.shape(fold.train_idx)[1], batch_size)
  n_val = shape_class(np.shape(fold.val_idx)[1])
  n_test = shape_class(np.shape(fold.test_idx)[1])
  fold = FoldData(_pad_axis(fold.train_idx, n_train, 1), np.asarray(fold.train_count),
                  _pad_axis(fold.val_idx, n_val, 1), _pad_axis(fold.val_mask, n_val, 1),
                  _pad_axis(fold.test_idx, n_test, 1), _pad_axis(fold.test_mask, n_test, 1))
  return z, pairs, fold


def _unit_key(seed, fold_number):
  return jax.random.fold_in(jax.random.key(seed), fold_number)


@functools.lru_cache(maxsize=None)
def _program(settings: TrainSettings, d: int, lanes: int, devices: tuple):
  """``jit`` of all units: ``shard_map`` over ``devices``, then groups of ``lanes`` per device.

  The units' keys are derived inside the program from their seeds and fold numbers, so a call
  runs no other (eagerly compiled) JAX operation.
  """
  train = make_train(settings, d)
  lane_group = jax.vmap(train)

  def local(seeds, fold_numbers, active, z, pairs, fold, *hyper):  # [n, ...], n: lanes multiple
    keys = jax.vmap(_unit_key)(seeds, fold_numbers)
    units = (keys, z, pairs, fold, active, *hyper)   # hyper: (Hyper,) under train.select
    if lanes == 1:
      return jax.lax.map(lambda a: train(*a), units)
    n = keys.shape[0]
    grouped = jax.tree.map(lambda a: a.reshape((n // lanes, lanes) + a.shape[1:]), units)
    out = jax.lax.map(lambda a: lane_group(*a), grouped)
    return jax.tree.map(lambda a: a.reshape((n,) + a.shape[2:]), out)

  options = placement.compiler_options(settings.fast_compile, devices)
  if len(devices) == 1:
    return jax.jit(local, compiler_options=options)
  # Units never communicate, so the replication checks of shard_map are not needed.
  return jax.jit(jax.shard_map(local, mesh=programs.units_mesh(devices), in_specs=programs.UNITS,
                               out_specs=programs.UNITS, check_vma=False),
                 compiler_options=options)


def _seed_array(seeds) -> np.ndarray:
  """Seeds as ``uint32``: ``key(s)`` inside the program equals the eager ``key(s)`` of a Python
  int for every ``s`` in ``[0, 2**32)`` (larger ints would wrap around)."""
  seeds = [int(s) for s in np.ravel(seeds)]
  for s in seeds:
    if not 0 <= s < 2**32:
      raise ValueError(f"seed {s} is outside [0, {2**32 - 1}]: use a 32-bit seed")
  return np.asarray(seeds, np.uint32)


def train_units(settings: TrainSettings, seeds, fold_numbers, z: np.ndarray, pairs: PairData,
                fold: FoldData, layout: Layout = Layout()) -> TrainOutput:
  """Trains ``N`` independent (configuration, fold) units in one compiled call.

  Args:
    seeds: ``[N]`` run seeds in ``[0, 2**32)``.
    fold_numbers: ``[N]``; unit ``n`` trains with the key ``fold_in(key(seeds[n]),
      fold_numbers[n])``, as fold ``fold_numbers[n]`` of a run with that seed (:func:`fold_keys`).
    z: ``float32 [N, W, d]`` window representations.
    pairs: fields ``[N, P]``.
    fold: fields ``[N, ...]``.
    layout: devices and lanes (:class:`Layout`); the result does not depend on it.

  Returns:
    The units' :class:`TrainOutput` as host (numpy) arrays with leading axis ``N``; ``test_prob``
    keeps the caller's ``n_test`` columns.
  """
  num_units, _, d = np.shape(z)
  n_test = np.shape(fold.test_idx)[1]
  points = settings.grid()
  hyper = None
  if points:   # every grid point as further units, point-major: unit g * N + n
    g = len(points)
    seeds, fold_numbers = np.tile(np.ravel(seeds), g), np.tile(np.ravel(fold_numbers), g)
    z, pairs, fold = jax.tree.map(lambda a: np.concatenate([np.asarray(a)] * g),
                                  (np.asarray(z), pairs, fold))
    hyper = jax.tree.map(lambda a: np.repeat(a, num_units, axis=0), hyper_arrays(points))
  fn, args, resolved, devices = _padded_call(settings, seeds, fold_numbers, z, pairs, fold,
                                             layout, hyper)
  out = jax.device_get(programs.call(fn, args, repr((settings, d, resolved.lanes)), devices,
                                     placement.compiler_options(settings.fast_compile, devices)))
  total = num_units * max(len(points), 1)
  out = jax.tree.map(lambda a: np.asarray(a)[:total], out)
  out = out._replace(test_prob=out.test_prob[:, :n_test])
  return select(out, num_units, len(points)) if points else out


def select(out: TrainOutput, num_units: int, num_points: int) -> TrainOutput:
  """Per unit, the grid point with the best validation accuracy (the first on ties): its outputs,
  and the :class:`Selection`. Test pairs are never read."""
  val = np.asarray(out.val_accuracy).reshape(num_points, num_units)
  choice = np.argmax(val, axis=0)
  pick = lambda a: np.asarray(a).reshape((num_points, num_units) + np.shape(a)[1:])[
      choice, np.arange(num_units)]
  chosen = jax.tree.map(pick, out._replace(selection=None))
  return chosen._replace(selection=Selection(choice, val.T.copy()))


def program_call(settings: TrainSettings, seeds, fold_numbers, z: np.ndarray, pairs: PairData,
                 fold: FoldData, layout: Layout = Layout()) -> tuple[Any, tuple]:
  """The jitted program and padded arguments :func:`train_units` calls (same arguments; it calls
  them through :func:`lasca_jax.model.programs.call`): a benchmark can
  ``fn.trace(*args).lower().compile()`` to time each phase."""
  return _padded_call(settings, seeds, fold_numbers, z, pairs, fold, layout)[:2]


def _padded_call(settings, seeds, fold_numbers, z, pairs, fold, layout, hyper=None):
  """:func:`program_call`'s program and arguments, with the plan and devices they were made for
  (``hyper``: the units' :class:`Hyper` under ``train.select``)."""
  num_units, _, d = np.shape(z)
  resolved = placement.plan(num_units, layout)
  devices = tuple(placement.local_devices(layout.devices)[:resolved.devices])
  z, pairs, fold = _to_shape_classes(z, pairs, fold, settings.batch_size)
  extra = resolved.padded_units - num_units

  def pad_units(a):   # repeat unit 0, marked inactive: it runs no epoch, its results are dropped
    a = np.asarray(a)
    return np.concatenate([a, np.repeat(a[:1], extra, axis=0)]) if extra else a

  active = np.arange(resolved.padded_units) < num_units
  args = jax.tree.map(pad_units, (_seed_array(seeds), np.asarray(fold_numbers, np.int32)))
  args += (active,) + jax.tree.map(pad_units, (np.asarray(z, np.float32), pairs, fold))
  if hyper is not None:
    args += (jax.tree.map(pad_units, hyper),)
  return _program(settings, d, resolved.lanes, devices), args, resolved, devices


def fold_keys(seed: int, num_folds: int) -> jax.Array:
  """The units' keys of one run: fold ``k`` trains with ``fold_in(key(seed), k)``."""
  return jax.vmap(_unit_key, in_axes=(None, 0))(seed, jnp.arange(num_folds))


def train_folds(settings: TrainSettings, seed: int, z: np.ndarray, pairs: PairData,
                fold: FoldData, layout: Layout = Layout()) -> TrainOutput:
  """Trains every fold in one compiled call (:func:`train_units`).

  Args:
    z: ``float32 [folds, W, d]`` per-fold window representations.
    pairs: shared pairs ``[P]``.
    fold: per-fold indices, each with a leading ``folds`` axis.
  """
  seeds, fold_numbers, per_fold = fold_units(seed, np.shape(z)[0], pairs)
  return train_units(settings, seeds, fold_numbers, z, per_fold, fold, layout)


def fold_units(seed: int, num_folds: int,
               pairs: PairData) -> tuple[np.ndarray, np.ndarray, PairData]:
  """The folds of one run as :func:`train_units`'s units: ``(seeds, fold_numbers, pairs)``,
  the shared pairs broadcast to every fold."""
  per_fold = PairData(*[np.broadcast_to(np.asarray(a), (num_folds,) + np.shape(a)) for a in pairs])
  return np.full(num_folds, seed), np.arange(num_folds), per_fold


def train_configs(settings: TrainSettings, seeds, z: np.ndarray, pairs: PairData,
                  fold: FoldData, layout: Layout = Layout()) -> TrainOutput:
  """Trains ``C`` equally shaped configurations x folds in one compiled call.

  Args:
    seeds: ``C`` run seeds.
    z: ``float32 [C, folds, W, d]``; ``pairs`` fields ``[C, P]``; ``fold`` fields ``[C, folds, ...]``.
  """
  num_configs, num_folds = np.shape(z)[:2]
  unit_seeds = np.repeat(np.asarray([int(s) for s in seeds]), num_folds)
  fold_numbers = np.tile(np.arange(num_folds), num_configs)
  flat = lambda a: np.asarray(a).reshape((num_configs * num_folds,) + np.shape(a)[2:])
  per_unit = PairData(*[np.repeat(np.asarray(a), num_folds, axis=0) for a in pairs])
  out = train_units(settings, unit_seeds, fold_numbers, flat(z), per_unit,
                    jax.tree.map(flat, fold), layout)
  return jax.tree.map(lambda a: a.reshape((num_configs, num_folds) + a.shape[1:]), out)


def clear_compiled() -> None:
  """Forgets the compiled programs of this process (a benchmark's cold start)."""
  _program.cache_clear()
  programs.clear()


def run_flops(out: TrainOutput, fold: FoldData, d: int, hidden: tuple[int, int]) -> float:
  """Matmul FLOPs the units really needed: per unit, ``epochs_run`` epochs over its real
  training pairs and its validation pairs, and the final test pass (padding not counted)."""
  forward, step = mlp.flops_per_pair(d, hidden)
  epochs = np.asarray(out.epochs_run, np.float64).reshape(-1)
  n_train = np.asarray(fold.train_count, np.float64).reshape(-1)
  n_val = np.asarray(fold.val_mask).reshape(epochs.size, -1).sum(axis=1)
  n_test = np.asarray(fold.test_mask).reshape(epochs.size, -1).sum(axis=1)
  return float(np.sum(epochs * (n_train * step + n_val * forward) + n_test * forward))


def _two_sizes(v) -> bool:
  return (isinstance(v, (tuple, list)) and len(v) == 2 and
          all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in v))


# The config fields of TrainSettings, and what each accepts (collected by run/validate.py).
FIELDS = (
    ("train.max_epochs", checks.int_at_least(1)),
    ("train.learning_rate", checks.number_in(0, math.inf, lo_open=True)),
    ("train.alpha", checks.number_in(0, math.inf)),
    ("train.tol", checks.number_in(0, math.inf)),
    ("train.patience", checks.int_at_least(1)),
    ("train.batch_size", checks.int_at_least(1)),
    ("train.fast_compile", checks.BOOL),
    ("train.standardize", checks.BOOL),
    ("train.min_epochs", checks.int_at_least(0)),
    ("train.monitor", checks.one_of(("accuracy", "loss"))),
    ("train.select", (_select_ok, "'' or <setting>=<v1>,<v2>;... of " + ", ".join(SELECTABLE))),
)
MODEL_FIELDS = (("model.max_hidden", (_two_sizes, "two integers >= 1")),
                ("model.head", checks.one_of(("mlp", "logistic"))),
                ("model.logistic_c", checks.number_in(0, math.inf, lo_open=True)))
