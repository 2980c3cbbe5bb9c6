"""Cue attributions are right, not just computed: the synthetic generator's cue-affect relations
(lasca_jax/data/datasets/synthetic.py, CUE_LOADINGS) are recovered, leave-one-cue-out is exact,
integrated gradients are complete, and removing the top attributed cues changes decisions more
than removing random salient cues.

The models are trained here, in seconds: 16 synthetic subjects of 4 minutes (3 folds), visual
features, 5 s windows, per-frame noise halved and a weaker L2 penalty (train.alpha=1e-3) so that
a small model learns the relations. The text side uses a bag-of-words encoder (each word a fixed
random vector, a prompt the sum of its words' vectors): it is linear in the phrases, fast, and
lets the preference model learn what each phrase means.
"""

import hashlib
import re

import numpy as np
import pytest

from lasca_jax.encoders import text as text_lib
from lasca_jax.inference import attribution, ensemble
from lasca_jax.method import templates
from lasca_jax.model import bundle
from lasca_jax.run import pipeline
from conftest import make_tiny_config

VALENCE_UP = ("mouthSmile", "cheekSquint", "mouthDimple")
VALENCE_DOWN = ("mouthFrown", "browDown", "noseSneer")
AROUSAL_UP = ("eyeWide", "jawOpen", "browOuterUp")
AROUSAL_DOWN = ("eyeBlink", "eyeLookDown")


class BagOfWordsEncoder:
  """``SentenceTransformer.encode`` stand-in: the sum of a fixed random vector per word."""

  max_seq_length = None
  dim = 64

  def __init__(self):
    self.vectors = {}
    self.texts = 0

  def _word(self, w):
    if w not in self.vectors:
      seed = int(hashlib.sha256(w.encode()).hexdigest()[:8], 16)
      self.vectors[w] = np.random.default_rng(seed).normal(size=self.dim)
    return self.vectors[w]

  def encode(self, texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False):
    del batch_size, convert_to_numpy, show_progress_bar
    self.texts += len(texts)
    return np.array([sum((self._word(w) for w in re.findall(r"[a-z]+", t.lower())),
                         np.zeros(self.dim)) for t in texts], np.float32)


def _config(cache, fusion, target, backbone):
  return make_tiny_config(cache, **{
      "model.fusion": fusion, "pairs.target": target, "features.modality": "visual",
      "features.window_seconds": 5.0, "data.num_subjects": 16, "data.minutes": 4.0,
      "data.noise": 0.5, "train.alpha": 1e-3, "train.max_epochs": 25,
      "text.backbone": str(backbone)})


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  """Trained runs: (features, valence), (features, arousal), (fused, valence), (mask, valence),
  explained."""
  root = tmp_path_factory.mktemp("attribution")
  backbone = root / "bag_of_words"          # a folder, so the store has its own key
  backbone.mkdir()
  encoder = BagOfWordsEncoder()
  out = {}
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(text_lib, "load_model", lambda *args, **kwargs: encoder)
    for fusion, target in (("features", "valence"), ("features", "arousal"),
                           ("fused", "valence"), ("mask", "valence")):
      run_dir = str(root / f"{fusion}_{target}")
      pipeline.run(_config(root / "cache", fusion, target, backbone), run_dir)
      predictor = ensemble.load_bundle(run_dir)
      if predictor.uses_text:
        predictor.store._model = encoder     # pylint: disable=protected-access
      result = attribution.explain_run(predictor, max_pairs=0 if fusion == "features" else 400)
      out[fusion, target] = (predictor, result)
  return out


def _family_means(cues, source, families):
  part = cues[cues["source"] == source]
  return {f: float(part[part["cue"].str.startswith(f)]["mean_contribution"].mean())
          for f in families}


@pytest.mark.parametrize("target,up,down", [("valence", VALENCE_UP, VALENCE_DOWN),
                                            ("arousal", AROUSAL_UP, AROUSAL_DOWN)])
def test_feature_attributions_recover_the_generators_directions(models, target, up, down):
  _, result = models["features", target]
  means = _family_means(result.cues, "feature", up + down)
  assert all(means[f] > 0 for f in up), means
  assert all(means[f] < 0 for f in down), means
  # The known cues outweigh the cues without an affect loading.
  feature = result.cues[result.cues["source"] == "feature"]
  known = feature["cue"].str.startswith(up + down)
  assert feature[known]["mean_abs_contribution"].mean() > (
      feature[~known]["mean_abs_contribution"].mean())


def test_text_attributions_recover_the_valence_directions(models):
  _, result = models["fused", "valence"]
  means = _family_means(result.cues, "text", VALENCE_UP + VALENCE_DOWN)
  assert all(means[f] > 0 for f in VALENCE_UP), means
  assert all(means[f] < 0 for f in VALENCE_DOWN), means
  text = result.cues[result.cues["source"] == "text"]
  smile = text[text["cue"] == "mouthSmileRight"].iloc[0]
  assert smile["phrase"] == "right smile genuine positivity" and smile["times_salient"] > 0


@pytest.mark.parametrize("key", [("features", "valence"), ("features", "arousal"),
                                 ("fused", "valence")])
def test_deletion_of_top_cues_beats_random_cues(models, key):
  _, result = models[key]
  curve = result.deletion
  assert curve.decisions > 100
  assert list(curve.ks) == [1, 2, 3, 4, 5]
  assert np.all(curve.top_change > curve.random_change), curve
  assert np.all(curve.top_flip >= curve.random_flip), curve
  assert result.summary["deletion"]["top_change"] == curve.top_change.tolist()


def test_leave_one_cue_out_equals_re_encoding_by_hand(models):
  predictor, result = models["fused", "valence"]
  expl = result.explanation
  t = predictor.test_windows()
  rep = predictor.represent(t["features"])
  k, n, c = [a[0] for a in np.nonzero(expl.salient_second & (expl.text_second != 0))]
  a, b = t["first"][k, n], t["second"][k, n]
  mask = rep.mask[k, b].copy()
  mask[c] = False
  prompt = templates.prompt_for_mask(mask, predictor.phrases, predictor.modalities, "visual")
  assert predictor.phrases[c] not in prompt.split(": ", 1)[1].split(", ")
  z_b = np.concatenate([rep.x[k, b], predictor.embed([prompt])[0]])
  diff = np.zeros((predictor.num_folds, 1, z_b.size), np.float32)
  diff[k, 0] = z_b - rep.z[k, a]
  by_hand = predictor.logits(diff)[k, 0]
  np.testing.assert_allclose(expl.logit[k, n] - by_hand, expl.text_second[k, n, c], rtol=1e-5,
                             atol=1e-6)
  # Cues that are not salient get no text attribution.
  assert np.all(expl.text_first[~expl.salient_first] == 0)
  assert np.all(expl.text_second[~expl.salient_second] == 0)


def test_integrated_gradients_are_complete(models):
  predictor, result = models["fused", "valence"]
  expl = result.explanation
  t = predictor.test_windows()
  rep = predictor.represent(t["features"])
  k_idx = np.arange(predictor.num_folds)[:, None]
  diff = rep.z[k_idx, t["second"]] - rep.z[k_idx, t["first"]]
  no_change = diff.copy()
  no_change[..., :len(predictor.feature_names)] = 0
  delta = predictor.logits(diff) - predictor.logits(no_change)               # [K, n]
  got = expl.feature.sum(-1)
  v = expl.valid
  assert np.abs(delta[v]).max() > 0.05
  np.testing.assert_allclose(got[v], delta[v], atol=0.02 + 0.05 * np.abs(delta[v]).max())
  assert np.all(expl.feature[~v] == 0)


def test_explain_command_writes_cues_figure_and_deletion_curve(models, tmp_path, monkeypatch):
  import os  # pylint: disable=import-outside-toplevel
  import pandas as pd  # pylint: disable=import-outside-toplevel
  predictor, _ = models["fused", "valence"]
  monkeypatch.setattr(text_lib, "load_model", lambda *args, **kwargs: BagOfWordsEncoder())
  run_dir = os.path.dirname(predictor.path)
  result = attribution.explain_run_dir(run_dir, str(tmp_path / "explain"), max_pairs=60)
  cues = pd.read_csv(tmp_path / "explain" / "cues.csv")
  assert list(cues.columns[:7]) == ["cue", "phrase", "modality", "source", "times_salient",
                                    "mean_contribution", "std_over_folds"]
  assert set(cues["source"]) == {"text", "feature"} and len(cues) == 2 * 58
  assert result.summary["explained"] == 60
  for name in ("cues_valence.png", "deletion.png"):
    assert (tmp_path / "explain" / name).stat().st_size > 0
  deletion = pd.read_csv(tmp_path / "explain" / "deletion.csv")
  assert list(deletion["k"]) == [1, 2, 3, 4, 5]


def test_the_mask_controls_mask_half_is_attributed_exactly(models):
  """The salience-mask control ([x || m]): each salient cue's 0/1 mask entry is attributed by
  leave-one-cue-out, as a fused model's phrases are; the feature half keeps integrated
  gradients."""
  predictor, result = models["mask", "valence"]
  assert predictor.salience_part == "mask" and not predictor.uses_text
  assert set(result.cues["source"]) == {"mask", "feature"}
  expl = result.explanation
  assert np.abs(expl.text_second[expl.salient_second]).mean() > 1e-3
  t = predictor.test_windows()
  rep = predictor.represent(t["features"])
  part = predictor.slices()["mask"]
  k_idx = np.arange(predictor.num_folds)[:, None]
  diff = rep.z[k_idx, t["second"]] - rep.z[k_idx, t["first"]]
  for k, n, c in list(zip(*np.nonzero(expl.salient_first)))[:5]:
    off = diff.copy()
    off[k, n, part.start + c] += 1.0     # the earlier window's mask entry c set to 0
    np.testing.assert_allclose(expl.logit[k, n] - predictor.logits(off)[k, n],
                               expl.text_first[k, n, c], rtol=1e-5, atol=1e-6)
  for k, n, c in list(zip(*np.nonzero(expl.salient_second)))[:5]:
    off = diff.copy()
    off[k, n, part.start + c] -= 1.0
    np.testing.assert_allclose(expl.logit[k, n] - predictor.logits(off)[k, n],
                               expl.text_second[k, n, c], rtol=1e-5, atol=1e-6)
  # predict.py's top cues of a mask model now include the mask half.
  tops = attribution.top_cues(expl, predictor.feature_names, 3)
  assert any(tops)
