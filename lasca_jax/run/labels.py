"""Every name a run is shown under, in one place: backbones, model rows, modalities, lexicons.

A run's row label (``config.json["model_label"]``, the row of the paper's Tables 3-7) follows from
its config: ``Features``; a backbone's short name (``MPNet``) for text alone; ``MPNet(F)`` fused
with the features; ``Features+Mask``, ``MPNet(F) random text`` and ``Features cap. MPNet(F)`` for
the controls (:mod:`lasca_jax.method.controls`); a baseline encoder's name. ``config.model_label``
overrides it (the sweep names its salience ablations ``MPNet(F) topk`` that way).
"""

from __future__ import annotations

import os
from typing import Any

from lasca_jax.encoders import text as text_lib
from lasca_jax.method import representation
from lasca_jax.run.fields import get_field

MODALITY_NAMES = {"visual": "Visual", "audio": "Audio", "multimodal": "Multimodal"}
LEXICON_NAMES = {"feature_name": "Feature", "shuffled": "Shuffled", "llm": "LLM (ours)"}
FUSED_SUFFIX = "(F)"


def backbone_label(backbone: str) -> str:
  """Short name as in the paper's tables: ``"all-mpnet-base-v2"``, a hub id
  ``"sentence-transformers/all-mpnet-base-v2"`` or a local folder of that name -> ``"MPNet"``;
  any other backbone -> its folder's base name."""
  base = os.path.basename(str(backbone).rstrip("/"))
  known = text_lib.BACKBONES.get(base)
  return known.label if known else base


def backbone_rank(backbone_or_label: str) -> int:
  """Position in the paper's Table 1 order (by name or short name); unknown ones sort last."""
  order = list(text_lib.BACKBONES.values())
  base = os.path.basename(str(backbone_or_label).rstrip("/"))
  for i, b in enumerate(order):
    if base in (b.name, b.label):
      return i
  return len(order)


LOGISTIC_LABEL = "Logistic regression"   # model.head="logistic" on the features


def fused_label(backbone: str) -> str:
  """``"MPNet(F)"``: the backbone fused with the features."""
  return backbone_label(backbone) + FUSED_SUFFIX


def model_label(config: Any) -> str:
  """The row label of a run (module docstring), from an ml_collections config or the dict of its
  ``config.json``.

  Raises:
    ValueError: for an unknown ``model.fusion``.
  """
  explicit = get_field(config, "model_label", "")
  if explicit:
    return str(explicit)
  fusion = representation.get(get_field(config, "model.fusion", ""))
  baseline = (get_field(config, "model.baseline_name", "") or
              os.path.basename(str(get_field(config, "model.baseline_dir", "")).rstrip("/")))
  label = fusion.label.format(backbone=backbone_label(get_field(config, "text.backbone", "")),
                              baseline=baseline)
  if get_field(config, "model.head", "mlp") == "logistic":
    return LOGISTIC_LABEL if fusion.name == "features" else f"Logistic({label})"
  return label + _capacity_suffix(config)


def learner_label(config: Any) -> str:
  """The learner settings of a run that depart from the paper's, in words (``""`` for the
  paper's): ``"standardized, min 10 epochs, loss-stopped, selected alpha/standardize"``. Tables
  append it to the row (:func:`lasca_jax.analysis.tables.build_table`)."""
  parts = []
  if str(get_field(config, "train.standardize", False)).lower() in ("true", "1"):
    parts.append("standardized")
  if int(get_field(config, "train.min_epochs", 0) or 0):
    parts.append(f"min {int(get_field(config, 'train.min_epochs', 0))} epochs")
  if str(get_field(config, "train.monitor", "accuracy") or "accuracy") != "accuracy":
    parts.append(f"{get_field(config, 'train.monitor', '')}-stopped")
  spec = str(get_field(config, "train.select", "") or "")
  if spec:
    names = [p.split("=", 1)[0].strip() for p in spec.split(";") if p.strip()]
    parts.append("selected " + "/".join(names))
  return ", ".join(parts)


def _capacity_suffix(config: Any) -> str:
  """``" cap. MiniLM-L6(F)"`` for a capacity-matched control (another model's hidden sizes)."""
  hidden_dim = int(get_field(config, "model.hidden_from_dim", 0) or 0)
  if hidden_dim > 0:
    return f" cap. d={hidden_dim}"
  if get_field(config, "model.hidden_from", "") == "fused":
    return " cap. " + fused_label(get_field(config, "text.backbone", ""))
  return ""
