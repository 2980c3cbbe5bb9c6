"""Model-size bookkeeping for Sec. 5.5 (computational efficiency).

LaScA trains only the preference MLP, ``d -> h1 -> h2 -> 1`` with
``(h1, h2) = (min(d // 2, 250), min(d // 4, 125))`` (at least one unit each, as in
``lasca_jax.train``), on the window-difference representation of size ``d``; the sentence
transformer stays frozen. The trainable count is therefore

  ``d * h1 + h1 + h1 * h2 + h2 + h2 + 1``  (weights plus biases of the three dense layers).

Reference sizes: 15 MFCCs -> 140; 58 face values -> 2,146; a 768-d text embedding -> 223,751;
768 + 73 fused multimodal -> 242,001 (the paper quotes "129 to 230k").
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

MAX_HIDDEN = (250, 125)


def mlp_hidden_sizes(d: int, max_hidden: Sequence[int] = MAX_HIDDEN) -> tuple[int, int]:
  """``(min(d // 2, 250), min(d // 4, 125))``, floored at one unit."""
  if d < 1:
    raise ValueError(f"input dimension must be positive, got {d}")
  return (max(1, min(d // 2, max_hidden[0])), max(1, min(d // 4, max_hidden[1])))


def preference_mlp_param_count(d: int, max_hidden: Sequence[int] = MAX_HIDDEN) -> int:
  """Trainable parameters (weights and biases) of the preference MLP for input size ``d``."""
  sizes = (d, *mlp_hidden_sizes(d, max_hidden), 1)
  return int(sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:])))


def frozen_encoder_param_count(model: Any) -> int:
  """All parameters of a torch module (e.g. a ``SentenceTransformer``), trainable or not.

  ``model.parameters()`` yields each shared (tied) tensor once, so tied embeddings are not
  double counted.
  """
  return int(sum(p.numel() for p in model.parameters()))


def seconds_per_sample(fn: Callable[[Sequence[Any]], Any], samples: Sequence[Any], *,
                       warmup: int = 1, repeats: int = 3,
                       clock: Callable[[], float] = time.perf_counter) -> float:
  """Median wall time of ``fn(samples)`` over ``repeats`` calls, divided by ``len(samples)``.

  For the Sec. 5.5 latency figure pass the end-to-end step, e.g. ``lambda batch:
  predict(encoder.encode(prompts_of(batch)))``; ``warmup`` calls first are not timed (model
  loading, JIT compilation). The paper quotes 80-140 ms per sample on a laptop GPU.
  """
  if not len(samples):
    raise ValueError("no samples to time")
  for _ in range(warmup):
    fn(samples)
  times = []
  for _ in range(max(1, repeats)):
    start = clock()
    fn(samples)
    times.append(clock() - start)
  return float(sorted(times)[len(times) // 2]) / len(samples)


def efficiency_summary(input_dims: Mapping[str, int],
                       encoders: Mapping[str, Any] | None = None,
                       max_hidden: Sequence[int] = MAX_HIDDEN) -> list[dict[str, Any]]:
  """Rows for a Sec. 5.5 table: trainable MLP size per representation, frozen encoder sizes.

  Args:
    input_dims: representation label (e.g. ``"audio features"``, ``"MPNet(F) multimodal"``) ->
      input dimension ``d``.
    encoders: encoder label -> loaded torch model (optional).
    max_hidden: hidden-size caps.

  Returns:
    One dict per entry: ``{"name", "kind": "trainable MLP"|"frozen encoder", "input_dim",
    "hidden", "params"}`` (``input_dim``/``hidden`` None for encoders).
  """
  rows = [{"name": k, "kind": "trainable MLP", "input_dim": int(d),
           "hidden": mlp_hidden_sizes(int(d), max_hidden),
           "params": preference_mlp_param_count(int(d), max_hidden)}
          for k, d in input_dims.items()]
  for k, m in (encoders or {}).items():
    rows.append({"name": k, "kind": "frozen encoder", "input_dim": None, "hidden": None,
                 "params": frozen_encoder_param_count(m)})
  return rows
