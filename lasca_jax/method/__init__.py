"""The paper's method as pure numpy: windows, salience, lexicon, templates, pairs, protocols.

* :mod:`~lasca_jax.method.windows`: frames -> mean-pooled windows, usable windows, min-max.
* :mod:`~lasca_jax.method.coverage`: which windows and subjects are usable, and why not.
* :mod:`~lasca_jax.method.salience`: per-window Otsu (or top-k / threshold) salient features.
* :mod:`~lasca_jax.method.lexicon`: the phrase of each feature (LLM lexicon, feature names).
* :mod:`~lasca_jax.method.templates`: salient phrases -> the prompt of a window.
* :mod:`~lasca_jax.method.pairs`: consecutive windows whose label changes -> preference pairs.
* :mod:`~lasca_jax.method.protocols`: subject-independent folds and seeds, validation splits.
* :mod:`~lasca_jax.method.representation`: what the MLP sees of a window: every fusion declared
  once, the recipe of ``z`` and its one builder.
* :mod:`~lasca_jax.method.controls`: the control representations (mask, random text, capacity).
"""
