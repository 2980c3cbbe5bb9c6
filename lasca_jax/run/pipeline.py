"""The LaScA pipeline: cached host-side stages, then all folds trained in one compiled call.

``run(config, workdir)`` is what ``experiments/main.py`` calls; a notebook or a test calls it the
same way. :func:`prepare` runs the stages (:mod:`lasca_jax.run.stages`, each a pure function of
its inputs whose result is cached by content hash) and returns one :class:`RunInputs` holding
everything later steps need:

  frames -> windows -> normalise (per fold) -> salience -> prompts -> embeddings -> fusion
                    \\-> pairs -> fold indices -> train (jit(vmap(train)) over folds)

Fusion (a concatenation of cached arrays) is assembled in memory rather than cached. Everything a
run writes goes through :class:`lasca_jax.run.rundir.RunDir`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import Any, NamedTuple

import numpy as np

# The one import up the layers: a run logs its fold mean as the tables compute it.
from lasca_jax.analysis import stats
from lasca_jax.data import types as data_lib
from lasca_jax.encoders import embedder as embedder_lib, text as text_lib
from lasca_jax.method import controls, coverage, lexicon, protocols, representation, templates
from lasca_jax.method import windows as windows_lib
from lasca_jax.model import degenerate, placement, programs, train
from lasca_jax.run import (cache as cache_lib, labels, results_file,
                           settings as settings_lib, stages, validate)
from lasca_jax.run.rundir import RunDir, RunLog


class StageKeys(NamedTuple):
  """Cache keys of the stages a run used (``""``: the stage did not run)."""
  frames: str
  windows: str
  normalise: str
  pairs: str
  salience: str = ""
  prompts: str = ""
  baseline: str = ""


@dataclasses.dataclass(frozen=True, eq=False)
class RunInputs:
  """Everything the trainer needs for one configuration, what the results record, and what a
  model bundle or the latency path rebuilds a decision from (nothing is reloaded by key).

  ``W`` windows, ``F`` feature columns of the modality, ``folds`` folds or seeds.
  """
  z: np.ndarray                     # float32 [folds, W, d] the MLP's per-window input
  pairs: train.PairData             # [P] numpy arrays (padded; training ignores the padding)
  folds: protocols.FoldIndices      # [folds, ...]
  splits: protocols.FoldSplits
  usable: np.ndarray                # bool [W]
  windows: windows_lib.Windows      # every window, every feature column
  columns: np.ndarray               # int [F] the modality's columns of windows.features
  window_subject: np.ndarray        # int32 [W] index into splits.subjects
  lo: np.ndarray                    # [folds, F] min-max statistics of each fold's training
  span: np.ndarray                  # [folds, F] windows (windows.minmax_stats)
  phrases: list | None              # [F] lexicon phrase per feature (None: no lexicon applies)
  prompts: np.ndarray | None        # [U] distinct prompts (None for models without text)
  prompt_index: np.ndarray | None   # [folds, W] index into prompts
  prompt_embeddings: np.ndarray | None  # float32 [U, D] (zeros for prompts of unusable windows)
  baseline: np.ndarray | None       # float32 [W, B] frozen-encoder embeddings (baseline fusion)
  random_text: dict | None          # the random-text control's {"seed", "norm", "dim"}
  keys: StageKeys
  model_label: str
  recipe: representation.Recipe     # every setting that shaped z (saved in the bundle)
  train_settings: train.TrainSettings   # the trainer's (built once, here, from the config)
  encoder: embedder_lib.EncoderSettings  # the sentence encoder's

  @property
  def input_dim(self) -> int:
    return int(self.z.shape[-1])

  @property
  def num_folds(self) -> int:
    return int(self.z.shape[0])

  @property
  def feature_names(self) -> list[str]:
    return self.windows.feature_names[self.columns].tolist()

  @property
  def modalities(self) -> list[str]:
    """``"face"``/``"audio"`` of every feature column."""
    return self.windows.modalities[self.columns].tolist()

  @property
  def raw(self) -> np.ndarray:
    """``float32 [W, F]``: the raw mean-pooled features of the modality's columns."""
    return self.windows.features[:, self.columns]

  def train_windows(self, fold: int) -> np.ndarray:
    """``bool [W]``: the usable windows of ``fold``'s training subjects (its min-max rows)."""
    return protocols.training_windows(self.usable, self.splits.train[fold], self.window_subject)


def lexicon_kind(config) -> str:
  """The lexicon ``config`` uses (:func:`lexicon.resolve_kind` of ``text.lexicon`` and the
  dataset's own lexicon file)."""
  return lexicon.resolve_kind(config.text.lexicon, config.data.get("lexicon", ""),
                              config.data.get("root", ""))


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
  fcfg = config.features
  _check_fusion(config, prompt_sink)
  frames = load_frames(config, cache, log)
  coverage.check_window_length(frames.value.times, frames.value.recording,
                               float(fcfg.window_seconds))
  win = stages.windows(cache, frames=frames, window_seconds=float(fcfg.window_seconds))
  cols = windows_lib.modality_columns(win.value.modalities, fcfg.modality)
  train_settings = settings_lib.train_settings(config)   # a bad field: fail before any work
  encoder = settings_lib.encoder(config.text)
  pad_dim = embedder_lib.fused_dim(str(config.model.get("hidden_from", "")), encoder,
                                   int(cols.size))
  fusion = representation.get(config.model.fusion)
  # Known (or an error) before any work: the random-text control's vector norm.
  random_norm = (embedder_lib.random_norm(config.text.get("random_norm", 0.0), encoder)
                 if fusion.text == "random" else None)
  usable, base = usable_windows(config, cache, win, cols, log)
  splits, window_subject = subject_folds(config, win, usable, cols, log)
  norm = stages.normalise(cache, windows=win, modality=fcfg.modality, clip=bool(fcfg.clip),
                          usable=usable, train_subjects=splits.train, subjects=splits.subjects)
  pairs, folds = pairs_and_folds(config, cache, win, usable, splits, window_subject, log)
  x = norm.value.values                                                        # [folds, W, F]
  names = win.value.feature_names[cols].tolist()
  mods = win.value.modalities[cols].tolist()

  parts = {}
  if fusion.has_features:
    parts["features"] = x
  if fusion.needs_baseline:
    emb = base.value.embeddings
    parts["baseline"] = np.broadcast_to(np.nan_to_num(emb), (x.shape[0],) + emb.shape)
  sal = values = None
  if fusion.needs_salience:
    values = salience_values(config, cache, win, cols, usable, norm)
    sal = salience_of(config, cache, values, mods)
  if "mask" in fusion.parts:
    parts["mask"] = np.broadcast_to(sal.value.mask, x.shape).astype(np.float32)  # [folds, W, F]
    log("mask", key=sal.key, salient_per_window=float(sal.value.mask[:, usable].sum(-1).mean()))
  text = prompt_index = None
  if fusion.needs_prompts:
    text = prompt_text(config, cache, sal, values, names, mods, usable, random_norm, log,
                       prompt_sink, encoder)
    prompt_index = np.broadcast_to(text.table.value.index, x.shape[:2])       # [folds, W]
    parts["text"] = text.embeddings[prompt_index]
    phrases = text.phrases
  else:
    phrases = optional_phrases(config, names, mods)
  z = representation.assemble(fusion, parts, pad_dim)
  recipe = make_recipe(config, win.value.features[:, cols], usable, mods, phrases,
                       int(z.shape[-1]), text.random_text if text else None,
                       tuple((p, int(v.shape[-1])) for p, v in parts.items()))
  keys = StageKeys(frames.key, win.key, norm.key, pairs.key,
                   salience=sal.key if sal else "", prompts=text.table.key if text else "",
                   baseline=base.key if base else "")
  return RunInputs(
      z=z, pairs=pair_data(pairs.value), folds=folds, splits=splits, usable=usable,
      windows=win.value, columns=cols, window_subject=window_subject, lo=norm.value.lo,
      span=norm.value.span, phrases=phrases,
      prompts=text.table.value.prompts if text else None,
      prompt_index=prompt_index,
      prompt_embeddings=text.embeddings if text else None,
      baseline=base.value.embeddings if base else None,
      random_text=text.random_text if text else None, keys=keys,
      model_label=labels.model_label(config), recipe=recipe, train_settings=train_settings,
      encoder=encoder)


def make_recipe(config, features: np.ndarray, usable: np.ndarray, mods: list[str],
                phrases: list | None, input_dim: int, random_text: dict | None,
                part_dims: tuple = ()) -> representation.Recipe:
  """Every setting of ``config`` that shapes ``z`` (:class:`representation.Recipe`);
  ``features [W, F]`` are the raw windows of the modality (the dataset statistics of
  ``text.salience_stats="dataset"``)."""
  fcfg, tcfg = config.features, config.text
  stats_kind = tcfg.get("salience_stats", "fold")
  lo = span = None
  if stats_kind == "dataset":
    lo, span = (tuple(v.tolist()) for v in windows_lib.minmax_stats(features, usable))
  return representation.Recipe(
      fusion=config.model.fusion, modalities=tuple(mods),
      phrases=tuple(phrases) if phrases is not None else None, template=fcfg.modality,
      clip=bool(fcfg.clip),
      salience=(tcfg.salience, int(tcfg.salience_k), float(tcfg.salience_threshold)),
      salience_stats=stats_kind, salience_lo=lo, salience_span=span,
      phrase_order=tcfg.get("phrase_order", "feature"), input_dim=input_dim,
      random_text=random_text, part_dims=part_dims)


def _check_fusion(config, prompt_sink) -> None:
  if representation.get(config.model.fusion).encoded and prompt_sink is None:
    tcfg = config.text
    engine = tcfg.get("engine", "torch")   # bad engine/device/precision: fail first
    text_lib.resolve_engine_precision(
        engine, tcfg.get("precision", "auto"),
        text_lib.resolve_engine_device(engine, tcfg.get("device", "auto")))


def load_frames(config, cache: cache_lib.StageCache, log: RunLog) -> stages.Keyed:
  """The ``frames`` stage of ``config.data``, logged with its columns by modality."""
  frames = stages.frames(cache, data=stages.data_input(config.data))
  f = frames.value
  log("frames", key=frames.key, frames=int(f.times.size), recordings=int(f.recording_ids.size),
      subjects=int(np.unique(f.subject_ids).size),
      columns_by_modality={m: f.feature_names[f.modalities == m].tolist()
                           for m in data_lib.MODALITIES})
  return frames


def usable_windows(config, cache: cache_lib.StageCache, win: stages.Keyed, cols: np.ndarray,
                   log: RunLog) -> tuple[np.ndarray, stages.Keyed | None]:
  """``(usable [W], baseline stage or None)``; an error naming the cause when none is usable."""
  fcfg, target = config.features, config.pairs.target
  partial, min_valid = bool(fcfg.get("partial_windows", False)), float(fcfg.min_valid_fraction)
  coverage.check_target(win.value, target)
  usable = windows_lib.usable_windows(win.value, fcfg.modality, min_valid, target, partial)
  if not usable.any():
    raise ValueError(coverage.explain_unusable(win.value, fcfg.modality, target, min_valid,
                                               partial))
  base = None
  if representation.get(config.model.fusion).needs_baseline:
    base = stages.baseline(cache, windows=win,
                           directory=stages.baseline_input(config.model.baseline_dir),
                           window_seconds=float(fcfg.window_seconds))
    usable = usable & np.isfinite(base.value.embeddings).all(axis=1)
    log("baseline", key=base.key, dir=config.model.baseline_dir,
        dim=int(base.value.embeddings.shape[1]))
  if not usable.any():
    raise ValueError(f"no window has finite embeddings in {config.model.baseline_dir} "
                     "(model.baseline_dir): check the recording ids and times of its files")
  return usable, base


def subject_folds(config, keyed_windows: stages.Keyed, usable: np.ndarray, cols: np.ndarray,
                  log: RunLog) -> tuple[protocols.FoldSplits, np.ndarray]:
  """The subject splits (subjects without a usable window left out before the folds are drawn)
  and every window's subject index ``int32 [W]``."""
  fcfg, target, win = config.features, config.pairs.target, keyed_windows.value
  empty = coverage.empty_subjects(win, usable, fcfg.modality, target,
                                  float(fcfg.min_valid_fraction),
                                  bool(fcfg.get("partial_windows", False)))
  log("windows", key=keyed_windows.key, windows=int(usable.size), usable=int(usable.sum()),
      features=int(cols.size), excluded_subjects=empty)
  if empty:
    logging.warning("%d subjects have no usable window and are left out of the protocol: %s",
                    len(empty), coverage.describe_empty(empty))
  splits = protocols.subject_splits(win.subject_ids, config.protocol.name,
                                    int(config.protocol.num_folds), split_seed(config),
                                    float(config.protocol.test_fraction), excluded=list(empty))
  return splits, protocols.subject_index(win.subject, splits.subjects)


def pairs_and_folds(config, cache: cache_lib.StageCache, win: stages.Keyed, usable: np.ndarray,
                    splits: protocols.FoldSplits, window_subject: np.ndarray, log: RunLog
                    ) -> tuple[stages.Keyed, protocols.FoldIndices]:
  """The ``pairs`` stage and every fold's training, validation and test pair indices."""
  pcfg = config.pairs
  pairs = stages.pairs(cache, windows=win, usable=usable, target=pcfg.target,
                       margin=float(pcfg.margin), eps=float(pcfg.eps))
  p = pairs.value
  if p.label.size == 0:
    raise ValueError(
        f"no preference pairs: no consecutive usable windows change {pcfg.target} by "
        f"more than margin {pcfg.margin} ({int(usable.sum())} usable windows); lower "
        "pairs.margin or features.min_valid_fraction")
  folds = protocols.fold_indices(
      p, window_subject[p.first], splits, int(config.seed),
      float(config.train.validation_fraction), config.train.validation_grouping,
      int(config.train.batch_size))
  warnings = coverage.pair_warnings(float(pcfg.margin), pcfg.target, folds.val_mask.sum(1),
                                    folds.test_mask.sum(1), int(p.label.size))
  log("pairs", key=pairs.key, pairs=int(p.label.size),
      train=folds.train_count.tolist(), val=folds.val_mask.sum(1).tolist(),
      test=folds.test_mask.sum(1).tolist(), warnings=warnings)
  for warning in warnings:
    logging.warning("%s", warning)
  return pairs, folds


def pair_data(pairs) -> train.PairData:
  """The trainer's pairs, padded to a coarse size (never indexed; training ignores them) so that
  runs of similar size reuse one compiled program."""
  n_pad = protocols.bucket_size(pairs.label.size, 1024) - pairs.label.size
  return train.PairData(*[np.pad(getattr(pairs, k), (0, n_pad))
                          for k in ("first", "second", "label")])


def salience_of(config, cache: cache_lib.StageCache, values: stages.Keyed, mods: list[str]
                ) -> stages.Keyed:
  """The ``salience`` stage: ``text.salience``'s rule on ``values``; a parameter the rule does
  not use is not passed (so it is not in the key)."""
  tcfg = config.text
  return stages.salience(
      cache, values=values, modalities=mods, rule=tcfg.salience,
      k=int(tcfg.salience_k) if tcfg.salience == "topk" else None,
      threshold=float(tcfg.salience_threshold) if tcfg.salience == "threshold" else None)


def phrases_of(config, names: list[str], mods: list[str]) -> list:
  """The lexicon's phrase for every feature column (``text.lexicon``)."""
  tcfg = config.text
  return lexicon.build_lexicon(lexicon_kind(config), names, mods, int(tcfg.lexicon_seed),
                               tcfg.uncovered)


def optional_phrases(config, names: list[str], mods: list[str]) -> list | None:
  """Models without text keep the configured lexicon's phrases too (explanations name cues by
  them); None when that lexicon does not apply to these features."""
  try:
    return phrases_of(config, names, mods)
  except (ValueError, FileNotFoundError):
    return None


class PromptText(NamedTuple):
  """The text part of a run: phrases, the ``prompts`` stage, and an embedding per prompt."""
  phrases: list
  table: stages.Keyed           # PromptTable
  embeddings: np.ndarray        # float32 [U, D] (zeros for prompts no usable window has)
  random_text: dict | None      # the random-text control's {"seed", "norm", "dim"}


def prompt_text(config, cache: cache_lib.StageCache, sal: stages.Keyed, values: stages.Keyed,
                names: list[str], mods: list[str], usable: np.ndarray, random_norm, log: RunLog,
                prompt_sink: list | None, encoder: embedder_lib.EncoderSettings) -> PromptText:
  """Prompts from the salience masks, and their embeddings (encoded, random for the random-text
  control, or zeros with the prompts appended to ``prompt_sink``)."""
  fcfg, tcfg = config.features, config.text
  phrases = phrases_of(config, names, mods)
  order = tcfg.get("phrase_order", "feature")
  if order not in templates.PHRASE_ORDERS:
    raise ValueError(f"unknown config.text.phrase_order {order!r}: use one of "
                     f"{templates.PHRASE_ORDERS}")
  lexicon.source_key(lexicon_kind(config))  # A missing lexicon file is an error naming it.
  table = stages.prompts(cache, salience=sal, phrases=phrases, modalities=mods,
                         modality=fcfg.modality, values=values if order == "salience" else None)
  prompts, index = table.value.prompts, table.value.index
  used = np.unique(index[:, usable])
  log("prompts", key=table.key, distinct=int(prompts.size), distinct_used=int(used.size),
      salience_stats=tcfg.get("salience_stats", "fold"), phrase_order=order,
      uncovered_by_lexicon=[n for n, p in zip(names, phrases)
                            if p is None or p == lexicon.feature_name_phrase(n)])
  random_text = None
  if representation.get(config.model.fusion).text == "random":
    dim, _ = encoder.geometry()
    random_text = {"seed": int(tcfg.random_seed), "norm": random_norm, "dim": dim}
    emb = controls.random_prompt_embeddings(prompts[used].tolist(), dim,
                                            int(tcfg.random_seed), random_norm)
    log("embeddings", backbone=tcfg.backbone, random=True, dim=int(dim), norm=random_norm,
        random_seed=int(tcfg.random_seed), newly_encoded=0)
  elif prompt_sink is not None:
    prompt_sink.extend(prompts[used].tolist())
    emb = np.zeros((used.size, 1), np.float32)
  else:
    emb = embedder_lib.embed_and_log(encoder,
                                     cache.cache_dir, prompts[used].tolist(), log)
  table_emb = np.zeros((prompts.size, emb.shape[1]), np.float32)
  table_emb[used] = emb
  return PromptText(phrases, table, table_emb, random_text)


def salience_values(config, cache: cache_lib.StageCache, win: stages.Keyed, cols: np.ndarray,
                    usable: np.ndarray, norm: stages.Keyed) -> stages.Keyed:
  """The normalised values salience is computed from, with their cache identity.

  ``text.salience_stats``: ``"fold"`` (the paper's): each fold's training min-max, the
  ``normalise`` stage itself, ``[folds, W, F]``. ``"recording"`` (every recording's own min-max
  over its usable windows) and ``"dataset"`` (min-max over all usable windows): the
  ``salience_values`` stage, ``[1, W, F]`` (one prompt per window for all folds). The feature
  part of the input keeps the fold's statistics.
  """
  stats_kind = config.text.get("salience_stats", "fold")
  if stats_kind == "fold":
    return stages.Keyed(norm.key, norm.value.values)
  values = stages.salience_values(cache, windows=win, columns=cols, usable=usable,
                                  stats=stats_kind, clip=bool(config.features.clip))
  return stages.Keyed(values.key, values.value.values)


class TrainedRun(NamedTuple):
  """One configuration prepared and trained (all folds)."""
  inputs: RunInputs
  output: train.TrainOutput   # leading fold axis
  arrays: dict                # the results.npz arrays


def finish(out: RunDir, config, inputs: RunInputs, output: train.TrainOutput, seconds: float,
           done: dict | None = None, **fields: Any) -> dict[str, np.ndarray]:
  """Writes a trained run (``results.npz``, ``bundle/``) and logs ``trained`` (with ``fields``)
  and ``done`` (with ``done``); returns the results arrays. ``main`` and the sweep both end here."""
  arrays = results_file.arrays(
      inputs, output, inputs.train_settings.num_params(inputs.input_dim))
  f = inputs.folds
  few = bool(coverage.pair_warnings(float(config.pairs.margin), config.pairs.target,
                                    f.val_mask.sum(1), f.test_mask.sum(1), 0))
  changes = {k[len("change_"):]: v for k, v in arrays.items() if k.startswith("change_")}
  warning = degenerate.warning(arrays["degenerate"], changes, few, float(config.pairs.margin))
  out.log("trained", seconds=round(seconds, 3), **fields,
          test_accuracy=arrays["test_accuracy"].round(4).tolist(),
          best_epoch=arrays["best_epoch"].tolist(),
          degenerate_folds=np.flatnonzero(arrays["degenerate"]).tolist(),
          one_class_folds=degenerate.one_class_folds(arrays["test_prob"], arrays["test_mask"]),
          change={k: round(float(np.mean(v)), 5) for k, v in changes.items()},
          **({"selected": {k[len("selected_"):]: v.tolist() for k, v in arrays.items()
                           if k.startswith("selected_")}} if "select_choice" in arrays else {}))
  if warning:
    logging.warning("%s", warning)
  out.write_results(arrays)
  out.write_bundle(config, inputs, output.params)
  mean, std, _ = stats.fold_mean_std(arrays["test_accuracy"])
  out.log("done", mean_test_accuracy=mean, std_test_accuracy=std, **(done or {}))
  return arrays


def train_run(config, out: RunDir, cache: cache_lib.StageCache) -> TrainedRun:
  """Prepares ``config``, trains all its folds in one compiled call and writes the run to
  ``out`` (:func:`finish`)."""
  # Before prepare: the JAX sentence encoder's compiled shapes are kept there too.
  compilation_cache = placement.enable_compilation_cache(config.get("compilation_cache", ""))
  inputs = prepare(config, cache, out.log)
  settings = inputs.train_settings
  layout = settings_lib.layout(config)
  plan = placement.plan(inputs.num_folds, layout)
  out.log("train", folds=inputs.num_folds, input_dim=inputs.input_dim,
          hidden=list(settings.hidden_sizes(inputs.input_dim)), hidden_from_dim=settings.hidden_dim,
          devices=plan.devices, platform=plan.platform, lanes=plan.lanes,
          fast_compile=settings.fast_compile, compilation_cache=compilation_cache)
  t0, before = time.time(), dict(programs.counts)
  output = train.train_folds(settings, int(config.seed), inputs.z, inputs.pairs, inputs.folds,
                             layout)
  arrays = finish(out, config, inputs, output, time.time() - t0,
                  done={"cache_hits": cache.hits, "cache_misses": cache.misses},
                  stored_program=programs.since(before))
  return TrainedRun(inputs, output, arrays)


def start(workdir: str | None, config, cache: cache_lib.StageCache, claim: str = "",
          **fields: Any) -> RunDir:
  """Starts the run directory of ``config`` (:meth:`RunDir.start`; ``config.json`` records the
  resolved ``model_label``; ``claim`` locks it for this process)."""
  return RunDir.start(workdir, config, {"model_label": labels.model_label(config)},
                      claim=claim, cache_dir=cache.cache_dir, **fields)


def run(config, workdir: str) -> dict[str, np.ndarray]:
  """Runs one configuration over all folds; writes ``config.json``, ``log.jsonl``, ``results.npz``
  and the model bundle ``bundle/`` (:mod:`lasca_jax.model.bundle`)."""
  validate.check(config)
  cache = cache_lib.StageCache(config.cache_dir or None)
  out = start(workdir, config, cache, claim="experiments/main.py")
  try:
    arrays = dict(train_run(config, out, cache).arrays)
  except KeyboardInterrupt:
    with contextlib.suppress(OSError):
      out.log("interrupted", stage=out.log.last_event)
    raise
  except Exception as e:  # Logged as a failed event (when the folder can take it), then raised.
    with contextlib.suppress(OSError):
      out.fail(config, out.log.last_event, e, announce=False)  # The caller says it.
    raise
  finally:   # Released now: a notebook's traceback would otherwise keep the folder locked.
    out.release()
  arrays["_cache_hits"] = cache.hits
  arrays["_cache_misses"] = cache.misses
  return arrays
