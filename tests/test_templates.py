import numpy as np

from lasca_jax.data.types import FACE_FEATURE_NAMES, MFCC_NAMES
from lasca_jax.method import lexicon, templates

NAMES = list(FACE_FEATURE_NAMES + MFCC_NAMES)
MODS = ["face"] * len(FACE_FEATURE_NAMES) + ["audio"] * len(MFCC_NAMES)
PHRASES = lexicon.build_lexicon("llm", NAMES, MODS)

# Appendix B.4: the five most frequent prompts (salient blendshapes, and mfcc_0 for audio).
PAPER_EXAMPLES = [
    (["eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeSquintLeft",
      "eyeSquintRight"],
     "facial: left blink stress regulation, right blink stress regulation, left gaze down shame "
     "reflection, right gaze down shame reflection, left eye squint suspicious focus, right eye "
     "squint evaluative doubt"),
    (["browDownLeft", "browDownRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
      "eyeLookDownRight", "eyeSquintLeft", "eyeSquintRight"],
     "facial: left brow down focused irritation, right brow down skeptical tension, left blink "
     "stress regulation, right blink stress regulation, left gaze down shame reflection, right "
     "gaze down shame reflection, left eye squint suspicious focus, right eye squint evaluative "
     "doubt"),
    (["browInnerUp", "browOuterUpLeft", "browOuterUpRight", "eyeLookDownLeft", "eyeLookDownRight"],
     "facial: inner brows up sad vulnerability, left outer brow up curious surprise, right outer "
     "brow up questioning surprise, left gaze down shame reflection, right gaze down shame "
     "reflection"),
    (["browInnerUp", "browOuterUpLeft", "browOuterUpRight"],
     "facial: inner brows up sad vulnerability, left outer brow up curious surprise, right outer "
     "brow up questioning surprise"),
    (["browInnerUp", "browOuterUpLeft", "browOuterUpRight", "eyeBlinkLeft", "eyeBlinkRight",
      "eyeLookDownLeft", "eyeLookDownRight", "eyeSquintLeft", "eyeSquintRight"],
     "facial: inner brows up sad vulnerability, left outer brow up curious surprise, right outer "
     "brow up questioning surprise, left blink stress regulation, right blink stress regulation, "
     "left gaze down shame reflection, right gaze down shame reflection, left eye squint "
     "suspicious focus, right eye squint evaluative doubt"),
]
PAPER_AUDIO_LINE = "audio: Acoustic markers indicate high arousal energy."


def _mask(active):
  # Listed in the paper's order; the mask itself is order-free, so ordering is the template's.
  return np.isin(NAMES, list(reversed(active)))


def test_paper_example_prompts_are_reproduced():
  for active, facial_line in PAPER_EXAMPLES:
    mask = _mask(active + ["mfcc_0"])
    prompt = templates.prompt_for_mask(mask, PHRASES, MODS, "multimodal")
    assert prompt == f"{facial_line} | {PAPER_AUDIO_LINE} <|endoftext|>"
    # The paper prints the two parts on separate lines: same text once split at the delimiter.
    facial, audio = templates.strip(prompt).split(" | ")
    assert (facial, audio) == (facial_line, PAPER_AUDIO_LINE)
    assert templates.prompt_for_mask(mask, PHRASES, MODS, "visual") == \
        f"{facial_line} <|endoftext|>"
    assert templates.prompt_for_mask(mask, PHRASES, MODS, "audio") == \
        f"{PAPER_AUDIO_LINE} <|endoftext|>"


def test_multimodal_is_stripped_parts_joined_by_delimiter():
  face, audio = ["a b", "c d"], ["e f"]
  multi = templates.multimodal_prompt(face, audio)
  assert multi.count("<|endoftext|>") == 1 and multi.endswith(" <|endoftext|>")
  assert multi == (templates.strip(templates.facial_prompt(face)) + " | " +
                   templates.strip(templates.audio_prompt(audio)) + " <|endoftext|>")


def test_empty_salience_and_dropped_phrases():
  assert templates.facial_prompt([]) == "facial: no salient cues <|endoftext|>"
  phrases = lexicon.build_lexicon("llm", NAMES, MODS, uncovered_policy="drop")
  mask = np.isin(NAMES, ["mouthLeft", "headYaw", "jawOpen", "mfcc_14"])
  assert templates.prompt_for_mask(mask, phrases, MODS, "multimodal") == (
      "facial: jaw drop shock surprise | audio: Acoustic markers indicate no salient cues. "
      "<|endoftext|>")
  named = templates.prompt_for_mask(mask, PHRASES, MODS, "multimodal")
  assert named == ("facial: jaw drop shock surprise, mouth left, head yaw | audio: Acoustic "
                   "markers indicate mfcc 14. <|endoftext|>")


def test_build_prompts_dedupes_and_indexes():
  rng = np.random.default_rng(0)
  masks = rng.random((3, 40, len(NAMES))) > 0.9                    # [folds, windows, F]
  masks[1] = masks[0]                                               # fold 1 repeats fold 0
  prompts, index = templates.build_prompts(masks, PHRASES, MODS, "multimodal")
  assert index.shape == (3, 40)
  assert len(set(prompts.tolist())) == prompts.size                # distinct
  for f in range(3):
    for w in range(40):
      assert prompts[index[f, w]] == templates.prompt_for_mask(masks[f, w], PHRASES, MODS,
                                                               "multimodal")
  np.testing.assert_array_equal(index[0], index[1])
