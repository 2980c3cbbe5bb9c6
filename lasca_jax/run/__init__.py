"""Running experiments: the stage cache, the pipeline, run directories, sweeps, config checks.

* :mod:`~lasca_jax.run.cache`: content-hashed stage cache and atomic writes.
* :mod:`~lasca_jax.run.pipeline`: one configuration, all folds (``experiments/main.py``).
* :mod:`~lasca_jax.run.sweep`: grids of configurations, trained in groups, resumable.
* :mod:`~lasca_jax.run.validate`: every config field checked before any work.
"""
