"""Prompts encoded into the shared store: batching by token budget, long prompts in pieces.

:class:`EmbeddingStore` is the prompt -> embedding table of one backbone and precision in the
SQLite prompt store (:class:`lasca_jax.encoders.store.PromptStore`, ``<cache_dir>/embeddings/
store.sqlite``), which is append-only, committed every batch and safe for concurrent runs.
Missing prompts are tokenised first (their length is checked before encoding), sorted longest
first and encoded in batches of at most ``token_budget`` padded tokens (:func:`token_batches`).
Prompts longer than the encoder's window are truncated (the paper's behaviour) or, with
``long_prompts="chunk"``, split at phrase boundaries (:class:`Chunker`) into pieces that fit,
each piece encoded and the pieces' embeddings mean-pooled.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Sequence

import numpy as np

from lasca_jax.encoders import store as store_lib, text as text_lib
from lasca_jax.method import templates


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


LONG_PROMPT_SHARE = 0.01   # warn when more than this share of prompts is over the window


def warn_long_prompts(cut: int, total: int, backbone: str, limit: int, long_prompts: str,
                      which: str = "") -> None:
  """Warns when more than :data:`LONG_PROMPT_SHARE` of ``total`` prompts (``which``: "new ")
  exceed ``backbone``'s window of ``limit`` tokens, saying what happens to them and the fix."""
  if cut <= LONG_PROMPT_SHARE * max(total, 1):
    return
  action = ("encoded in phrase-boundary pieces" if long_prompts == "chunk" else
            "truncated, losing the phrases at their end; consider "
            "--config.text.long_prompts=chunk or --config.text.phrase_order=salience")
  logging.warning("%d of %d %sprompts (%.1f %%) are longer than %s's window of %d tokens and are "
                  "%s", cut, total, which, 100.0 * cut / total, backbone, limit, action)


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
  """Prompt -> embedding table of one backbone (and precision and engine), in the SQLite prompt
  store.

  Attributes:
    path: the SQLite file (``<cache_dir>/embeddings/store.sqlite`` unless ``store_path``).
    key: the backbone key of this encoder's rows (:func:`lasca_jax.encoders.text.variant_key`:
      backbone, precision and, when not ``"torch"``, the engine).
    encoded_count: prompts encoded (not found in the store) by this object.
    truncated_count: of those, encoder inputs longer than the encoder's window (cut).
    stats: :class:`EncodeStats` of everything this object encoded.
  """

  def __init__(self, cache_dir: str, backbone: str, model_path: str = "", device: str = "auto",
               batch_size: int = 64, token_budget: int = 0, precision: str = "auto",
               long_prompts: str = "truncate", store_path: str = "", wal: bool = True,
               engine: str = "torch"):
    if long_prompts not in text_lib.LONG_PROMPTS:
      raise ValueError(f"unknown config.text.long_prompts {long_prompts!r}: use one of "
                       f"{text_lib.LONG_PROMPTS}")
    self.backbone, self.model_path, self.engine = backbone, model_path, str(engine)
    self.device = text_lib.resolve_engine_device(self.engine, device)
    self.precision = text_lib.resolve_engine_precision(self.engine, precision, self.device)
    self.batch_size, self.token_budget = int(batch_size), int(token_budget)
    self.long_prompts = long_prompts
    self.key = text_lib.variant_key(backbone, model_path, self.precision, self.engine)
    self.path = store_path or os.path.join(cache_dir, "embeddings", store_lib.FILE_NAME)
    self.store = store_lib.PromptStore(self.path, wal=wal)
    self._model = None
    self.stats = EncodeStats()
    self.last_tokens = np.zeros(0, np.int64)  # token counts of the last embed's distinct prompts
    self._legacy = os.path.join(cache_dir, "embeddings",
                                f"{text_lib.store_key(backbone, model_path)}.npz")
    if self.precision == "float32" and self.engine == "torch" and os.path.exists(self._legacy):
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
      self._model = text_lib.load_model(self.backbone, self.model_path, self.device, self.precision,
                                        self.engine)
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
    limit = text_lib.max_tokens(model)
    out = []
    for prompt in prompts:
      texts = [prompt]
      if (self.long_prompts == "chunk" and limit and
          text_lib.token_counts(model, [prompt])[0] > limit):
        texts = Chunker(limit, lambda ts: text_lib.token_counts(model, ts))(prompt)
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
    return known["max_tokens"] if known else text_lib.max_tokens(self.model)

  def _register_and_count(self, texts: Sequence[str]) -> np.ndarray:
    """Token counts for a legacy import; records the backbone as the encoder describes it."""
    model = self.model
    self.store.register(self.key, self.backbone, text_lib.embedding_dimension(model),
                        text_lib.max_tokens(model), self.precision)
    return text_lib.token_counts(model, texts)

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
    model, limit = self.model, text_lib.max_tokens(self.model)
    shape = text_lib.transformer_shape(model)
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
        self.stats.flops += text_lib.encoder_flops(shape, cut[idx])
      self.stats.seconds += time.perf_counter() - start
      if bar is not None:
        bar.update(len(batch))

  def _encode_prompts(self, missing: list[str], progress: bool) -> None:
    from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
    start = time.perf_counter()
    lengths = text_lib.token_counts(self.model, missing)   # checked before anything is encoded
    limit = text_lib.max_tokens(self.model)
    self.stats.seconds += time.perf_counter() - start
    self.stats.prompts += len(missing)
    warn_long_prompts(int((lengths > limit).sum()) if limit else 0, len(missing), self.backbone,
                      limit, self.long_prompts, "new ")   # Before the encoding, not after it.
    long = (lengths > limit) if (limit and self.long_prompts == "chunk") else np.zeros(
        len(missing), bool)
    whole = [p for p, is_long in zip(missing, long) if not is_long]
    pieces_of = {}
    if long.any():
      chunker = Chunker(limit, lambda ts: text_lib.token_counts(self.model, ts))
      pieces_of = {p: chunker(p) for p, is_long in zip(missing, long) if is_long}
      self.stats.chunked += len(pieces_of)
      wanted = sorted({t for ps in pieces_of.values() for t in ps} - set(whole))
      have = self.store.lookup(self.key, wanted)
      pieces = [t for t in wanted if t not in have]
      self.stats.pieces += len(pieces)
      whole += pieces
    logging.info("encoding %d new texts with %s on %s (%s, %s)%s", len(whole), self.backbone,
                 self.device, self.precision, self.engine,
                 f", {len(pieces_of)} long prompts in pieces" if pieces_of else "")
    bar = tqdm(total=len(whole), desc=f"encode {self.backbone}", unit="prompt",
               disable=not progress)
    order = {t: i for i, t in enumerate(missing)}
    whole_lengths = np.array([lengths[order[t]] if t in order else 0 for t in whole], np.int64)
    unknown = [i for i, t in enumerate(whole) if t not in order]
    if unknown:
      whole_lengths[unknown] = text_lib.token_counts(self.model, [whole[i] for i in unknown])
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
           "device": self.device, "precision": self.precision, "engine": self.engine}
    if s.flops:
      out["gflops"] = round(s.flops / s.seconds / 1e9, 2)
      if peak_gflops:
        out["peak_gflops"] = round(float(peak_gflops), 2)
        out["share_of_peak"] = round(s.flops / s.seconds / 1e9 / peak_gflops, 4)
    return out
