"""Sharded encoding (experiments/encode.py): shards cover the prompts once, merge, then cached."""

import json
import os
import subprocess
import sys

import pytest

from lasca_jax.run import pipeline, shards
from conftest import ROOT, make_tiny_config


def test_shards_partition_prompts_and_merged_stores_serve_main(tmp_path, tiny_backbone):
  config = make_tiny_config(tmp_path / "cache", **{"model.fusion": "text",
                                                   "text.backbone": tiny_backbone})
  (settings, prompts), = shards.needed_prompts(config).items()
  assert settings.backbone == tiny_backbone and len(prompts) > 20
  parts = [shards.encode_shard(config, i, 3, own_store=True, progress=False)[0]
           for i in range(3)]
  assert sum(p["shard_prompts"] for p in parts) == len(prompts)
  assert sum(p["newly_encoded"] for p in parts) == len(prompts)
  assert all(os.path.basename(p["store"]).startswith(f"shard-0000{i}-of-00003")
             for i, p in enumerate(parts))
  out = shards.merge(config)
  assert sum(out["merged"].values()) == len(prompts)
  assert out["missing"] == {tiny_backbone: 0}
  workdir = tmp_path / "run"
  pipeline.run(config, str(workdir))
  emb = [json.loads(l) for l in open(workdir / "log.jsonl") if '"embeddings"' in l][0]
  assert emb["newly_encoded"] == 0 and emb["prompts"] == len(prompts)


def test_sweep_prompts_group_by_encoder_and_skip_label_only_changes(tmp_path, tiny_backbone):
  from conftest import _sweep_config
  config = _sweep_config(tmp_path / "cache", tiny_backbone)
  config.sweep.margins = (0.1, 0.2)
  configs = shards.text_configs(config, sweep=True)
  # Margins and text/fused do not change prompts: one prompt set per modality x window x
  # lexicon/salience variant.
  kinds = {(c.features.modality, c.features.window_seconds, c.text.lexicon, c.text.salience)
           for c in configs}
  assert len(kinds) == len(configs)
  assert all(c.model.fusion in ("text", "fused") for c in configs)


def test_shard_index_out_of_range_is_a_clear_error(tmp_path):
  config_path = os.path.join(ROOT, "configs", "synthetic.py") + ":runlocal"
  out = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "encode.py"),
                        f"--config={config_path}", "--shard_index=4", "--num_shards=4",
                        f"--config.cache_dir={tmp_path}"], capture_output=True, text=True,
                       timeout=300)
  assert out.returncode != 0
  assert "--shard_index=4 is out of range for --num_shards=4: use 0 .. 3" in out.stderr
  with pytest.raises(ValueError, match="at least 1"):
    shards.check_shard(0, 0)
