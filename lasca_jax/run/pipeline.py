"""The LaScA pipeline: cached host-side stages, then all folds trained in one compiled call.

``run(config, workdir)`` is what ``experiments/main.py`` calls; a notebook or a test calls it the
same way. The steps, each a pure function of its inputs whose result is cached by content hash
(:mod:`lasca_jax.run.cache`):

  frames -> windows -> normalise (per fold) -> salience -> prompts -> embeddings -> fusion
                    \\-> pairs -> fold indices -> train (jit(vmap(train)) over folds)

Fusion (a concatenation of cached arrays) is assembled in memory rather than cached.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any

import numpy as np

from lasca_jax.analysis import labels, stats
from lasca_jax.data import coverage, datasets, files as files_lib, types as data_lib
from lasca_jax.encoders import baseline as baseline_lib, text as text_lib
from lasca_jax.method import controls, fusion as fusion_lib, lexicon
from lasca_jax.method import pairs as pairs_lib, protocols, salience, templates
from lasca_jax.method import windows as windows_lib
from lasca_jax.model import bundle as bundle_lib, train
from lasca_jax.run import cache as cache_lib, validate




class RunLog:
  """Appends one JSON object per line to ``<workdir>/log.jsonl`` and mirrors it to logging."""

  def __init__(self, workdir: str | None):
    self.path = os.path.join(workdir, "log.jsonl") if workdir else None
    self.start = time.time()

  def __call__(self, event: str, **fields: Any) -> None:
    record = {"event": event, "time_s": round(time.time() - self.start, 3), **fields}
    logging.info("%s %s", event, json.dumps(fields, default=str)[:400])
    if self.path:
      with open(self.path, "a") as f:
        f.write(json.dumps(record, default=_json_default) + "\n")


def _json_default(obj):
  if isinstance(obj, np.ndarray):
    return obj.tolist()
  if isinstance(obj, (np.integer, np.floating, np.bool_)):
    return obj.item()
  return str(obj)


@dataclasses.dataclass
class RunInputs:
  """Everything the trainer needs for one configuration, plus what the results record."""
  z: np.ndarray                    # float32 [folds, W, d]
  pairs: train.PairData            # [P] numpy arrays
  folds: protocols.FoldIndices     # [folds, ...]
  splits: protocols.FoldSplits
  prompts: np.ndarray | None       # [U] distinct prompts (None for features-only)
  prompt_index: np.ndarray | None  # [folds, W]
  usable: np.ndarray               # bool [W]
  info: dict

  def train_windows(self, fold: int) -> np.ndarray:
    """``bool [W]``: the usable windows of ``fold``'s training subjects (its min-max rows)."""
    return train_windows(self.usable, self.splits, self.info["window_subject"], fold)


def train_windows(usable: np.ndarray, splits: protocols.FoldSplits, window_subject: np.ndarray,
                  fold: int) -> np.ndarray:
  """``bool [W]``: usable windows whose subject is in ``fold``'s training set."""
  return usable & splits.train[fold, window_subject]


def frames_stage(config, cache: cache_lib.StageCache) -> tuple[str, dict]:
  module = datasets.get_module(config.data.name)

  def compute():
    recordings = module.load_recordings(config.data)
    data_lib.check_consistent(recordings)
    return windows_lib.frames_to_arrays(recordings)

  return cache.get_or_compute("frames", {"data": module.fingerprint(config.data)}, compute)


def lexicon_kind(config) -> str:
  """``config.text.lexicon``, with ``"dataset"`` meaning the dataset's own lexicon file
  (``config.data.lexicon``, e.g. for your own features) or ``"llm"`` when it has none, and
  ``"shuffled"`` meaning that same lexicon permuted (``"shuffled:<lexicon>"``)."""
  kind = config.text.lexicon
  if kind in ("dataset", "shuffled"):
    path = config.data.get("lexicon", "")
    if path and not os.path.isabs(path) and config.data.get("root", ""):
      path = os.path.join(config.data.root, path)
    own = path or "llm"
    return own if kind == "dataset" else f"shuffled:{own}"
  if kind.startswith("shuffled:"):
    inner = kind.partition(":")[2]
    return kind if inner in lexicon.BUILTIN else f"shuffled:{os.path.expanduser(inner)}"
  return kind


def lexicon_key(config) -> Any:
  kind = lexicon_kind(config)
  if kind.startswith("shuffled:"):
    kind = kind.partition(":")[2]
  if kind in lexicon.BUILTIN:
    return kind
  if not os.path.exists(kind):
    raise FileNotFoundError(f"lexicon file {kind} does not exist (config.text.lexicon)")
  with open(kind, "rb") as f:
    return {"path": kind, "content": f.read().decode(errors="replace")}


def split_seed(config) -> int:
  """Seed of the subject split: ``protocol.split_seed``, or ``config.seed`` when it is -1."""
  seed = int(config.protocol.get("split_seed", -1))
  return int(config.seed) if seed < 0 else seed


def prepare(config, cache: cache_lib.StageCache, log: RunLog | None = None,
            prompt_sink: list | None = None) -> RunInputs:
  """Runs (or loads) every host-side stage for ``config``.

  With ``prompt_sink`` (a list), the distinct prompts of usable windows are appended to it and not
  encoded (the text part of ``z`` is then zeros): what ``experiments/encode.py`` needs.
  """
  log = log or RunLog(None)
  fcfg, tcfg = config.features, config.text
  if config.model.fusion not in fusion_lib.ALL:
    raise ValueError(f"unknown model.fusion {config.model.fusion!r}: use one of {fusion_lib.ALL}")
  if config.model.fusion in fusion_lib.ENCODED and prompt_sink is None:
    text_lib.resolve_precision(tcfg.get("precision", "auto"),   # bad device/precision: fail first
                             text_lib.resolve_device(tcfg.get("device", "auto")))

  frames_key, frames = frames_stage(config, cache)
  log("frames", key=frames_key, frames=int(frames["times"].size),
      recordings=int(frames["recording_ids"].size), subjects=int(np.unique(
          frames["subject_ids"]).size),
      columns_by_modality={m: frames["feature_names"][frames["modalities"] == m].tolist()
                           for m in data_lib.MODALITIES})
  win_key, win = cache.get_or_compute(
      "windows", {"frames": frames_key, "window_seconds": float(fcfg.window_seconds)},
      lambda: windows_lib.make_windows(frames, float(fcfg.window_seconds)))
  cols = windows_lib.modality_columns(win["modalities"], fcfg.modality)
  train.TrainSettings.from_config(config)   # a bad model or train field: fail before any work
  pad_dim = controls.fused_dim(config.model, tcfg, int(cols.size))
  # Known (or an error) before any work: the random-text control's vector norm.
  random_norm = controls.random_norm(tcfg) if config.model.fusion == "random_text" else None
  target, partial = config.pairs.target, bool(fcfg.get("partial_windows", False))
  coverage.check_target(win, target)
  usable = windows_lib.usable_windows(win, fcfg.modality, float(fcfg.min_valid_fraction),
                                      target, partial)
  if not usable.any():
    raise ValueError(coverage.explain_unusable(win, fcfg.modality, target,
                                               float(fcfg.min_valid_fraction), partial))
  baseline = None
  if config.model.fusion == "baseline":
    base_key, base = cache.get_or_compute(
        "baseline", {"windows": win_key, "files": baseline_lib.directory_fingerprint(
            config.model.baseline_dir)},
        lambda: dict(zip(("embeddings", "counts"), baseline_lib.embeddings_for_windows(
            config.model.baseline_dir, win["recording_ids"].tolist(), win["recording"],
            win["position"], float(fcfg.window_seconds)))))
    baseline = base["embeddings"]
    usable = usable & np.isfinite(baseline).all(axis=1)
    log("baseline", key=base_key, dir=config.model.baseline_dir, dim=int(baseline.shape[1]))
  if not usable.any():
    raise ValueError(f"no window has finite embeddings in {config.model.baseline_dir} "
                     "(model.baseline_dir): check the recording ids and times of its files")
  # Subjects without a usable window are left out before the folds are drawn.
  empty = coverage.empty_subjects(win, usable, fcfg.modality, target,
                                  float(fcfg.min_valid_fraction), partial)
  log("windows", key=win_key, windows=int(usable.size), usable=int(usable.sum()),
      features=int(cols.size), excluded_subjects=empty)
  if empty:
    logging.warning("%d subjects have no usable window and are left out of the protocol: %s",
                    len(empty), coverage.describe_empty(empty))

  subject_of_window = win["subject_ids"][win["recording"]]
  splits = protocols.subject_splits(win["subject_ids"], config.protocol.name,
                                    int(config.protocol.num_folds), split_seed(config),
                                    float(config.protocol.test_fraction), excluded=list(empty))
  subj_idx = protocols.subject_index(subject_of_window, splits.subjects)       # [W]

  def normalise():
    feats = win["features"][:, cols]
    return {"values": np.stack([
        windows_lib.minmax_normalise(feats, train_windows(usable, splits, subj_idx, k),
                                     fcfg.clip)
        for k in range(splits.train.shape[0])])}

  norm_key, norm = cache.get_or_compute(
      "normalise", {"windows": win_key, "modality": fcfg.modality, "clip": bool(fcfg.clip),
                    "usable": usable, "train_subjects": splits.train,
                    "subjects": splits.subjects},
      normalise)
  x = norm["values"]                                                           # [folds, W, F]

  pair_key, pairs = cache.get_or_compute(
      "pairs", {"windows": win_key, "usable": usable, "target": config.pairs.target,
                "margin": float(config.pairs.margin), "eps": float(config.pairs.eps)},
      lambda: pairs_lib.make_pairs(win, usable, config.pairs.target, float(config.pairs.margin),
                                   float(config.pairs.eps)))
  if pairs["label"].size == 0:
    raise ValueError(
        f"no preference pairs: no consecutive usable windows change {config.pairs.target} by "
        f"more than margin {config.pairs.margin} ({int(usable.sum())} usable windows); lower "
        "pairs.margin or features.min_valid_fraction")
  folds = protocols.fold_indices(
      pairs, subj_idx[pairs["first"]], splits, int(config.seed),
      float(config.train.validation_fraction), config.train.validation_grouping,
      int(config.train.batch_size))
  log("pairs", key=pair_key, pairs=int(pairs["label"].size),
      train=folds.train_count.tolist(), val=folds.val_mask.sum(1).tolist(),
      test=folds.test_mask.sum(1).tolist())

  fusion = config.model.fusion
  prompts = prompt_index = None
  parts = []
  if fusion in fusion_lib.WITH_FEATURES:
    parts.append(x)
  if baseline is not None:
    parts.append(np.broadcast_to(np.nan_to_num(baseline), (x.shape[0],) + baseline.shape))
  if fusion in fusion_lib.WITH_SALIENCE:
    names, mods = win["feature_names"][cols], win["modalities"][cols]
    sal_values, sal_params = salience_values(config, win, cols, usable, x, norm_key)
    sal_key, sal = cache.get_or_compute(
        "salience", {**sal_params, "rule": tcfg.salience,
                     "k": int(tcfg.salience_k) if tcfg.salience == "topk" else None,
                     "threshold": (float(tcfg.salience_threshold)
                                   if tcfg.salience == "threshold" else None)},
        lambda: {"mask": salience.salience_mask(sal_values, mods, tcfg.salience,
                                                int(tcfg.salience_k),
                                                float(tcfg.salience_threshold))})
  if fusion == "mask":
    parts.append(np.broadcast_to(sal["mask"], x.shape).astype(np.float32))     # [folds, W, F]
    log("mask", key=sal_key, salient_per_window=float(sal["mask"][:, usable].sum(-1).mean()))
  if fusion in fusion_lib.WITH_PROMPTS:
    phrases = lexicon.build_lexicon(lexicon_kind(config), names.tolist(), mods.tolist(),
                                    int(tcfg.lexicon_seed), tcfg.uncovered)
    order = tcfg.get("phrase_order", "feature")
    if order not in templates.PHRASE_ORDERS:
      raise ValueError(f"unknown config.text.phrase_order {order!r}: use one of "
                       f"{templates.PHRASE_ORDERS}")
    lexicon_key(config)  # A missing lexicon file is an error naming it.
    prompt_params = {"salience": sal_key, "modality": fcfg.modality, "phrases": phrases}
    if order != "feature":
      prompt_params["phrase_order"] = order
    prompt_key, pr = cache.get_or_compute(  # The phrases say all the lexicon (and seed) does.
        "prompts", prompt_params,
        lambda: dict(zip(("prompts", "index"), templates.build_prompts(
            sal["mask"], phrases, mods.tolist(), fcfg.modality,
            values=sal_values if order == "salience" else None))))
    prompts = pr["prompts"]
    prompt_index = np.broadcast_to(pr["index"], x.shape[:2])                   # [folds, W]
    used = np.unique(prompt_index[:, usable])
    log("prompts", key=prompt_key, distinct=int(prompts.size), distinct_used=int(used.size),
        salience_stats=tcfg.get("salience_stats", "fold"), phrase_order=order,
        uncovered_by_lexicon=[n for n, p in zip(names.tolist(), phrases)
                              if p is None or p == lexicon.feature_name_phrase(n)])
    if fusion == "random_text":
      dim, _ = text_lib.embedding_geometry(tcfg.backbone, tcfg.model_path)
      emb = controls.random_prompt_embeddings(prompts[used].tolist(), dim,
                                              int(tcfg.random_seed), random_norm)
      log("embeddings", backbone=tcfg.backbone, random=True, dim=int(dim), norm=random_norm,
          random_seed=int(tcfg.random_seed), newly_encoded=0)
    elif prompt_sink is not None:
      prompt_sink.extend(prompts[used].tolist())
      emb = np.zeros((used.size, 1), np.float32)
    else:
      emb = embed_prompts(config, cache.cache_dir, prompts[used].tolist(), log)
    table = np.zeros((prompts.size, emb.shape[1]), np.float32)
    table[used] = emb
    parts.append(table[prompt_index])                                          # [folds, W, D]
  z = controls.pad_to(np.concatenate(parts, axis=-1).astype(np.float32), pad_dim)
  # Pairs are padded to a coarse size (never indexed; training ignores them) so that runs of
  # similar size reuse one compiled program.
  n_pad = protocols.bucket_size(pairs["label"].size, 1024) - pairs["label"].size
  pair_data = train.PairData(*[np.pad(pairs[k], (0, n_pad)) for k in ("first", "second", "label")])
  info = {"frames_key": frames_key, "windows_key": win_key, "pairs_key": pair_key,
          "input_dim": int(z.shape[-1]), "model_label": labels.model_label(config),
          "feature_names": win["feature_names"][cols].tolist(), "window_subject": subj_idx}
  return RunInputs(z, pair_data, folds, splits, prompts, prompt_index, usable, info)


SALIENCE_STATS = ("fold", "recording", "dataset")


def salience_values(config, win: dict, cols: np.ndarray, usable: np.ndarray, x: np.ndarray,
                    norm_key: str) -> tuple[np.ndarray, dict]:
  """The normalised values salience is computed from, and their cache identity.

  ``text.salience_stats``: ``"fold"`` (the paper's): each fold's training min-max, ``x``
  itself, ``[folds, W, F]``. ``"recording"``: every recording's own min-max over its usable
  windows, ``[1, W, F]`` (one prompt per window for all folds). ``"dataset"``: min-max over all
  usable windows, ``[1, W, F]``. The feature part of the input keeps the fold's statistics.
  """
  stats = config.text.get("salience_stats", "fold")
  if stats == "fold":
    return x, {"normalise": norm_key}
  if stats not in SALIENCE_STATS:
    raise ValueError(f"unknown config.text.salience_stats {stats!r}: use one of "
                     f"{SALIENCE_STATS}")
  feats = win["features"][:, cols]
  clip = bool(config.features.clip)
  if stats == "dataset":
    values = windows_lib.minmax_normalise(feats, usable, clip)
  else:
    values = np.zeros(feats.shape, np.float32)
    for r in np.unique(win["recording"]):
      rows = win["recording"] == r
      if (rows & usable).any():
        lo, span = windows_lib.minmax_stats(feats, rows & usable)
        values[rows] = windows_lib.minmax_apply(feats[rows], lo, span, clip)
  params = {"stats": stats, "values": values}
  return values[None], params


MIN_SECONDS_FOR_PEAK = 5.0   # shorter encodings log throughput without measuring the peak


def embed_prompts(config, cache_dir: str, prompts: list[str], log: RunLog) -> np.ndarray:
  """``float32 [len(prompts), D]`` from the prompt store, encoding what it lacks; logs counts,
  throughput and the share of the device's matmul peak, and warns when many prompts are cut."""
  tcfg = config.text
  store = text_lib.EmbeddingStore(
      cache_dir, tcfg.backbone, tcfg.model_path, tcfg.get("device", "auto"),
      int(tcfg.batch_size), int(tcfg.get("token_budget", 0)), tcfg.get("precision", "auto"),
      tcfg.get("long_prompts", "truncate"))
  emb = store.embed(prompts)
  cut = store.cut_prompts()
  fields = {}
  if store.encoded_count:
    peak = how = None
    if store.stats.seconds >= MIN_SECONDS_FOR_PEAK:
      peak, how = text_lib.device_peak_gflops(store.device, store.precision)
    fields = store.throughput(peak)
    if how:
      fields["peak"] = how
  log("embeddings", backbone=tcfg.backbone, store=store.path, key=store.key,
      dim=int(emb.shape[1]), newly_encoded=store.encoded_count,
      newly_encoded_truncated=store.truncated_count, prompts=len(prompts),
      over_window=cut, long_prompts=store.long_prompts, chunked=store.stats.chunked,
      pieces=store.stats.pieces, **fields)
  if cut > 0.01 * max(len(prompts), 1):
    action = ("encoded in phrase-boundary pieces" if store.long_prompts == "chunk" else
              "truncated, losing the phrases at their end; consider "
              "--config.text.long_prompts=chunk or --config.text.phrase_order=salience")
    logging.warning("%d of %d prompts (%.1f %%) are longer than %s's window of %d tokens and were "
                    "%s", cut, len(prompts), 100.0 * cut / len(prompts), tcfg.backbone,
                    store.limit(), action)
  store.store.close()
  return emb


def fold_data(folds: protocols.FoldIndices) -> train.FoldData:
  return train.FoldData(folds.train_idx, folds.train_count, folds.val_idx, folds.val_mask,
                        folds.test_idx, folds.test_mask)


def results_arrays(inputs: RunInputs, out: train.TrainOutput, config) -> dict[str, np.ndarray]:
  """The ``results.npz`` arrays (leading fold axis; documented in the README)."""
  f = inputs.folds
  res = {
      "test_accuracy": np.asarray(out.test_accuracy, np.float64),
      "best_val_accuracy": np.asarray(out.val_accuracy, np.float64),
      "best_epoch": np.asarray(out.best_epoch, np.int32),
      "epochs_run": np.asarray(out.epochs_run, np.int32),
      "train_loss": np.asarray(out.train_loss, np.float64),
      "val_accuracy": np.asarray(out.val_curve, np.float64),
      "num_train_pairs": f.train_count.astype(np.int32),
      "num_val_pairs": f.val_mask.sum(1).astype(np.int32),
      "num_test_pairs": f.test_mask.sum(1).astype(np.int32),
      "test_prob": np.asarray(out.test_prob, np.float32),
      "test_label": np.asarray(inputs.pairs.label)[f.test_idx].astype(np.int32),
      "test_mask": f.test_mask,
      "subjects": inputs.splits.subjects,
      "test_subjects": inputs.splits.test,
      "num_params": np.int64(train.TrainSettings.from_config(config).num_params(
          inputs.z.shape[-1])),
      "input_dim": np.int64(inputs.z.shape[-1]),
  }
  if inputs.prompts is not None:
    res["prompts"] = inputs.prompts
    res["prompt_index"] = inputs.prompt_index
    res["usable_windows"] = inputs.usable
  return res


def write_results(workdir: str, arrays: dict[str, np.ndarray]) -> None:
  files_lib.save_npz_atomic(os.path.join(workdir, "results.npz"), arrays)


def write_config(workdir: str, config, extra: dict | None = None) -> None:
  """``config.json``: the full config (loadable with configs/from_json.py) plus resolved fields."""
  payload = json.loads(config.to_json_best_effort())
  payload.update(extra or {})
  files_lib.write_json_atomic(os.path.join(workdir, "config.json"), payload, indent=2,
                              sort_keys=True)


def run(config, workdir: str) -> dict[str, np.ndarray]:
  """Runs one configuration over all folds; writes ``config.json``, ``log.jsonl``, ``results.npz``
  and the model bundle ``bundle/`` (:mod:`lasca_jax.model.bundle`)."""
  validate.check(config)
  os.makedirs(workdir, exist_ok=True)
  log_path = os.path.join(workdir, "log.jsonl")
  if os.path.exists(log_path):
    os.remove(log_path)
  log = RunLog(workdir)
  cache = cache_lib.StageCache(config.cache_dir or None)
  write_config(workdir, config, {"model_label": labels.model_label(config)})
  log("start", workdir=workdir, cache_dir=cache.cache_dir, model_label=labels.model_label(config))
  inputs = prepare(config, cache, log)
  settings = train.TrainSettings.from_config(config)
  layout = train.Layout.from_config(config.train)
  plan = train.plan(int(inputs.z.shape[0]), layout)
  log("train", folds=int(inputs.z.shape[0]), input_dim=int(inputs.z.shape[-1]),
      hidden=list(settings.hidden_sizes(inputs.z.shape[-1])), hidden_from_dim=settings.hidden_dim,
      devices=plan.devices, platform=plan.platform, lanes=plan.lanes,
      compilation_cache=train.enable_compilation_cache(config.get("compilation_cache", "")))
  t0 = time.time()
  out = train.train_folds(settings, int(config.seed), inputs.z, inputs.pairs,
                          fold_data(inputs.folds), layout)
  arrays = results_arrays(inputs, out, config)
  log("trained", seconds=round(time.time() - t0, 3),
      test_accuracy=arrays["test_accuracy"].round(4).tolist(),
      best_epoch=arrays["best_epoch"].tolist())
  write_results(workdir, arrays)
  bundle_lib.write_bundle(workdir, config, inputs, out.params, cache)
  log("bundle", path=bundle_lib.bundle_dir(workdir))
  mean, std, _ = stats.fold_mean_std(arrays["test_accuracy"])
  log("done", mean_test_accuracy=mean, std_test_accuracy=std,
      cache_hits=cache.hits, cache_misses=cache.misses)
  arrays["_cache_hits"] = cache.hits
  arrays["_cache_misses"] = cache.misses
  return arrays
