"""Model bundles: a run's trained models, kept beside ``results.npz`` and applied to new data.

Every run (``pipeline.run``, and each run of a sweep) writes ``<run dir>/bundle/``:

* ``bundle.json``: what is needed to turn raw per-frame features into decisions without the
  dataset: the feature names and their modalities (in column order), the lexicon's phrase per
  feature, the salience rule and its settings, the prompt template (= the modality setting), the
  text backbone name or path, the fusion, window length, target, margin, min-max clipping, the
  MLP's hidden sizes, the number of folds, the format version, the SHA-256 of the two files below,
  and the full config (as ``config.json``). It is written last, so a bundle with it is complete.
* ``params.msgpack``: ``flax.serialization.msgpack_serialize`` of ``{"params": <PreferenceMLP
  parameters with a leading fold axis>, "lo": [K, F], "span": [K, F]}``: each fold's best-epoch
  weights and the min-max statistics of its training windows.
* ``test_windows.npz``: the run's test decisions, so that they can be recomputed and explained
  without the dataset: the raw window features ``features [Wt, F]`` of every window in a test
  pair, their ``recording_ids``/``recording``/``start``, per-fold pair indices ``first``/``second``
  ``[K, n]`` into them with ``mask [K, n]`` (the padding of ``results.npz["test_prob"]``),
  ``label [K, n]`` and, for a baseline-encoder run, its embeddings ``baseline [Wt, B]``.

:func:`lasca_jax.inference.ensemble.load_bundle` returns a ``BundlePredictor``, which recomputes a decision from raw
window features exactly as the pipeline does (``windows.minmax_apply`` with the fold's
statistics, ``salience.salience_mask``, ``templates.build_prompts``, the shared
:class:`lasca_jax.encoders.encoding.EmbeddingStore`, fusion, ``mlp.PreferenceMLP``) for all fold models at
once: its probabilities on the run's test pairs are bit-identical to ``results.npz["test_prob"]``.
Its ``window_predictor`` gives one fold as the streaming
:class:`lasca_jax.inference.stream.WindowPredictor` (one window at a time, warm/cold prompt cache).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import flax.serialization
import jax
import numpy as np

from lasca_jax.data import files as files_lib
from lasca_jax.encoders import text as text_lib
from lasca_jax.method import representation

FORMAT = "lasca_jax.bundle/2"   # /2: the representation recipe; /1 bundles are read too
LEGACY_FORMATS = ("lasca_jax.bundle/1",)
DIRNAME = "bundle"
JSON_FILE = "bundle.json"
PARAMS_FILE = "params.msgpack"
TEST_FILE = "test_windows.npz"


class BundleError(ValueError):
  """A bundle is missing, incomplete or does not fit the input (the message says what to do)."""


def bundle_dir(run_dir: str) -> str:
  return os.path.join(run_dir, DIRNAME)


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _test_windows(inputs) -> dict[str, np.ndarray]:
  """The raw windows of every test pair and per-fold indices into them (module docstring)."""
  f = inputs.folds
  first = np.asarray(inputs.pairs.first)[f.test_idx]                  # [K, n]
  second = np.asarray(inputs.pairs.second)[f.test_idx]
  used = np.unique(np.concatenate([first[f.test_mask], second[f.test_mask]]))
  raw, win = inputs.raw, inputs.windows
  local = np.zeros(raw.shape[0], np.int64)
  local[used] = np.arange(used.size)
  out = {
      "features": raw[used].astype(np.float32),
      "window": used.astype(np.int64),
      "recording": win.recording[used].astype(np.int32),
      "recording_ids": win.recording_ids,
      "start": np.asarray(win.start)[used].astype(np.float64),
      "first": np.where(f.test_mask, local[first], 0),
      "second": np.where(f.test_mask, local[second], 0),
      "mask": f.test_mask,
      "label": np.asarray(inputs.pairs.label)[f.test_idx].astype(np.int32),
  }
  recipe = inputs.recipe
  if recipe.spec.needs_salience and recipe.salience_stats == "recording":
    # Each test window's recording statistics (the bundle does not keep whole recordings).
    lo, span, _ = representation.recording_ranges(raw, win.recording, inputs.usable)
    out["salience_lo"], out["salience_span"] = lo[used], span[used]
  return out


def write_bundle(run_dir: str, inputs, params: Any, fields: dict) -> str:
  """Writes ``<run_dir>/bundle`` for a trained run.

  Args:
    run_dir: the run directory (``results.npz``'s folder).
    inputs: the run's :class:`lasca_jax.run.pipeline.RunInputs` (columns, phrases, per-fold
      min-max statistics, windows, the recipe of ``z``).
    params: the trained ``PreferenceMLP`` parameters with a leading fold axis.
    fields: the config-derived fields of ``bundle.json`` (window, target, margin, salience,
      template, backbone, time base, MLP sizes, the config: ``run.settings.bundle_fields``).

  Returns:
    The bundle folder.
  """
  num_folds = inputs.num_folds
  folder = bundle_dir(run_dir)
  os.makedirs(folder, exist_ok=True)
  json_path = os.path.join(folder, JSON_FILE)
  if os.path.exists(json_path):
    os.remove(json_path)      # An incomplete rewrite must not look complete.
  state = {"params": jax.tree.map(np.asarray, params), "lo": inputs.lo, "span": inputs.span}
  files_lib.write_bytes_atomic(os.path.join(folder, PARAMS_FILE),
                             flax.serialization.msgpack_serialize(state))
  tests = _test_windows(inputs)
  recipe = inputs.recipe
  if recipe.spec.needs_baseline:
    tests["baseline"] = inputs.z[0][tests["window"], recipe.slices()["baseline"]]
  files_lib.save_npz_atomic(os.path.join(folder, TEST_FILE), tests)
  d = int(inputs.z.shape[-1])
  meta = {
      **fields,
      "format": FORMAT,
      "model_label": inputs.model_label,
      "fusion": recipe.fusion,
      "feature_names": inputs.feature_names,
      "modalities": inputs.modalities,
      "phrases": inputs.phrases,
      "representation": recipe.to_json(),
      "salience_on_new_data": salience_on_new_data(recipe),
      "input_dim": d,
      "random_text": inputs.random_text,
      "num_folds": num_folds,
      "files": {PARAMS_FILE: _sha256(os.path.join(folder, PARAMS_FILE)),
                TEST_FILE: _sha256(os.path.join(folder, TEST_FILE))},
  }
  files_lib.write_bytes_atomic(json_path, json.dumps(meta, indent=1, sort_keys=True).encode())
  return folder


def salience_on_new_data(recipe: representation.Recipe) -> str:
  """What a bundle does with ``text.salience_stats`` on new recordings (one line, also in every
  prediction's summary)."""
  if not recipe.spec.needs_salience:
    return ""
  return {
      "fold": "each fold model's training min-max statistics, as in training",
      "recording": "the new recording's own min-max over its usable windows, as in training",
      "dataset": "the training dataset's min-max statistics kept in the bundle (a new "
                 "recording is not added to them, unlike the training population)",
  }[recipe.salience_stats]


def legacy_recipe(meta: dict, json_path: str) -> representation.Recipe:
  """The recipe of a ``lasca_jax.bundle/1`` bundle, from its fields and config."""
  text = meta["config"].get("text", {})
  stats, order = text.get("salience_stats", "fold"), text.get("phrase_order", "feature")
  spec = representation.get(meta["fusion"])
  if spec.needs_salience and stats in ("dataset", "recording"):
    raise BundleError(f"{json_path}: this bundle predates saved salience statistics and its "
                      f"run used text.salience_stats={stats!r}; rerun the run to rewrite it")
  sal = meta["salience"]
  return representation.Recipe(
      fusion=meta["fusion"], modalities=tuple(meta["modalities"]),
      phrases=tuple(meta["phrases"]) if meta["phrases"] is not None else None,
      template=meta["template"], clip=bool(meta["clip"]),
      salience=(sal["rule"], int(sal["k"]), float(sal["threshold"])),
      salience_stats=stats if spec.needs_salience else "fold", phrase_order=order,
      input_dim=int(meta["input_dim"]), random_text=meta.get("random_text"),
      part_dims=_legacy_part_dims(spec, len(meta["modalities"]), int(meta["input_dim"]),
                                  meta["config"].get("model", {}).get("hidden_from", "")))


def _legacy_part_dims(spec: representation.Fusion, num_features: int, input_dim: int,
                      hidden_from: str) -> tuple:
  """Part widths of a /1 bundle: the text or baseline part takes what the features leave; a
  capacity-padded run (``model.hidden_from="fused"``) was padded to ``F + D``."""
  fixed = {"features": num_features, "mask": num_features}
  rest = input_dim - sum(fixed.get(p, 0) for p in spec.parts)
  if hidden_from == "fused" and "features" not in spec.parts:
    rest = input_dim - num_features
  return tuple((p, fixed.get(p, rest)) for p in spec.parts)


def test_ranges(tests: dict) -> tuple | None:
  """The test windows' recording statistics (``salience_stats="recording"``), or None."""
  if "salience_lo" in tests:
    return tests["salience_lo"], tests["salience_span"]
  return None


def _check_backbone(meta: dict, json_path: str, model_path: str | None) -> None:
  if not representation.get(meta["fusion"]).encoded:
    return
  try:
    text_lib.resolve(meta["backbone"], meta["model_path"] if model_path is None else model_path)
  except (ValueError, FileNotFoundError) as e:
    raise BundleError(f"{json_path}: text backbone {meta['backbone']!r} is not available here "
                      f"({e}); install it or pass its local folder (predict.py "
                      "--text_model_path)") from None


def runs_inside(folder: str, limit: int = 1000) -> list[str]:
  """The run directories with a complete bundle below ``folder`` (a sweep), relative, sorted;
  at most ``limit``."""
  found = []
  for parent, dirs, files in os.walk(folder):
    dirs.sort()
    if os.path.basename(parent) == DIRNAME and JSON_FILE in files:
      found.append(os.path.relpath(os.path.dirname(parent), folder))
      dirs[:] = []
      if len(found) >= limit:
        break
  return sorted(found)


def read_bundle(run_dir: str, model_path: str | None = None
                ) -> tuple[str, dict, dict, representation.Recipe]:
  """Reads and checks ``<run_dir>/bundle`` (or a bundle folder itself): ``(folder, meta, state,
  recipe)``; :func:`lasca_jax.inference.ensemble.load_bundle` makes the predictor of it.

  Args:
    run_dir: a run directory written by ``pipeline.run`` or a sweep, or its ``bundle`` folder.
    model_path: a local folder of the text backbone, overriding the bundle's.

  Raises:
    BundleError: one line naming the file and what to do (no bundle, incomplete or altered
      bundle, another format, unknown backbone).
  """
  folder = run_dir if os.path.exists(os.path.join(run_dir, JSON_FILE)) else bundle_dir(run_dir)
  json_path = os.path.join(folder, JSON_FILE)
  if not os.path.isdir(run_dir):
    raise BundleError(f"run directory {run_dir} does not exist")
  if not os.path.exists(json_path):
    inside = runs_inside(run_dir)
    if inside:
      shown = ", ".join(inside[:3]) + (f" and {len(inside) - 3} more" if len(inside) > 3 else "")
      raise BundleError(f"{run_dir} is not one run but holds {len(inside)} trained runs "
                        f"({shown}); pass one of them as --run")
    if not os.path.exists(os.path.join(run_dir, "config.json")):
      raise BundleError(f"{run_dir} is not a run directory (no config.json, no bundle/); pass "
                        "the --workdir of an experiments/main.py run or a run inside a sweep")
    raise BundleError(f"{json_path} does not exist: {run_dir} was written before model bundles "
                      "(or its run did not finish); rerun it with experiments/main.py (cached "
                      "stages make this quick) to get a bundle")
  try:
    with open(json_path) as f:
      meta = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise BundleError(f"{json_path} is unreadable ({e}); rerun the run to rewrite it") from None
  if meta.get("format") not in (FORMAT,) + LEGACY_FORMATS:
    raise BundleError(f"{json_path} has format {meta.get('format')!r}, this code reads {FORMAT!r}"
                      "; rerun the run with this version")
  for name, digest in meta["files"].items():
    path = os.path.join(folder, name)
    if not os.path.exists(path) or _sha256(path) != digest:
      raise BundleError(f"{path} is missing or does not match {json_path} (changed after the "
                        "run); rerun the run to rewrite the bundle")
  try:
    _check_backbone(meta, json_path, model_path)
    recipe = (legacy_recipe(meta, json_path) if meta["format"] in LEGACY_FORMATS else
              representation.Recipe.from_json(meta["representation"]))
  except BundleError:
    raise
  except (ValueError, TypeError, KeyError) as e:   # an unregistered fusion, or a bad recipe
    raise BundleError(f"{json_path}: cannot read its representation ({e}); rerun the run with "
                      "this version") from None
  with open(os.path.join(folder, PARAMS_FILE), "rb") as f:
    state = flax.serialization.msgpack_restore(f.read())
  return folder, meta, state, recipe
