"""Encodes the distinct prompts of a configuration or a whole sweep, in shards.

  # one machine: fill the shared store (any number of processes at once)
  python experiments/encode.py --config=configs/synthetic.py
  python experiments/encode.py --config=configs/synthetic.py:sweep --sweep \
      --shard_index=0 --num_shards=2 &
  python experiments/encode.py --config=configs/synthetic.py:sweep --sweep \
      --shard_index=1 --num_shards=2

  # several hosts on a shared filesystem: each shard writes its own store, then merge
  python experiments/encode.py --config=... --sweep --shard_index=$SLURM_ARRAY_TASK_ID \
      --num_shards=16 --own_store
  python experiments/encode.py --config=... --sweep --merge

After this, ``experiments/main.py`` / ``experiments/sweep.py`` with the same config (and
``cache_dir``) find every prompt cached. See docs/performance.md ("Sharded encoding") for a
SLURM recipe.
"""

import sys

from absl import flags, logging
from ml_collections import config_flags

from lasca_jax.encoders import store
from lasca_jax.model import placement
from lasca_jax.run import cli, shards, validate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_SWEEP = flags.DEFINE_bool("sweep", False, "Encode the prompts of every run of config.sweep.")
_INDEX = flags.DEFINE_integer("shard_index", 0, "This worker's shard, 0 .. num_shards-1.",
                              lower_bound=0)
_NUM = flags.DEFINE_integer("num_shards", 1, "Number of shards.", lower_bound=1)
_OWN = flags.DEFINE_bool("own_store", False, "Write <cache_dir>/embeddings/shards/shard-i-of-n."
                         "sqlite instead of the shared store (hosts on a network filesystem).")
_MERGE = flags.DEFINE_bool("merge", False, "Merge the shard stores into the main store and "
                           "report prompts still missing (encodes nothing).")
_MERGE_FROM = flags.DEFINE_list("merge_from", None, "Shard stores to merge (default: all under "
                                "<cache_dir>/embeddings/shards).")


def main(argv):
  del argv
  config = _CONFIG.value
  try:
    validate.check(config, sweep=_SWEEP.value)
    if _MERGE.value:
      out = shards.merge(config, _MERGE_FROM.value, _SWEEP.value)
      for path, rows in out["merged"].items():
        print(f"merged {rows} new embeddings from {path}")
      for backbone, n in out["missing"].items():
        print(f"{backbone}: {n} prompts of this {'sweep' if _SWEEP.value else 'config'} "
              "still missing" + ("" if n else " (all cached)"))
      return
    # The JAX encoder's compiled shapes (config.text.engine="jax") are kept across processes.
    placement.enable_compilation_cache(config.get("compilation_cache", ""))
    for s in shards.encode_shard(config, _INDEX.value, _NUM.value, _SWEEP.value, _OWN.value):
      rate = f", {s['texts_per_s']} prompts/s, {s['tokens_per_s']} tokens/s" if s.get(
          "texts_per_s") else ""
      print(f"shard {_INDEX.value}/{_NUM.value} {s['backbone']}: {s['shard_prompts']} of "
            f"{s['prompts']} prompts, {s['newly_encoded']} newly encoded{rate} -> {s['store']}")
  except (ValueError, FileNotFoundError, RuntimeError, store.StoreError) as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  logging.set_verbosity(logging.WARNING)
  cli.run(main)
