"""Checks a whole configuration once, before any work, and reports every problem in one message.

``check(config)`` collects the problems of every section (``seed``, ``features``, ``text``,
``model``, ``pairs``, ``protocol``, ``train``, the dataset's own fields through its module's
optional ``validate(data_config) -> list[str]``, and, for sweeps, ``sweep``) and raises one
:class:`ConfigError` listing each bad field with its value and valid range. ``main.py``,
``sweep.py`` and ``extract.py`` call it before touching data; :func:`lasca_jax.run.pipeline.run`
calls it too, so a notebook gets the same message.

``parse_flags`` replaces absl's flag parser in the experiment scripts, so that a mistyped
override (``--config.pairs.margn=0.1``) or a value of the wrong type is one line naming the
field (and the closest existing one) instead of a chain of tracebacks.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import os
import re
import sys
from typing import Any, Callable, Sequence

from lasca_jax.data import datasets
from lasca_jax.data.checks import MISSING as _MISSING, _is_int, int_in, number_in, problem
from lasca_jax.encoders import embedder
from lasca_jax.method import controls, lexicon, pairs, protocols, representation, salience
from lasca_jax.method import windows
from lasca_jax.model import placement, train
from lasca_jax.run.fields import get_field


class ConfigError(ValueError):
  """Invalid configuration; the message lists every problem found."""


MODALITIES = tuple(windows.MODALITY_STREAMS)
SALIENCES = salience.RULES
TARGETS = pairs.TARGETS
PROTOCOLS = protocols.NAMES
BUILTIN_LEXICONS = lexicon.KINDS


# (dotted field, (check, valid range)) for the sections every run uses: each module declares the
# fields it reads (its FIELDS), in the order data flows through them.
RULES: tuple[tuple[str, tuple[Callable[[Any], bool], str]], ...] = (
    ("seed", int_in(0, 2**32 - 1)),          # 32 bits: larger seeds would wrap around
    *protocols.FIELDS[:1], *windows.FIELDS, *salience.FIELDS, *lexicon.FIELDS,
    *embedder.FIELDS, *representation.FIELDS, *controls.FIELDS, *pairs.FIELDS,
    *protocols.FIELDS[1:], *train.FIELDS, *placement.FIELDS,
)


def _lexicon_problems(config) -> list[str]:
  kind = get_field(config, "text.lexicon", "llm")
  if kind in BUILTIN_LEXICONS:
    return []
  path = kind[len("shuffled:"):] if str(kind).startswith("shuffled:") else kind
  if path not in ("llm", "feature_name") and not os.path.isfile(os.path.expanduser(str(path))):
    return [problem("text.lexicon", kind, "one of " + ", ".join(map(repr, BUILTIN_LEXICONS)) +
                    ", 'shuffled:<file>' or an existing .json/.csv lexicon file")]
  return []


def _model_problems(config) -> list[str]:
  out = []
  for field, (ok, valid) in train.MODEL_FIELDS:
    value = get_field(config, field)
    if not ok(value):
      out.append(problem(field, value, valid))
  if get_field(config, "model.head", "mlp") == "logistic" and get_field(config, "train.select", ""):
    out.append(problem("train.select", get_field(config, "train.select"),
                       "'' with model.head='logistic' (its fit has no settings to select)"))
  fusion = representation.FUSIONS.get(get_field(config, "model.fusion"))
  if fusion is not None and fusion.needs_baseline:
    directory = get_field(config, "model.baseline_dir", "")
    if not directory or not os.path.isdir(os.path.expanduser(directory)):
      out.append(problem("model.baseline_dir", directory,
                         "an existing folder of <recording_id>.npz embeddings for fusion "
                         "'baseline'"))
  return out


def _protocol_problems(config) -> list[str]:
  if get_field(config, "protocol.name") == "kfold" and _is_int(get_field(config, "protocol.num_folds")):
    if get_field(config, "protocol.num_folds") == 1:
      return [problem("protocol.num_folds", get_field(config, "protocol.num_folds"),
                      "an integer >= 2 for kfold: one fold leaves no training subject")]
  return []


def _sweep_problems(config) -> list[str]:
  from lasca_jax.run import sweep as sweep_lib  # pylint: disable=import-outside-toplevel
  out = []
  lists = (("sweep.modalities", MODALITIES), ("sweep.targets", TARGETS),
           ("sweep.models", ("features", "text", "fused")),
           ("sweep.ablation_modalities", MODALITIES),
           ("sweep.ablation_lexicons", ("llm", "feature_name", "shuffled", "dataset")),
           ("sweep.ablation_saliences", SALIENCES),
           ("sweep.controls", sweep_lib.controls()))
  for field, choices in lists:
    values = get_field(config, field, ())
    bad = [v for v in values if v not in choices]
    if bad:
      out.append(problem(field, tuple(values), "entries from " + ", ".join(map(repr, choices))))
  for field, (ok, valid) in (("sweep.windows", number_in(0, math.inf, lo_open=True)),
                             ("sweep.margins", number_in(0, math.inf))):
    values = get_field(config, field, ())
    if not values or not all(ok(v) for v in values):
      out.append(problem(field, tuple(values), f"a non-empty list, each {valid}"))
  tune = get_field(config, "sweep.tune_select", "")
  if "tuned" in get_field(config, "sweep.controls", ()) and not (tune and train._select_ok(tune)):
    out.append(problem("sweep.tune_select", tune, "a train.select grid for the 'tuned' control, "
                       "e.g. 'alpha=1,0.1,0.01;standardize=false,true'"))
  size = get_field(config, "sweep.group_size", 0)
  if not (_is_int(size) and size >= 0):
    out.append(problem("sweep.group_size", size, "an integer >= 0 (0 = automatic)"))
  for entry in get_field(config, "sweep.baselines", ()):
    parts = str(entry).split(":", 2)
    if len(parts) != 3 or parts[1] not in MODALITIES:
      out.append(problem("sweep.baselines", entry, "'Name:modality:dir' entries with modality "
                         "visual, audio or multimodal"))
  return out


def _data_problems(config) -> list[str]:
  name = get_field(config, "data.name", "")
  try:
    module = datasets.get_module(name)
  except ValueError as e:
    return [f"data.name={name!r} ({e})"]
  missing = [f for f in ("load_recordings", "fingerprint", "time_base_hz")
             if not hasattr(module, f)]
  if missing:
    return [f"data.name={name!r} (module {module.__name__} lacks {', '.join(missing)}; see "
            "lasca_jax/data/datasets/__init__.py for what a dataset module declares)"]
  check_data = getattr(module, "validate", None)
  return list(check_data(config.data)) if check_data else []


def problems(config, sweep: bool = False) -> list[str]:
  """Every problem of ``config`` as ``'field=value (need ...)'`` strings (empty when valid)."""
  out = []
  for field, (ok, valid) in RULES:
    value = get_field(config, field, _MISSING)
    if value is _MISSING:
      continue  # An older config.json without a newer field: its default applies.
    if not ok(value):
      out.append(problem(field, value, valid))
  out += _protocol_problems(config)
  out += _lexicon_problems(config)
  out += _model_problems(config)
  out += _data_problems(config)
  if sweep:
    out += _sweep_problems(config)
  return out


def check(config, sweep: bool = False) -> None:
  """Raises :class:`ConfigError` listing every problem of ``config`` (see :func:`problems`)."""
  found = problems(config, sweep)
  if found:
    noun = "problem" if len(found) == 1 else "problems"
    raise ConfigError(f"invalid configuration, {len(found)} {noun}: " + "; ".join(found))


# ----------------------------------------------------------------------------- command lines


def _load_config_file(argv: Sequence[str], flag: str = "config"):
  """The config a ``--config=path[:arg]`` argument names (``None`` when it cannot be loaded)."""
  spec_text = next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{flag}=")), None)
  if not spec_text:
    return None
  path, _, arg = spec_text.partition(":")
  try:
    spec = importlib.util.spec_from_file_location("_lasca_config_probe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()
  except Exception:  # pylint: disable=broad-except
    return None


def unknown_override(config, dotted: str) -> str | None:
  """A message when ``dotted`` is not a field of ``config`` (with the closest existing name)."""
  node, walked = config, []
  for key in dotted.split("."):
    keys = list(node.keys()) if hasattr(node, "keys") else []
    if key not in keys:
      close = difflib.get_close_matches(key, keys, n=1)
      prefix = ".".join(walked)
      hint = f" (did you mean {'.'.join(walked + close[:1])}?)" if close else (
          f" ({prefix or 'the config'} has {', '.join(sorted(keys)[:12])})" if keys else "")
      return f"unknown config field {dotted}{hint}"
    walked.append(key)
    node = node[key]
  return None


def _config_argument(argv: Sequence[str], flag: str) -> str:
  return next((a for a in argv if a.startswith(f"--{flag}=")), f"--{flag}")


def describe_flag_error(argv: Sequence[str], error: Exception, flag: str = "config") -> str:
  """One line for a failed flag parse: the unknown field or the rejected value."""
  config = _load_config_file(argv, flag)
  if config is not None:
    for a in argv:
      if a.startswith(f"--{flag}."):
        dotted = a[len(flag) + 3:].split("=", 1)[0]
        message = unknown_override(config, dotted)
        if message:
          return message
  text = " ".join(str(error).replace("\\n", " ").split())
  if "Traceback (most recent call last)" in text:  # A config file's get_config raised: its own
    # message is the last "SomeError: message" of the traceback absl folded into the error.
    found = list(re.finditer(r"(?:\w+\.)*\w+(?:Error|Exception): ", text))
    if found:
      message = text[found[-1].end():]
      argument = _config_argument(argv, flag)
      named = any(part and part in message for part in argument.split("=", 1)[-1].split(":"))
      return message if named else f"{argument}: {message}"
  if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"" and text[0] not in text[1:-1]:
    text = text[1:-1]
  return text or type(error).__name__


def parse_flags(argv: Sequence[str]) -> list[str]:
  """absl flag parsing that ends a bad command line with one line on stderr (exit status 2)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  try:
    return flags.FLAGS(list(argv))
  except Exception as e:  # pylint: disable=broad-except
    sys.stderr.write(f"error: {describe_flag_error(argv, e)}\n")
    sys.exit(2)


