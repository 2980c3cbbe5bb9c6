"""Re-runs an experiment from the ``config.json`` a run wrote.

  python experiments/main.py --config=configs/from_json.py:runs/synthetic/config.json \
      --workdir=runs/synthetic_again

The file gets the same checks as command-line overrides: a key that is not a config field
(``pairs.margn``), a value of another type than the field's (``"features": [1, 2]``), an empty or
non-JSON file, or a top-level value that is not an object is one line naming the file, the field
and the fix. A dataset's own ``data.*`` fields are checked against its config file
(``configs/<data.name>.py``); a dataset without one keeps its ``data.*`` fields unchecked here
(its module's ``validate`` still runs). A field the file predates keeps its default.
"""

import difflib
import importlib
import json
import os

import ml_collections

from configs import default


class ConfigFileError(ValueError):
  """A ``config.json`` that cannot be read as a config; the message names file, field and fix."""


def _merge(config: ml_collections.ConfigDict, values: dict) -> None:
  for key, value in values.items():
    if isinstance(value, dict):
      if key not in config:
        config[key] = ml_collections.ConfigDict()
      _merge(config[key], value)
    elif isinstance(value, list):
      config[key] = tuple(value)
    else:
      config[key] = value


def from_values(values: dict) -> ml_collections.ConfigDict:
  """The defaults with ``values`` (a loaded ``config.json``) merged on top: a field the file
  predates keeps its default. No checks (see :func:`problems`)."""
  config = default.get_config()
  with config.ignore_type():
    _merge(config, values)
  return config


def reference(values: dict) -> ml_collections.ConfigDict:
  """The config whose fields and types ``values`` is checked against: the defaults, with the
  ``data`` section of ``configs/<data.name>.py`` when that file exists."""
  config = default.get_config()
  name = (values.get("data") or {}).get("name") if isinstance(values.get("data"), dict) else None
  if isinstance(name, str) and name.isidentifier() and os.path.isfile(
      os.path.join(os.path.dirname(__file__), f"{name}.py")):
    config.data = importlib.import_module(f"configs.{name}").get_config().data
  return config


def _type_name(value) -> str:
  return {bool: "true/false", int: "an integer", float: "a number", str: "a string",
          tuple: "a list", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _fits(value, like) -> bool:
  """Whether the JSON ``value`` can stand where the config holds ``like``."""
  if like is None or value is None:
    return True
  if isinstance(like, bool) or isinstance(value, bool):
    return isinstance(like, bool) and isinstance(value, bool)
  if isinstance(like, float):
    return isinstance(value, (int, float))
  if isinstance(like, int):
    return isinstance(value, int)
  if isinstance(like, (tuple, list)):
    return isinstance(value, list) and all(
        _fits(v, like[0]) for v in value) if like else isinstance(value, list)
  if isinstance(like, ml_collections.ConfigDict):
    return isinstance(value, dict)
  return isinstance(value, type(like))


def problems(values, ref: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  """Every key of ``values`` that is not a field of ``ref`` or has another type."""
  out = []
  for key, value in values.items():
    dotted = prefix + key
    if key not in ref:
      close = difflib.get_close_matches(key, list(ref.keys()), n=1)
      hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
      out.append(f"unknown config field {dotted}{hint}")
      continue
    like = ref[key]
    if isinstance(like, ml_collections.ConfigDict):
      if not isinstance(value, dict):
        out.append(f"{dotted}={json.dumps(value)} is {_type_name(value)}, need an object")
      else:
        out += problems(value, like, dotted + ".")
    elif not _fits(value, like):
      shown = json.dumps(value)
      out.append(f"{dotted}={shown[:60]} is {_type_name(value)}, need {_type_name(like)} "
                 f"(like the default {json.dumps(like if not isinstance(like, tuple) else list(like))})")
  return out


def load(path: str) -> ml_collections.ConfigDict:
  """The config of the JSON file ``path``; :class:`ConfigFileError` (one line) when it is not
  one."""
  fix = "give the config.json a run wrote (or a JSON object of config fields)"
  try:
    with open(os.path.expanduser(path), encoding="utf-8") as f:
      text = f.read()
  except OSError as e:
    raise ConfigFileError(f"{path}: cannot read it ({e.strerror or e}); {fix}") from None
  if not text.strip():
    raise ConfigFileError(f"{path} is empty; {fix}")
  try:
    values = json.loads(text)
  except json.JSONDecodeError as e:
    raise ConfigFileError(f"{path} is not JSON ({e.msg} at line {e.lineno} column {e.colno}); "
                          f"{fix}") from None
  if not isinstance(values, dict):
    raise ConfigFileError(f"{path} holds {_type_name(values)}, not an object of config fields; "
                          f"{fix}")
  data = values.get("data")
  ref = reference(values)
  found = problems(values, ref)
  if isinstance(data, dict) and "data" in ref and ref.data.get("name") != data.get("name"):
    # No config file for this dataset: its own data.* fields cannot be checked here.
    found = [p for p in found if not p.startswith("unknown config field data.")]
  if found:
    raise ConfigFileError(f"{path}: " + "; ".join(found) + " (fix or remove these keys)")
  return from_values(values)


def get_config(path: str) -> ml_collections.ConfigDict:
  return load(path)
