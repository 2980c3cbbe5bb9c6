"""Running experiments: the stage cache, the pipeline, run directories, sweeps, config checks.

* :mod:`~lasca_jax.run.cache`: content-hashed stage cache.
* :mod:`~lasca_jax.run.stages`: the cached stages, each keyed by the arguments it computes from.
* :mod:`~lasca_jax.run.pipeline`: one configuration, all folds (``experiments/main.py``).
* :mod:`~lasca_jax.run.rundir`: the one writer of run directories (config, log, results, bundle).
* :mod:`~lasca_jax.run.sweep`: grids of configurations, trained in groups, resumable.
* :mod:`~lasca_jax.run.shards`: a configuration's or a sweep's prompts encoded in shards.
* :mod:`~lasca_jax.run.fields`: dotted config fields read and set one way.
* :mod:`~lasca_jax.run.validate`: every config field checked before any work.
"""
