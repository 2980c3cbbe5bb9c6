"""The trained model: the vmapped preference-MLP trainer and its files.

* :mod:`~lasca_jax.model.train`: ``jit(vmap(train))`` over folds and configurations.
* :mod:`~lasca_jax.model.programs`: training programs kept as ``jax.export`` artefacts.
* :mod:`~lasca_jax.model.reference`: the scikit-learn reference the trainer is checked against.
* :mod:`~lasca_jax.model.bundle`: a run's trained models on disk (the file format).
* :mod:`~lasca_jax.model.efficiency`: model sizes (Sec. 5.5).

Applying trained models is :mod:`lasca_jax.inference`.
"""
