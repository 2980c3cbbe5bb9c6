"""Trained models applied and explained: everything after training, in one place.

* :mod:`~lasca_jax.inference.ensemble`: a run's fold models loaded from its bundle, deciding
  windows with the representation the run was trained on.
* :mod:`~lasca_jax.inference.stream`: one window at a time (the Sec. 5.5 latency path).
* :mod:`~lasca_jax.inference.apply`: a bundle applied to a new recording
  (``experiments/predict.py``).
* :mod:`~lasca_jax.inference.attribution`: which cues the decisions rest on
  (``experiments/explain.py``).
"""
