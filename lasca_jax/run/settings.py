"""Typed settings, built from a config where a run starts: the one place that reads its sections.

Below ``run/`` nothing reads a config: the trainer takes a
:class:`~lasca_jax.model.train.TrainSettings` and a :class:`~lasca_jax.model.placement.Layout`,
the encoder an :class:`~lasca_jax.encoders.embedder.EncoderSettings`, the representation a
:class:`~lasca_jax.method.representation.Recipe`, and a bundle the fields of
:func:`bundle_fields`. A field a ``config.json`` of an earlier release lacks takes its default
from ``configs/default.py`` (``configs/from_json.py`` merges the file onto the defaults), so
older runs load and reproduce.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from lasca_jax.data import datasets
from lasca_jax.encoders import embedder, text as text_lib
from lasca_jax.model import placement, train


def train_settings(config) -> train.TrainSettings:
  """The trainer's static settings (``config.train`` and ``config.model``).

  Raises:
    ValueError: naming ``model.hidden_from_dim`` when it is negative.
  """
  t, m = config.train, config.model
  hidden_dim = int(m.get("hidden_from_dim", 0))
  if hidden_dim < 0:
    raise ValueError(f"model.hidden_from_dim={hidden_dim}: use a positive dimension, or 0")
  return train.TrainSettings(
      max_epochs=int(t.max_epochs), learning_rate=float(t.learning_rate), alpha=float(t.alpha),
      tol=float(t.tol), patience=int(t.patience), batch_size=int(t.batch_size),
      max_hidden=tuple(int(h) for h in m.max_hidden), hidden_dim=hidden_dim,
      fast_compile=bool(t.get("fast_compile", False)),
      standardize=bool(t.get("standardize", False)), min_epochs=int(t.get("min_epochs", 0)),
      monitor=str(t.get("monitor", "accuracy")),
      select=train.parse_select(t.get("select", "")),
      head=str(m.get("head", "mlp")), logistic_c=float(m.get("logistic_c", 1.0)))


def layout(config) -> placement.Layout:
  """How a call's units spread over the devices (``config.train.devices`` / ``lanes``)."""
  t = config.train
  return placement.Layout(devices=int(t.get("devices", 0)), lanes=int(t.get("lanes", 0)))


def encoder(text_config: Mapping[str, Any] | Any) -> embedder.EncoderSettings:
  """The sentence encoder of ``config.text`` (a ConfigDict, or the dict of a ``config.json``
  or a bundle, whose fields an earlier release may lack: those take their defaults)."""
  defaults = embedder.EncoderSettings()
  get = text_config.get
  fields = {k: type(v)(get(k, v) if get(k, v) is not None else v)
            for k, v in vars(defaults).items()}
  return embedder.EncoderSettings(**fields)


def time_base_hz(config) -> float:
  """The rate new recordings are pooled onto, as the run's dataset module declares it."""
  return float(datasets.get_module(config.data.name).time_base_hz(config.data))


def bundle_fields(config, inputs) -> dict:
  """The config-derived fields of a run's ``bundle.json`` (:func:`lasca_jax.model.bundle.
  write_bundle`), with the settings ``inputs`` (``pipeline.RunInputs``) carries; ``precision`` is
  the encoder precision the run resolved (``"auto"`` is float16 on a GPU) and ``engine`` the one
  that ran it (``text.engine``), so a bundle applied elsewhere embeds its prompts as training
  did."""
  fcfg, tcfg = config.features, config.text
  spec, enc = inputs.recipe.spec, inputs.encoder
  uses_backbone = spec.uses_backbone
  precision = ""
  if spec.encoded:
    precision = text_lib.resolve_engine_precision(
        enc.engine, enc.precision, text_lib.resolve_engine_device(enc.engine, enc.device))
  module = datasets.get_module(config.data.name)
  return {
      "precision": precision,
      "engine": enc.engine if spec.encoded else "",
      "demonstration": str(getattr(module, "DEMONSTRATION", "")),
      "modality": fcfg.modality,
      "template": fcfg.modality,
      "salience": {"rule": tcfg.salience, "k": int(tcfg.salience_k),
                   "threshold": float(tcfg.salience_threshold)},
      "clip": bool(fcfg.clip),
      "backbone": tcfg.backbone if uses_backbone else "",
      "model_path": tcfg.model_path if uses_backbone else "",
      "window_seconds": float(fcfg.window_seconds),
      "min_valid_fraction": float(fcfg.min_valid_fraction),
      "time_base_hz": time_base_hz(config),
      "target": config.pairs.target,
      "margin": float(config.pairs.margin),
      "hidden": list(inputs.train_settings.hidden_sizes(inputs.input_dim)),
      "max_hidden": list(config.model.max_hidden),
      "config": json.loads(config.to_json_best_effort()),
  }
