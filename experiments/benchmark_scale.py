"""Scale benchmark: text-encoder throughput against the matmul peak (encoder section).

  python experiments/benchmark_scale.py --config=configs/synthetic.py
  python experiments/benchmark_scale.py --config=configs/synthetic.py --encoder_prompts=4000 \
      --token_budgets=0,4096,8192,16384 --profile=/tmp/encoder_profile.txt

Encoder section: the distinct prompts of the config (or of ``model.fusion="text"`` when the config
has no text part) are computed with the cached stages, a fixed sample of ``--encoder_prompts`` of
them (by prompt hash) is encoded into a fresh, temporary store (so nothing is served from a cache),
and the run reports prompts/s, tokens/s, the encoder's matmul GFLOP/s (FLOPs per token from the
backbone's own config, :func:`lasca_jax.encode.encoder_flops`), and their share of the matmul peak
measured in the same process (:func:`lasca_jax.encode.device_peak_gflops`: on a CPU the f32 peak,
best of XLA and numpy's BLAS). It also times torch's own f32 matmul at the peak's square size and
at the encoder's feed-forward shape, and with ``--profile`` writes torch.profiler's operator table
of one batch, which is where the time that is not matmul goes.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time

from absl import app, flags, logging
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lasca_jax import cache as cache_lib  # pylint: disable=wrong-import-position
from lasca_jax import encode, pipeline  # pylint: disable=wrong-import-position

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=False)
_PROMPTS = flags.DEFINE_integer("encoder_prompts", 2000, "Distinct prompts to encode (a fixed "
                                "sample by prompt hash); 0 -> all of the config's.")
_BUDGETS = flags.DEFINE_list("token_budgets", [], "Token budgets to compare (default: the "
                             "config's text.token_budget).")
_PROFILE = flags.DEFINE_string("profile", "", "Write torch.profiler's table of one batch here.")


def config_prompts(config) -> list[str]:
  """The distinct prompts (usable windows) of ``config``; a features-only config as text."""
  config = config.copy_and_resolve_references()
  if config.model.fusion not in ("text", "fused"):
    config.model.fusion = "text"
  sink: list[str] = []
  pipeline.prepare(config, cache_lib.StageCache(config.cache_dir or None), prompt_sink=sink)
  return sorted(set(sink))


def sample_prompts(prompts: list[str], n: int) -> list[str]:
  """A fixed sample of ``n`` prompts: the smallest SHA-256 hashes (all when ``n`` is 0)."""
  if n <= 0 or n >= len(prompts):
    return list(prompts)
  return sorted(prompts, key=lambda p: hashlib.sha256(p.encode()).digest())[:n]


def torch_matmul_gflops(m: int, k: int, n: int, device: str = "cpu", repeats: int = 5) -> float:
  """Best f32 rate of torch's ``(m, k) @ (k, n)`` on ``device``."""
  import torch  # pylint: disable=import-outside-toplevel
  a = torch.randn(m, k, device=device)
  b = torch.randn(k, n, device=device)
  a @ b
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    a @ b
    if device.startswith("cuda"):
      torch.cuda.synchronize()
    best = min(best, time.perf_counter() - start)
  return 2.0 * m * k * n / best / 1e9


def profile_batch(store: encode.EmbeddingStore, prompts: list[str], path: str) -> None:
  """torch.profiler's operator table (self CPU time) of encoding ``prompts`` once."""
  import torch  # pylint: disable=import-outside-toplevel
  from torch.profiler import ProfilerActivity, profile  # pylint: disable=import-outside-toplevel
  activities = [ProfilerActivity.CPU] + (
      [ProfilerActivity.CUDA] if store.device.startswith("cuda") else [])
  with torch.inference_mode(), profile(activities=activities) as prof:
    store.model.encode(prompts, batch_size=len(prompts), show_progress_bar=False)
  table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
  with open(path, "w") as f:
    f.write(f"{len(prompts)} prompts, one batch, {store.backbone} on {store.device}\n{table}\n")


def encoder_section(config, num_prompts: int = 2000, token_budgets=(), profile_path: str = "",
                    verbose: bool = True) -> dict:
  """Encoder throughput of ``config.text`` on its own prompts; returns and prints the figures.

  Returns:
    ``{"prompts": n, "tokens_per_prompt": ..., "runs": [per token budget: prompts_per_s,
    tokens_per_s, gflops, peak_gflops, share_of_peak, device, precision, ...],
    "torch_matmul_gflops": {...}}``.
  """
  import torch  # pylint: disable=import-outside-toplevel
  tcfg = config.text
  prompts = sample_prompts(config_prompts(config), num_prompts)
  budgets = [int(b) for b in token_budgets] or [int(tcfg.get("token_budget", 0))]
  out = {"prompts": len(prompts), "backbone": tcfg.backbone, "runs": [],
         "torch_threads": torch.get_num_threads()}
  with tempfile.TemporaryDirectory() as tmp:
    for budget in budgets:
      store = encode.EmbeddingStore(
          os.path.join(tmp, f"budget{budget}"), tcfg.backbone, tcfg.model_path,
          tcfg.get("device", "auto"), int(tcfg.batch_size), budget, tcfg.get("precision", "auto"),
          tcfg.get("long_prompts", "truncate"))
      store.model.encode(prompts[:16], batch_size=16, show_progress_bar=False)   # load and warm
      store.embed(prompts, progress=False)
      peak, how = encode.device_peak_gflops(store.device, store.precision)
      run = {"token_budget": budget, "prompts_per_s": round(store.stats.prompts /
                                                            store.stats.seconds, 2),
             **store.throughput(peak), "peak": how}
      out["runs"].append(run)
      out["tokens_per_prompt"] = round(store.stats.tokens / max(store.stats.texts, 1), 1)
      if profile_path and budget == budgets[-1]:
        batches = encode.token_batches(encode.token_counts(store.model, prompts), budget,
                                       int(tcfg.batch_size))
        batch = batches[len(batches) // 2]
        profile_batch(store, [prompts[i] for i in batch], profile_path)
        out["profile"] = profile_path
      store.store.close()
      if verbose:
        print(f"encoder {tcfg.backbone} on {run['device']} ({run['precision']}), token budget "
              f"{budget}: {run['prompts_per_s']} prompts/s, {run['tokens_per_s']} tokens/s, "
              f"{run.get('gflops')} GFLOP/s = {100 * run.get('share_of_peak', 0):.1f} % of the "
              f"{run['peak_gflops']} GFLOP/s peak ({how}); padding {run['padding_fraction']}")
  device = out["runs"][-1]["device"]
  shape = encode.transformer_shape(store.model)
  if shape is not None and not device.startswith("cuda"):
    tokens = max(out["runs"][-1]["token_budget"], 2048)
    out["torch_matmul_gflops"] = {
        "square_1024": round(torch_matmul_gflops(1024, 1024, 1024), 1),
        f"ffn_{tokens}x{shape.hidden}x{shape.intermediate}": round(torch_matmul_gflops(
            tokens, shape.hidden, shape.intermediate), 1)}
    if verbose:
      print(f"torch f32 matmul on this CPU ({out['torch_threads']} threads): "
            f"{out['torch_matmul_gflops']} GFLOP/s")
  if verbose:
    print(f"{len(prompts)} prompts of {out['tokens_per_prompt']} tokens on average")
  return out


def main(argv):
  del argv
  config = _CONFIG.value
  logging.set_verbosity(logging.WARNING)
  encoder_section(config, _PROMPTS.value, _BUDGETS.value, _PROFILE.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
