"""Feature -> phrase lexicons (Sec. 3.1, Appendix B, Table 7).

* ``"llm"``: the paper's affect-aware lexicon, Appendix B Table 8 (MFCCs 0-12) and Table 9
  (43 of the 52 MediaPipe blendshapes). The paper's tables do not cover 9 blendshapes
  (``_neutral``, ``eyeLookIn/Out/Up Left/Right``, ``mouthLeft``, ``mouthRight``), the 6 head-pose
  values, or MFCCs 13 and 14. These features keep their feature-name phrase (below), so that every
  salient feature is described and no cue silently disappears from the text; the list is
  returned by :func:`uncovered` and logged per run.
* ``"feature_name"``: the Table 7 baseline; the phrase is the feature name split into words
  (``browDownLeft`` -> ``brow down left``, ``mfcc_3`` -> ``mfcc 3``).
* ``"shuffled"``: the phrases of the lexicon in use permuted across features of the same
  modality with a seeded permutation (the Sec. 6 perturbation study): same vocabulary, broken
  grounding. ``"shuffled:<lexicon>"`` names the lexicon; the pipeline resolves plain
  ``"shuffled"`` to the run's own lexicon (the dataset's lexicon file when there is one, else
  the paper's ``"llm"``).
* a path to a JSON object or a two-column CSV (``feature,phrase``): the user's lexicon, with the
  feature-name phrase for features it does not list.
"""

from __future__ import annotations

import csv
import json
import os
import re
from typing import Mapping, Sequence

import numpy as np
from lasca_jax.data import checks

# Appendix B, Table 8: MFCC acoustic features.
PAPER_AUDIO_LEXICON: dict[str, str] = {
    "mfcc_0": "high arousal energy",
    "mfcc_1": "dominant low tone",
    "mfcc_2": "neutral stability",
    "mfcc_3": "tense vocal focus",
    "mfcc_4": "clear controlled tone",
    "mfcc_5": "urgent brightness",
    "mfcc_6": "strained timbre",
    "mfcc_7": "assertive pressure",
    "mfcc_8": "excited anxiety",
    "mfcc_9": "tight emphasis",
    "mfcc_10": "breathy nervousness",
    "mfcc_11": "withdrawn low energy",
    "mfcc_12": "piercing tension",
}

# Appendix B, Table 9: facial blendshapes, keyed as in the paper (``Face_`` prefix).
PAPER_FACE_LEXICON: dict[str, str] = {
    "Face_browDownLeft": "left brow down focused irritation",
    "Face_browDownRight": "right brow down skeptical tension",
    "Face_browInnerUp": "inner brows up sad vulnerability",
    "Face_browOuterUpLeft": "left outer brow up curious surprise",
    "Face_browOuterUpRight": "right outer brow up questioning surprise",
    "Face_cheekPuff": "cheeks puff held frustration",
    "Face_cheekSquintLeft": "left cheek tight restrained smile",
    "Face_cheekSquintRight": "right cheek tight restrained smile",
    "Face_eyeBlinkLeft": "left blink stress regulation",
    "Face_eyeBlinkRight": "right blink stress regulation",
    "Face_eyeLookDownLeft": "left gaze down shame reflection",
    "Face_eyeLookDownRight": "right gaze down shame reflection",
    "Face_eyeSquintLeft": "left eye squint suspicious focus",
    "Face_eyeSquintRight": "right eye squint evaluative doubt",
    "Face_eyeWideLeft": "left eye wide alarm arousal",
    "Face_eyeWideRight": "right eye wide heightened alertness",
    "Face_jawForward": "jaw thrust assertive dominance",
    "Face_jawLeft": "jaw left uneasy tension",
    "Face_jawOpen": "jaw drop shock surprise",
    "Face_jawRight": "jaw right uneasy tension",
    "Face_mouthClose": "lips closed emotional restraint",
    "Face_mouthPressLeft": "left lip press suppressed anger",
    "Face_mouthPressRight": "right lip press controlled tension",
    "Face_mouthRollLower": "lower lip roll inhibited emotion",
    "Face_mouthRollUpper": "upper lip roll inhibited emotion",
    "Face_mouthFrownLeft": "left corner down sad disapproval",
    "Face_mouthFrownRight": "right corner down sad disapproval",
    "Face_mouthLowerDownLeft": "left lower lip down vulnerable sadness",
    "Face_mouthLowerDownRight": "right lower lip down vulnerable sadness",
    "Face_mouthSmileLeft": "left smile smirk positivity",
    "Face_mouthSmileRight": "right smile genuine positivity",
    "Face_mouthDimpleLeft": "left dimple warm engagement",
    "Face_mouthDimpleRight": "right dimple warm engagement",
    "Face_mouthStretchLeft": "left mouth stretch awkward tension",
    "Face_mouthStretchRight": "right mouth stretch awkward tension",
    "Face_mouthFunnel": "mouth funnel uncertain anticipation",
    "Face_mouthPucker": "lip pucker affection hesitation",
    "Face_mouthShrugLower": "lower lip shrug doubt uncertainty",
    "Face_mouthShrugUpper": "upper lip shrug skeptical hesitation",
    "Face_mouthUpperUpLeft": "left upper lip up disgust contempt",
    "Face_mouthUpperUpRight": "right upper lip up disgust contempt",
    "Face_noseSneerLeft": "left nose sneer strong disgust",
    "Face_noseSneerRight": "right nose sneer strong disgust",
}

LLM_LEXICON: dict[str, str] = {
    **{k[len("Face_"):]: v for k, v in PAPER_FACE_LEXICON.items()}, **PAPER_AUDIO_LEXICON}

BUILTIN = ("llm", "feature_name", "shuffled")


def feature_name_phrase(name: str) -> str:
  """``browDownLeft`` -> ``brow down left``; ``mfcc_13`` -> ``mfcc 13``; ``AU12_r`` -> ``au12 r``."""
  words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name.lstrip("_"))
  words = re.sub(r"[_\-\s.]+", " ", words).strip()
  return words.lower() or name


def read_lexicon_file(path: str) -> dict[str, str]:
  """Reads a JSON object or a ``feature,phrase`` CSV; errors name the file and the problem."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"lexicon file {path} does not exist")
  if path.endswith(".json"):
    with open(path) as f:
      try:
        table = json.load(f)
      except json.JSONDecodeError as e:
        raise ValueError(f"lexicon file {path}: invalid JSON ({e})") from e
    if not isinstance(table, dict):
      raise ValueError(f"lexicon file {path}: expected a JSON object feature -> phrase")
  else:
    with open(path, newline="") as f:
      rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["feature", "phrase"]:
      rows = rows[1:]
    bad = [i for i, r in enumerate(rows) if len(r) < 2]
    if bad:
      raise ValueError(f"lexicon file {path}: row {bad[0] + 1} has no phrase column")
    table = {r[0].strip(): r[1].strip() for r in rows}
  for k, v in table.items():
    if not isinstance(v, str) or not v.strip():
      raise ValueError(f"lexicon file {path}: feature {k!r} has an empty or non-text phrase")
  # Accept the paper's "Face_" keys as well as plain feature names.
  return {(k[len("Face_"):] if k.startswith("Face_") else k): v.strip() for k, v in table.items()}


def uncovered(feature_names: Sequence[str], table: Mapping[str, str] = LLM_LEXICON) -> list[str]:
  """Features the table gives no phrase for (they fall back to their feature-name phrase)."""
  return [n for n in feature_names if n not in table]


def build_lexicon(kind: str, feature_names: Sequence[str], modalities: Sequence[str],
                  seed: int = 0, uncovered_policy: str = "name") -> list[str | None]:
  """Returns one phrase per feature, in feature order.

  Args:
    kind: ``"llm"``, ``"feature_name"``, a path to a lexicon file, or ``"shuffled:<one of
      those>"`` (``"shuffled"`` alone = ``"shuffled:llm"``): that lexicon's phrases permuted.
    feature_names: the dataset's feature names.
    modalities: ``"face"``/``"audio"`` per feature (``"shuffled"`` permutes within modality).
    seed: permutation seed for ``"shuffled"``.
    uncovered_policy: ``"name"`` gives features the lexicon does not cover their feature-name
      phrase; ``"drop"`` returns ``None`` for them, so they are never described (the paper's
      example prompts contain only phrases of its tables). Salience still sees every feature.
  """
  if uncovered_policy not in ("name", "drop"):
    raise ValueError(f"unknown uncovered policy {uncovered_policy!r}: use name or drop")
  shuffle = kind == "shuffled" or kind.startswith("shuffled:")
  if shuffle:
    kind = kind.partition(":")[2] or "llm"
  if kind == "feature_name":
    phrases = [feature_name_phrase(n) for n in feature_names]
  else:
    if kind == "llm":
      table = LLM_LEXICON
    elif os.path.sep in kind or kind.endswith((".json", ".csv")):
      table = read_lexicon_file(kind)
    else:
      raise ValueError(f"unknown lexicon {kind!r}: use one of {BUILTIN} or a path to a "
                       ".json/.csv lexicon file")
    fallback = feature_name_phrase if uncovered_policy == "name" else (lambda n: None)
    phrases = [table.get(n) or fallback(n) for n in feature_names]
  if shuffle:
    rng = np.random.default_rng(seed)
    phrases = np.array(phrases, dtype=object)
    mods = np.asarray(modalities)
    for m in np.unique(mods):
      idx = np.flatnonzero(mods == m)
      phrases[idx] = phrases[rng.permutation(idx)]
    phrases = list(phrases)
  return phrases


def resolve_kind(kind: str, dataset_lexicon: str = "", data_root: str = "") -> str:
  """The lexicon a run uses (``text.lexicon``): ``"dataset"`` means the dataset's own lexicon
  file (``dataset_lexicon``, relative to ``data_root``; e.g. for your own features) or ``"llm"``
  when it has none, and ``"shuffled"`` that same lexicon permuted (``"shuffled:<lexicon>"``)."""
  if kind in ("dataset", "shuffled"):
    path = dataset_lexicon
    if path and not os.path.isabs(path) and data_root:
      path = os.path.join(data_root, path)
    own = path or "llm"
    return own if kind == "dataset" else f"shuffled:{own}"
  if kind.startswith("shuffled:"):
    inner = kind.partition(":")[2]
    return kind if inner in BUILTIN else f"shuffled:{os.path.expanduser(inner)}"
  return kind


def source_key(kind: str):
  """The identity of a resolved lexicon for cache keys: a built-in's name, or a file's path and
  content.

  Raises:
    FileNotFoundError: naming the file and ``config.text.lexicon``.
  """
  if kind.startswith("shuffled:"):
    kind = kind.partition(":")[2]
  if kind in BUILTIN:
    return kind
  if not os.path.exists(kind):
    raise FileNotFoundError(f"lexicon file {kind} does not exist (config.text.lexicon)")
  with open(kind, "rb") as f:
    return {"path": kind, "content": f.read().decode(errors="replace")}


# ``text.lexicon`` values that name no file (``shuffled:<file>`` and files are checked apart).
KINDS = ("llm", "feature_name", "shuffled", "dataset")
# The config fields this module reads, and what each accepts (collected by run/validate.py).
FIELDS = (
    ("text.uncovered", checks.one_of(("name", "drop"))),
    ("text.lexicon_seed", checks.int_at_least(0)),
)
