"""What the MLP sees of a window: every ``model.fusion`` declared once, and the one builder of z.

A window's representation ``z`` is the concatenation, in a fusion's declared order, of parts:

==========  ======  ==========================================================================
part        width   what
==========  ======  ==========================================================================
features    F       the normalised features ``x`` (min-max with the fold's training statistics)
baseline    B       a frozen baseline encoder's precomputed embedding of the window (Table 2)
mask        F       the binary salience mask ``m`` (the mask control)
text        D       the prompt's sentence embedding, or a fixed random vector per prompt
==========  ======  ==========================================================================

The registry (:data:`FUSIONS`) says which parts each fusion holds, its row label, and which
stages it needs (salience, prompts, the sentence encoder). :class:`Recipe` holds every setting
that shapes ``z`` besides the fold statistics (salience rule and statistics, phrase order,
phrases, template, clipping, padding); it is built once from the run's inputs, saved in every
bundle, and :class:`Representer` turns raw window features into ``z`` with it. Training
(``run.pipeline.prepare``), a bundle's batch path, the one-window streaming predictor and
attribution all build ``z`` through :func:`assemble` and read part positions from
:meth:`Recipe.slices`, so a model never predicts with another representation than it was trained
on. A new fusion is one :func:`register` call.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from lasca_jax.method import salience as salience_lib, templates, windows as windows_lib
from lasca_jax.data import checks

PARTS = ("features", "baseline", "mask", "text")
TEXT_SOURCES = ("", "encoded", "random")   # what the text part holds
SALIENCE_STATS = ("fold", "recording", "dataset")


@dataclasses.dataclass(frozen=True)
class Fusion:
  """One ``model.fusion``.

  Attributes:
    name: the config value.
    parts: the parts of ``z``, in order (entries of :data:`PARTS`).
    label: the row label; ``{backbone}`` is the backbone's short name, ``{baseline}`` the baseline
      encoder's name (``model.baseline_name``, else the folder's).
    text: ``"encoded"`` (prompts through the sentence encoder), ``"random"`` (a fixed random
      vector per prompt) or ``""`` (no text part).
    control: a control (a row of the controls table).
    control_row: its row in the controls table (``"Salience mask"``); its name when empty.
    row: the kind of row it is in the paper's tables: ``"features"``, ``"text"`` (a backbone
      alone), ``"fused"``, ``"baseline"``, or ``""`` (a control or a fusion of your own).
    doc: one line for tables of fusions.
  """
  name: str
  parts: tuple[str, ...]
  label: str
  text: str = ""
  control: bool = False
  control_row: str = ""
  row: str = ""
  doc: str = ""

  @property
  def paper(self) -> bool:
    """A model of the paper's tables."""
    return bool(self.row)

  def __post_init__(self):
    bad = [p for p in self.parts if p not in PARTS]
    if bad or len(set(self.parts)) != len(self.parts) or not self.parts:
      raise ValueError(f"fusion {self.name!r}: parts {self.parts} must be distinct entries of "
                       f"{PARTS}")
    if self.text not in TEXT_SOURCES or (("text" in self.parts) != bool(self.text)):
      raise ValueError(f"fusion {self.name!r}: a text part needs text='encoded' or 'random', "
                       "and text is '' without one")

  @property
  def has_features(self) -> bool:
    return "features" in self.parts

  @property
  def needs_salience(self) -> bool:
    return "mask" in self.parts or "text" in self.parts

  @property
  def needs_prompts(self) -> bool:
    return "text" in self.parts

  @property
  def encoded(self) -> bool:
    return self.text == "encoded"

  @property
  def needs_baseline(self) -> bool:
    return "baseline" in self.parts

  @property
  def uses_backbone(self) -> bool:
    """The backbone names the run (its label and embedding size): text parts of either kind."""
    return self.needs_prompts


FUSIONS: dict[str, Fusion] = {}


def register(fusion: Fusion) -> Fusion:
  """Adds ``fusion`` to the registry (replacing one of the same name); returns it."""
  FUSIONS[fusion.name] = fusion
  return fusion


def unregister(name: str) -> None:
  FUSIONS.pop(name, None)


def names() -> tuple[str, ...]:
  return tuple(FUSIONS)


def get(name: str, field: str = "model.fusion") -> Fusion:
  """The registered fusion ``name``.

  Raises:
    ValueError: one line naming ``field`` and the registered fusions.
  """
  try:
    return FUSIONS[str(name)]
  except KeyError:
    raise ValueError(f"unknown {field} {name!r}: use one of {names()}") from None


def row(name: str) -> str:
  """The paper-table row kind of fusion ``name`` (:attr:`Fusion.row`); ``""`` for a control or
  a name this process does not register (a run written by other code)."""
  fusion = FUSIONS.get(str(name))
  return fusion.row if fusion else ""


def is_control(name: str) -> bool:
  fusion = FUSIONS.get(str(name))
  return bool(fusion and fusion.control)


def paper() -> tuple[str, ...]:
  return tuple(n for n, f in FUSIONS.items() if f.paper)


def controls() -> tuple[str, ...]:
  return tuple(n for n, f in FUSIONS.items() if f.control)


for _fusion in (
    Fusion("features", ("features",), "Features", row="features",
           doc="[x]: the paper's Features rows"),
    Fusion("text", ("text",), "{backbone}", text="encoded", row="text",
           doc="[s]: a backbone alone (Tables 3-4)"),
    Fusion("fused", ("features", "text"), "{backbone}(F)", text="encoded", row="fused",
           doc="[x || s]: LaScA"),
    Fusion("baseline", ("baseline",), "{baseline}", row="baseline",
           doc="[e]: a baseline encoder's embedding (Table 2)"),
    Fusion("mask", ("features", "mask"), "Features+Mask", control=True,
           control_row="Salience mask", doc="[x || m]: the salience mask without language"),
    Fusion("random_text", ("features", "text"), "{backbone}(F) random text", text="random",
           control=True, control_row="Random text",
           doc="[x || r]: a fixed random vector per prompt"),
):
  register(_fusion)


def assemble(fusion: Fusion | str, parts: Mapping[str, np.ndarray], input_dim: int = 0
             ) -> np.ndarray:
  """``float32 [..., d]``: the fusion's parts concatenated in its order, zero-padded to
  ``input_dim`` columns (the capacity-matched control; 0: no padding).

  Raises:
    ValueError: a part is missing, or the parts are wider than ``input_dim``.
  """
  fusion = get(fusion) if isinstance(fusion, str) else fusion
  missing = [p for p in fusion.parts if p not in parts]
  if missing:
    raise ValueError(f"fusion {fusion.name!r} needs the parts {missing}")
  z = np.concatenate([parts[p] for p in fusion.parts], axis=-1).astype(np.float32)
  return pad_to(z, input_dim)


def pad_to(z: np.ndarray, dim: int, field: str = "model.hidden_from") -> np.ndarray:
  """``z [..., d]`` with ``dim - d`` zero columns appended (``dim == 0``: unchanged).

  Raises:
    ValueError: the representation is already wider than ``dim``.
  """
  if not dim or z.shape[-1] == dim:
    return z
  if z.shape[-1] > dim:
    raise ValueError(f"{field}: the representation has {z.shape[-1]} columns, more than the "
                     f"fused model's {dim}; capacity matching applies to narrower inputs")
  width = [(0, 0)] * (z.ndim - 1) + [(0, dim - z.shape[-1])]
  return np.pad(z, width)


def recording_ranges(features: np.ndarray, recording: np.ndarray, usable: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``(lo [W, F], span [W, F], known bool [W])``: each window's recording's min-max statistics
  over that recording's usable windows (``known`` False, lo 0, span 1: no usable window)."""
  lo = np.zeros(features.shape, features.dtype)
  span = np.ones(features.shape, features.dtype)
  known = np.zeros(features.shape[0], bool)
  for r in np.unique(recording):
    rows = recording == r
    if (rows & usable).any():
      lo[rows], span[rows] = windows_lib.minmax_stats(features, rows & usable)
      known[rows] = True
  return lo, span, known


def recording_values(features: np.ndarray, recording: np.ndarray, usable: np.ndarray,
                     clip: bool) -> np.ndarray:
  """``float32 [W, F]``: every recording's windows min-max normalised with that recording's own
  statistics over its usable windows (``text.salience_stats="recording"``); a recording without
  a usable window stays 0."""
  lo, span, known = recording_ranges(features, recording, usable)
  values = windows_lib.minmax_apply(features, lo, span, clip)
  return np.where(known[:, None], values, np.float32(0.0))


@dataclasses.dataclass(frozen=True)
class Recipe:
  """Every setting that shapes ``z`` besides each fold's min-max statistics.

  Attributes:
    fusion: ``model.fusion``.
    modalities: ``F`` entries ``"face"``/``"audio"`` (column order).
    phrases: ``F`` lexicon phrases (``None`` entries: never described), or None without text.
    template: the prompt template (``features.modality``).
    clip: min-max clipping (``features.clip``).
    salience: ``(rule, k, threshold)`` (``text.salience*``).
    salience_stats: ``"fold"`` (the fold's training statistics, the paper's), ``"recording"``
      (each recording's own statistics) or ``"dataset"`` (statistics of the whole training
      dataset, kept in ``salience_lo``/``salience_span``).
    phrase_order: ``"feature"`` (the paper's) or ``"salience"``.
    input_dim: ``d`` after padding (0: the parts' width).
    random_text: the random-text control's ``{"seed", "norm", "dim"}``.
    part_dims: ``((part, width), ...)`` as trained (the text and baseline widths come from the
      encoder; :meth:`slices` reads them).
  """
  fusion: str
  modalities: tuple[str, ...]
  phrases: tuple | None = None
  template: str = "multimodal"
  clip: bool = True
  salience: tuple = ("otsu", 5, 0.5)
  salience_stats: str = "fold"
  salience_lo: tuple | None = None
  salience_span: tuple | None = None
  phrase_order: str = "feature"
  input_dim: int = 0
  random_text: Mapping[str, Any] | None = None
  part_dims: tuple = ()

  def __post_init__(self):
    get(self.fusion)
    if self.salience_stats not in SALIENCE_STATS:
      raise ValueError(f"unknown text.salience_stats {self.salience_stats!r}: use one of "
                       f"{SALIENCE_STATS}")
    if self.phrase_order not in templates.PHRASE_ORDERS:
      raise ValueError(f"unknown text.phrase_order {self.phrase_order!r}: use one of "
                       f"{templates.PHRASE_ORDERS}")
    if self.salience_stats == "dataset" and self.spec.needs_salience and (
        self.salience_lo is None or self.salience_span is None):
      raise ValueError("salience_stats='dataset' needs the dataset's statistics")

  @property
  def spec(self) -> Fusion:
    return get(self.fusion)

  @property
  def num_features(self) -> int:
    return len(self.modalities)

  def widths(self) -> dict[str, int]:
    """``{part: width}`` in the fusion's order."""
    known = dict(self.part_dims)
    f = self.num_features
    return {p: int(known.get(p, f if p in ("features", "mask") else 0)) for p in self.spec.parts}

  def slices(self) -> dict[str, slice]:
    """Where each part lies in ``z`` (padding columns follow the last part)."""
    out, start = {}, 0
    for part, width in self.widths().items():
      out[part] = slice(start, start + width)
      start += width
    return out

  # --- the steps from normalised features to prompts -------------------------------------

  def salience_values(self, x: np.ndarray, raw: np.ndarray, recording: np.ndarray | None = None,
                      usable: np.ndarray | None = None, ranges: tuple | None = None
                      ) -> np.ndarray:
    """``float32 [K or 1, N, F]``: the values salience (and phrase order) are computed from.

    Args:
      x: ``[K, N, F]`` the windows normalised with each fold's statistics.
      raw: ``[N, F]`` the raw window features.
      recording: ``int [N]`` each window's recording (``salience_stats="recording"``).
      usable: ``bool [N]`` the windows whose statistics count (``"recording"``).
      ranges: ``(lo [N, F], span [N, F])`` each window's recording statistics, known beforehand
        (a bundle's test windows, whose recordings it does not keep whole); replaces
        ``recording`` and ``usable``.
    """
    if self.salience_stats == "fold":
      return x
    if self.salience_stats == "dataset":
      # Window features are float32: the statistics are float32 too (exact through JSON).
      lo = np.asarray(self.salience_lo, np.float32)
      span = np.asarray(self.salience_span, np.float32)
      return windows_lib.minmax_apply(raw, lo, span, self.clip)[None]
    if ranges is not None:
      return windows_lib.minmax_apply(raw, ranges[0], ranges[1], self.clip)[None]
    if recording is None or usable is None:
      raise ValueError("text.salience_stats='recording' normalises salience with each "
                       "recording's own statistics: pass the windows' recording and usability")
    return recording_values(raw, np.asarray(recording), np.asarray(usable, bool), self.clip)[None]

  def salience_mask(self, values: np.ndarray) -> np.ndarray:
    rule, k, threshold = self.salience
    return salience_lib.salience_mask(values, np.asarray(self.modalities), rule, int(k),
                                      float(threshold))

  def prompts(self, mask: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(distinct prompts, index)`` of masks ``bool [..., F]`` (``values`` as the masks)."""
    order = np.broadcast_to(values, mask.shape) if self.phrase_order == "salience" else None
    return templates.build_prompts(mask, list(self.phrases), list(self.modalities),
                                   self.template, values=order)

  # --- saving ---------------------------------------------------------------------------

  def to_json(self) -> dict:
    out = dataclasses.asdict(self)
    for key in ("modalities", "phrases", "salience", "salience_lo", "salience_span"):
      if out[key] is not None:
        out[key] = list(out[key])
    out["part_dims"] = [[p, int(w)] for p, w in self.part_dims]
    out["random_text"] = dict(self.random_text) if self.random_text else None
    return out

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> "Recipe":
    d = dict(data)
    for key in ("modalities", "phrases", "salience", "salience_lo", "salience_span"):
      if d.get(key) is not None:
        d[key] = tuple(d[key])
    d["part_dims"] = tuple((p, int(w)) for p, w in d.get("part_dims", ()))
    return cls(**d)


@dataclasses.dataclass
class Represented:
  """Window representations under every fold model.

  Attributes:
    x: ``float32 [K, N, F]`` normalised features.
    mask: ``bool [K, N, F]`` salient features (all False for fusions without salience).
    prompts: distinct prompts (``None`` for models without text); ``index [K, N]`` into them.
    z: ``float32 [K, N, d]`` the MLP's per-window input (before differencing).
    values: ``float32 [K or 1, N, F]`` the values salience was computed from.
  """
  x: np.ndarray
  mask: np.ndarray
  prompts: np.ndarray | None
  index: np.ndarray | None
  z: np.ndarray
  values: np.ndarray | None = None


class Representer:
  """Raw window features to ``z`` under ``K`` fold models, as training built it.

  Args:
    recipe: the run's :class:`Recipe`.
    lo, span: ``[K, F]`` each fold's min-max statistics.
    embed: ``prompts -> float32 [n, D]``: the run's text embedder (store lookups, or the random
      control's vectors); needed for fusions with a text part.
  """

  def __init__(self, recipe: Recipe, lo: np.ndarray, span: np.ndarray,
               embed: Callable[[Sequence[str]], np.ndarray] | None = None):
    self.recipe, self.embed = recipe, embed
    self.lo, self.span = np.atleast_2d(lo), np.atleast_2d(span)

  @property
  def num_folds(self) -> int:
    return int(self.lo.shape[0])

  def normalise(self, raw: np.ndarray) -> np.ndarray:
    """``float32 [K, N, F]``: raw window features ``[N, F]`` under each fold's statistics."""
    return np.stack([windows_lib.minmax_apply(raw, self.lo[k], self.span[k], self.recipe.clip)
                     for k in range(self.num_folds)])

  def salience(self, x: np.ndarray, raw: np.ndarray, recording: np.ndarray | None = None,
               usable: np.ndarray | None = None, ranges: tuple | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(values [K or 1, N, F], mask bool [K, N, F])``: what salience is computed from, and
    the salient features, of windows ``x`` (normalised) / ``raw``."""
    values = self.recipe.salience_values(x, raw, recording, usable, ranges)
    return values, np.broadcast_to(self.recipe.salience_mask(values), x.shape)

  def prompts(self, raw: np.ndarray, recording: np.ndarray | None = None,
              usable: np.ndarray | None = None, ranges: tuple | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """``(distinct prompts, index [K, N])`` of raw windows ``[N, F]``, as training wrote them."""
    raw = np.asarray(raw)
    x = self.normalise(raw)
    values, mask = self.salience(x, raw, recording, usable, ranges)
    return self.recipe.prompts(mask, np.broadcast_to(values, x.shape))

  def __call__(self, raw: np.ndarray, baseline: np.ndarray | None = None,
               recording: np.ndarray | None = None, usable: np.ndarray | None = None,
               ranges: tuple | None = None) -> Represented:
    """Every fold's representation of raw windows ``[N, F]``.

    Args:
      raw: ``float [N, F]`` raw mean-pooled window features (NaN allowed).
      baseline: ``[N, B]`` the baseline encoder's embeddings (fusion ``"baseline"``).
      recording, usable, ranges: for ``text.salience_stats="recording"``
        (:meth:`Recipe.salience_values`).
    """
    recipe, spec = self.recipe, self.recipe.spec
    raw = np.asarray(raw)
    x = self.normalise(raw)
    values = mask = prompts = index = None
    parts: dict[str, np.ndarray] = {}
    if spec.has_features:
      parts["features"] = x
    if spec.needs_baseline:
      if baseline is None:
        raise ValueError("fusion 'baseline' needs the baseline encoder's window embeddings")
      parts["baseline"] = np.broadcast_to(np.nan_to_num(baseline),
                                          (self.num_folds,) + np.shape(baseline))
    if spec.needs_salience:
      values, mask = self.salience(x, raw, recording, usable, ranges)
      if "mask" in spec.parts:
        parts["mask"] = mask.astype(np.float32)
      if spec.needs_prompts:
        prompts, index = recipe.prompts(mask, np.broadcast_to(values, x.shape))
        if self.embed is None:
          raise ValueError(f"fusion {spec.name!r} needs a text embedder")
        parts["text"] = np.asarray(self.embed(prompts.tolist()), np.float32)[index]
    else:    # explanations still name the cues salient under the fold's statistics
      mask = recipe.salience_mask(x)
    z = assemble(spec, parts, recipe.input_dim)
    return Represented(x, np.asarray(mask), prompts, index, z, values)


class _Registered:
  """``"one of <the fusions registered now>"``: read when a problem is written, so a fusion
  registered after import (a test, a user's module) is valid too."""

  def __str__(self) -> str:
    return "one of " + ", ".join(repr(c) for c in names())


# The config fields this module reads, and what each accepts (collected by run/validate.py).
FIELDS = (
    ("text.phrase_order", checks.one_of(templates.PHRASE_ORDERS)),
    ("text.salience_stats", checks.one_of(SALIENCE_STATS)),
    ("model.fusion", ((lambda v: v in FUSIONS), _Registered())),
)
