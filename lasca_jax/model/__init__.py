"""The trained model: the vmapped preference-MLP trainer, bundles, and applying them.

* :mod:`~lasca_jax.model.train`: ``jit(vmap(train))`` over folds and configurations.
* :mod:`~lasca_jax.model.reference`: the scikit-learn reference the trainer is checked against.
* :mod:`~lasca_jax.model.bundle`: a run's trained models on disk, and the predictor they load as.
* :mod:`~lasca_jax.model.apply`: a bundle applied to a new recording (``experiments/predict.py``).
* :mod:`~lasca_jax.model.efficiency`: model sizes, the one-window predictor and its latency.
"""
