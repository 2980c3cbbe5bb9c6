"""Field checks shared by the run's config validation and the dataset loaders.

Each rule is ``(check, valid range)``: a predicate on the value and the words that say what is
valid. A problem is one line ``'field=value (need ...)'``; ``lasca_jax.run.validate`` collects
them for a whole config, and each dataset module checks its own ``config.data`` fields with
:func:`field_problems`, :func:`root_problems` and :func:`csv_dir_problems`.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Sequence

MISSING = object()   # a field an older config.json lacks: its default applies


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def int_at_least(lo: int) -> tuple[Callable[[Any], bool], str]:
  return (lambda v: _is_int(v) and v >= lo), f"an integer >= {lo}"


def int_in(lo: int, hi: int) -> tuple[Callable[[Any], bool], str]:
  return (lambda v: _is_int(v) and lo <= v <= hi), f"an integer in [{lo}, {hi}]"


def number_in(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False
              ) -> tuple[Callable[[Any], bool], str]:
  """A finite number in the interval; open ends are excluded."""
  def ok(v):
    if not _is_num(v):
      return False
    return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
  left, right = ("(" if lo_open else "["), (")" if hi_open else "]")
  hi_text = "inf" if hi == math.inf else f"{hi:g}"
  return ok, f"a number in {left}{lo:g}, {hi_text}{right}"


def one_of(choices: Sequence[str]) -> tuple[Callable[[Any], bool], str]:
  return (lambda v: v in choices), "one of " + ", ".join(repr(c) for c in choices)


BOOL = ((lambda v: isinstance(v, bool)), "True or False")


def problem(field: str, value: Any, valid: str) -> str:
  return f"{field}={value!r} (need {valid})"


def field_problems(section, prefix: str, rules) -> list[str]:
  """Problems of ``section`` (e.g. ``config.data``) under ``rules`` ``[(field, (ok, valid))]``."""
  out = []
  for field, (ok, valid) in rules:
    value = section.get(field, MISSING)
    if value is not MISSING and not ok(value):
      out.append(problem(f"{prefix}.{field}", value, valid))
  return out


def root_problems(data_config, what: str) -> list[str]:
  """``data.root`` must name an existing folder."""
  root = data_config.get("root", "")
  if not root:
    return [problem("data.root", root, f"the {what} folder")]
  if not os.path.isdir(os.path.expanduser(str(root))):
    return [problem("data.root", root, f"an existing folder (the {what})")]
  return []


MEDIA_RULES = (
    ("frame_stride", int_at_least(1)),
    ("num_faces", int_at_least(0)),
    ("sample_rate", int_at_least(1)),
    ("mfcc_hop_seconds", number_in(0, math.inf, lo_open=True)),
    ("mfcc_window_seconds", number_in(0, math.inf, lo_open=True)),
    ("skip_missing", BOOL),
    ("fps", number_in(0, math.inf)),
)


def csv_dir_problems(data_config) -> list[str]:
  """Pre-extracted feature folders, when set, must exist."""
  out = []
  for modality in ("face", "audio"):
    folder = data_config.get(f"{modality}_csv_dir", "")
    if folder:
      path = os.path.join(os.path.expanduser(str(data_config.get("root", ""))),
                          os.path.expanduser(folder))
      if not os.path.isdir(path):
        out.append(problem(f"data.{modality}_csv_dir", folder, "an existing folder of "
                           "<recording>.csv feature files (relative to data.root or absolute)"))
  return out
