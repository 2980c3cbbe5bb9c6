"""Sharded prompt encoding: the distinct prompts of a configuration or a sweep, split over workers.

A prompt belongs to shard ``int(sha256(prompt)[:8]) % num_shards``: a fixed assignment that
needs no coordination, balances shards in expectation and does not move when other prompts are
added. Each worker encodes its shard into the shared store (several processes on one host: SQLite
WAL serialises their commits) or into its own shard store (several hosts on a network
filesystem, where WAL must not be shared); :func:`merge` then copies the shard stores into the
main store, after which ``main.py`` and ``sweep.py`` find every prompt cached.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os

from lasca_jax.data import files as files_lib
from lasca_jax.encoders import embedder, store as store_lib
from lasca_jax.method import representation
from lasca_jax.run import cache as cache_lib, pipeline, settings as settings_lib
from lasca_jax.run import sweep as sweep_lib

SHARD_DIR = "shards"


def shard_of(prompt: str, num_shards: int) -> int:
  return int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "big") % num_shards


def check_shard(shard_index: int, num_shards: int) -> None:
  """Raises ``ValueError`` unless ``0 <= shard_index < num_shards``."""
  if num_shards < 1:
    raise ValueError(f"--num_shards must be at least 1, got {num_shards}")
  if not 0 <= shard_index < num_shards:
    raise ValueError(f"--shard_index={shard_index} is out of range for --num_shards={num_shards}: "
                     f"use 0 .. {num_shards - 1} (a SLURM array --array=0-{num_shards - 1})")


def text_configs(config, sweep: bool) -> list:
  """The configurations whose prompts are needed: ``config`` itself, or every text or fused run
  of ``config.sweep`` (one per distinct prompt set: margin and target do not change prompts)."""
  configs = [c for _, c in sweep_lib.expand(config)] if sweep else [config]
  out, seen = [], set()
  for c in configs:
    if not representation.get(c.model.fusion).encoded:
      continue
    ident = json.loads(c.to_json_best_effort())
    for field in ("name", "model_label", "pairs", "sweep"):
      ident.pop(field, None)
    ident["model"] = {}
    key = json.dumps(ident, sort_keys=True)
    if key not in seen:
      seen.add(key)
      out.append(c)
  return out


def needed_prompts(config, sweep: bool = False) -> dict[embedder.EncoderSettings, list[str]]:
  """``{encoder settings: sorted distinct prompts}`` of ``config`` (or its sweep)."""
  cache = cache_lib.StageCache(config.cache_dir or None)
  groups: dict[embedder.EncoderSettings, set[str]] = {}
  for c in text_configs(config, sweep):
    sink: list[str] = []
    pipeline.prepare(c, cache, prompt_sink=sink)
    groups.setdefault(settings_lib.encoder(c.text), set()).update(sink)
  return {k: sorted(v) for k, v in groups.items()}


def shard_store_path(cache_dir: str, shard_index: int, num_shards: int) -> str:
  return os.path.join(cache_dir, "embeddings", SHARD_DIR,
                      f"shard-{shard_index:05d}-of-{num_shards:05d}.sqlite")


def encode_shard(config, shard_index: int, num_shards: int, sweep: bool = False,
                 own_store: bool = False, progress: bool = True) -> list[dict]:
  """Encodes this shard's prompts; returns one summary per encoder setting.

  Args:
    own_store: write to :func:`shard_store_path` (rollback journal, for a store on a network
      filesystem; merge afterwards) instead of the shared store.
  """
  check_shard(shard_index, num_shards)
  cache_dir = config.cache_dir or files_lib.default_cache_dir()
  summaries = []
  for settings, prompts in needed_prompts(config, sweep).items():
    mine = [p for p in prompts if shard_of(p, num_shards) == shard_index]
    path = shard_store_path(cache_dir, shard_index, num_shards) if own_store else ""
    store = settings.store(cache_dir, path, wal=not own_store)
    store.embed(mine, progress=progress)
    summaries.append({"backbone": settings.backbone, "prompts": len(prompts),
                      "shard_prompts": len(mine), "newly_encoded": store.encoded_count,
                      "store": store.path, **store.throughput()})
    store.store.close()
  return summaries


def merge(config, sources: list[str] | None = None, sweep: bool = False) -> dict:
  """Merges shard stores into the main store and counts the prompts still missing.

  Args:
    sources: store files; default every file under ``<cache_dir>/embeddings/shards``.

  Returns:
    ``{"merged": {path: new rows}, "missing": {backbone: prompts not in the store}}``.
  """
  cache_dir = config.cache_dir or files_lib.default_cache_dir()
  main = store_lib.PromptStore(os.path.join(cache_dir, "embeddings", store_lib.FILE_NAME))
  if sources is None:
    sources = sorted(glob.glob(os.path.join(cache_dir, "embeddings", SHARD_DIR, "*.sqlite")))
  if not sources:
    raise FileNotFoundError(f"no shard stores to merge under "
                            f"{os.path.join(cache_dir, 'embeddings', SHARD_DIR)}")
  merged = {}
  for path in sources:
    if not os.path.exists(path):
      raise FileNotFoundError(f"shard store {path} does not exist")
    merged[path] = main.merge_from(path)
    logging.info("merged %d new rows from %s", merged[path], path)
  main.close()
  missing = {}
  for settings, prompts in needed_prompts(config, sweep).items():
    store = settings.store(cache_dir)
    missing[settings.backbone] = (len(prompts) -
                                  len(store._lookup(prompts)))  # pylint: disable=protected-access
    store.store.close()
  return {"merged": merged, "missing": missing}
