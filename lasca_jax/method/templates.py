"""Prompt templates of Appendix B.3, reproducing the example prompts of Appendix B.4.

Facial (Eq. 7) and audio (Eq. 8) prompts list the phrases of the salient features in feature
order (MediaPipe's blendshape order, then head pose; MFCC index order), which is the ordering the
paper's examples show, and end with the end-of-text marker::

  facial: left blink stress regulation, right blink stress regulation <|endoftext|>
  audio: Acoustic markers indicate high arousal energy. <|endoftext|>

The multimodal prompt (Eq. 9) strips each part's marker, joins them with the ``|`` delimiter and
appends a single marker::

  facial: left blink stress regulation, ... | audio: Acoustic markers indicate high arousal energy. <|endoftext|>

A window whose modality has no salient feature (every value equal, so Otsu has no split) reads
``no salient cues`` in that part, so the prompt stays well-formed and deterministic.

``phrase_order="salience"`` (an option, not the paper's) lists each part's phrases by decreasing
normalised value instead, so that an encoder cutting a long prompt drops the weakest cues.
:func:`prompt_phrases` and :func:`render_phrases` take a prompt apart at its phrase boundaries
and render any subset of its phrases in the same template (for encoding long prompts in pieces).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

END_OF_TEXT = "<|endoftext|>"
DELIMITER = "|"
NO_CUES = "no salient cues"
FACE_PREFIX = "facial: "
AUDIO_PREFIX = "audio: Acoustic markers indicate "


def strip(prompt: str) -> str:
  """Removes the end-of-text marker and surrounding whitespace (the paper's ``strip``)."""
  prompt = prompt.strip()
  if prompt.endswith(END_OF_TEXT):
    prompt = prompt[: -len(END_OF_TEXT)]
  return prompt.strip()


def facial_prompt(phrases: Sequence[str]) -> str:
  return f"{FACE_PREFIX}{', '.join(phrases) or NO_CUES} {END_OF_TEXT}"


def audio_prompt(phrases: Sequence[str]) -> str:
  return f"{AUDIO_PREFIX}{', '.join(phrases) or NO_CUES}. {END_OF_TEXT}"


def multimodal_prompt(face_phrases: Sequence[str], audio_phrases: Sequence[str]) -> str:
  return (f"{strip(facial_prompt(face_phrases))} {DELIMITER} "
          f"{strip(audio_prompt(audio_phrases))} {END_OF_TEXT}")


PHRASE_ORDERS = ("feature", "salience")


def prompt_for_mask(mask: np.ndarray, phrases: Sequence[str], modalities: Sequence[str],
                    modality: str, order: Sequence[int] | None = None) -> str:
  """The prompt of one window.

  Args:
    mask: ``bool [F]`` salient features of the window.
    phrases: ``F`` lexicon phrases; ``None`` for a feature that is never described.
    modalities: ``F`` entries ``"face"``/``"audio"``.
    modality: ``"visual"``, ``"audio"`` or ``"multimodal"``.
    order: feature indices in the order their phrases are listed; ``None``: feature order.
  """
  order = range(len(phrases)) if order is None else order
  face = [phrases[i] for i in order if mask[i] and phrases[i] and modalities[i] == "face"]
  audio = [phrases[i] for i in order if mask[i] and phrases[i] and modalities[i] == "audio"]
  if modality == "visual":
    return facial_prompt(face)
  if modality == "audio":
    return audio_prompt(audio)
  if modality == "multimodal":
    return multimodal_prompt(face, audio)
  raise ValueError(f"unknown modality {modality!r}: use visual, audio or multimodal")


def salience_ranks(masks: np.ndarray, values: np.ndarray) -> np.ndarray:
  """``int16 [N, F]``: each salient feature's rank by decreasing value (ties: feature order), -1
  for the others."""
  order = np.argsort(-np.asarray(values, np.float64), axis=-1, kind="stable")       # [N, F]
  ranks = np.empty_like(order)
  np.put_along_axis(ranks, order, np.arange(order.shape[-1])[None], axis=-1)
  return np.where(masks, ranks, -1).astype(np.int16)


def build_prompts(masks: np.ndarray, phrases: Sequence[str], modalities: Sequence[str],
                  modality: str, values: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Prompts for many windows, each distinct salience pattern rendered once.

  Args:
    masks: ``bool [..., F]`` salience masks (any leading shape, e.g. ``[folds, windows]``).
    values: ``float [..., F]`` normalised values, for ``phrase_order="salience"``: each part's
      phrases are then listed by decreasing value. ``None``: feature order (the paper's).

  Returns:
    ``(prompts, index)``: ``prompts`` the sorted distinct prompt strings, ``index`` an ``int32``
    array of the leading shape with ``prompts[index] `` the prompt of each window.
  """
  flat = masks.reshape(-1, masks.shape[-1]).astype(bool)
  if values is None:
    patterns, inverse = np.unique(flat, axis=0, return_inverse=True)
    texts = np.array([prompt_for_mask(p, phrases, modalities, modality) for p in patterns])
  else:
    ranks = salience_ranks(flat, np.asarray(values).reshape(flat.shape))
    patterns, inverse = np.unique(ranks, axis=0, return_inverse=True)
    texts = np.array([prompt_for_mask(r >= 0, phrases, modalities, modality,
                                      order=np.argsort(np.where(r >= 0, r, r.size)))
                      for r in patterns])
  prompts, text_inverse = np.unique(texts, return_inverse=True)
  index = text_inverse[inverse.reshape(-1)].astype(np.int32).reshape(masks.shape[:-1])
  return prompts, index


def prompt_phrases(prompt: str) -> list[tuple[str, str]]:
  """``[(modality, phrase), ...]`` of a prompt of these templates, in its order.

  Phrases are the comma-separated items of each part (``"face"`` or ``"audio"``); a lexicon
  phrase that itself contains ``", "`` counts as several.

  Raises:
    ValueError: ``prompt`` is not of the templates above.
  """
  items = []
  for part in strip(prompt).split(f" {DELIMITER} "):
    if part.startswith(FACE_PREFIX):
      kind, body = "face", part[len(FACE_PREFIX):]
    elif part.startswith(AUDIO_PREFIX):
      kind, body = "audio", part[len(AUDIO_PREFIX):]
      body = body[:-1] if body.endswith(".") else body
    else:
      raise ValueError(f"not a LaScA prompt (part {part[:40]!r}...): cannot split it into phrases")
    items.extend((kind, phrase) for phrase in body.split(", "))
  return items


def render_phrases(items: Sequence[tuple[str, str]]) -> str:
  """The prompt of a subset of ``prompt_phrases`` items: the facial part, the audio part, or both
  joined as in Eq. 9, whichever have phrases."""
  face = [p for k, p in items if k == "face"]
  audio = [p for k, p in items if k == "audio"]
  if face and audio:
    return multimodal_prompt(face, audio)
  return facial_prompt(face) if face else audio_prompt(audio)
