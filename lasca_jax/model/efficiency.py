"""Model-size bookkeeping for Sec. 5.5 (computational efficiency).

LaScA trains only the preference MLP, ``d -> h1 -> h2 -> 1`` with
``(h1, h2) = (min(d // 2, 250), min(d // 4, 125))`` (at least one unit each, as in
``lasca_jax.model.train``), on the window-difference representation of size ``d``; the sentence
transformer stays frozen. The trainable count is therefore

  ``d * h1 + h1 + h1 * h2 + h2 + h2 + 1``  (weights plus biases of the three dense layers).

Reference sizes: 15 MFCCs -> 140; 58 face values -> 2,146; a 768-d text embedding -> 223,751;
768 + 73 fused multimodal -> 242,001 (the paper quotes "129 to 230k").

The trainable sizes are ``train.TrainSettings.hidden_sizes`` / ``num_params``; the one-window
decision path whose latency Sec. 5.5 quotes is :mod:`lasca_jax.inference.stream`.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence


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


PAPER_LATENCY_MS = (80.0, 140.0)   # Sec. 5.5: end-to-end per sample, i5-11th gen + RTX 3060 laptop.
