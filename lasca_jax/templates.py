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


def prompt_for_mask(mask: np.ndarray, phrases: Sequence[str], modalities: Sequence[str],
                    modality: str) -> str:
  """The prompt of one window.

  Args:
    mask: ``bool [F]`` salient features of the window.
    phrases: ``F`` lexicon phrases; ``None`` for a feature that is never described.
    modalities: ``F`` entries ``"face"``/``"audio"``.
    modality: ``"visual"``, ``"audio"`` or ``"multimodal"``.
  """
  face = [p for p, m, on in zip(phrases, modalities, mask) if on and p and m == "face"]
  audio = [p for p, m, on in zip(phrases, modalities, mask) if on and p and m == "audio"]
  if modality == "visual":
    return facial_prompt(face)
  if modality == "audio":
    return audio_prompt(audio)
  if modality == "multimodal":
    return multimodal_prompt(face, audio)
  raise ValueError(f"unknown modality {modality!r}: use visual, audio or multimodal")


def build_prompts(masks: np.ndarray, phrases: Sequence[str], modalities: Sequence[str],
                  modality: str) -> tuple[np.ndarray, np.ndarray]:
  """Prompts for many windows, each distinct salience pattern rendered once.

  Args:
    masks: ``bool [..., F]`` salience masks (any leading shape, e.g. ``[folds, windows]``).

  Returns:
    ``(prompts, index)``: ``prompts`` the sorted distinct prompt strings, ``index`` an ``int32``
    array of the leading shape with ``prompts[index] `` the prompt of each window.
  """
  flat = masks.reshape(-1, masks.shape[-1]).astype(bool)
  patterns, inverse = np.unique(flat, axis=0, return_inverse=True)
  texts = np.array([prompt_for_mask(p, phrases, modalities, modality) for p in patterns])
  prompts, text_inverse = np.unique(texts, return_inverse=True)
  index = text_inverse[inverse.reshape(-1)].astype(np.int32).reshape(masks.shape[:-1])
  return prompts, index
