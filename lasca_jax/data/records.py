"""Named groups of arrays that a stage returns and the stage cache stores as one ``.npz``.

A stage result is a frozen dataclass whose fields are arrays (``[W, F]`` features, ``[P]`` pair
indices, ...). Subclassing :class:`ArrayRecord` gives it :meth:`~ArrayRecord.to_npz` and
:meth:`~ArrayRecord.from_npz`, the two halves of a lossless round trip through
``numpy.savez``: field names are the file's keys, arrays keep their dtype and shape.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, TypeVar

import numpy as np

R = TypeVar("R", bound="ArrayRecord")


@dataclasses.dataclass(frozen=True, eq=False)
class ArrayRecord:
  """Base of typed stage results: every field is an array (or a scalar numpy can store)."""

  def to_npz(self) -> dict[str, np.ndarray]:
    """``{field name: array}``, what ``numpy.savez`` stores."""
    return {f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)}

  @classmethod
  def from_npz(cls: type[R], arrays: Mapping[str, np.ndarray]) -> R:
    """The record of ``arrays`` (e.g. a loaded ``.npz``); extra keys are an error, so an entry
    of another layout is never read as this one."""
    names = [f.name for f in dataclasses.fields(cls)]
    missing = sorted(set(names) - set(arrays))
    extra = sorted(set(arrays) - set(names))
    if missing or extra:
      raise KeyError(f"{cls.__name__}: arrays lack {missing} and have unexpected {extra}")
    return cls(**{n: arrays[n] for n in names})
