"""Dotted config fields (``"pairs.margin"``) read and set the same way everywhere.

Both work on an ml_collections ``ConfigDict`` and on the plain dict of a run's ``config.json``.
"""

from __future__ import annotations

from typing import Any


def get_field(config: Any, dotted: str, default: Any = None) -> Any:
  """``config.<dotted>``, or ``default`` when a part of the path is absent."""
  node = config
  for key in dotted.split("."):
    try:
      if key not in node:
        return default
      node = node[key]
    except TypeError:
      return default
  return node


def set_field(config: Any, dotted: str, value: Any) -> None:
  """Sets ``config.<dotted>`` to ``value`` (every parent must exist)."""
  node = config
  *parents, leaf = dotted.split(".")
  for p in parents:
    node = node[p]
  node[leaf] = value
