"""Reading results: statistics, the paper's tables, figures and reports.

* :mod:`~lasca_jax.analysis.results`: a run or a sweep read as one table (a row per run x fold).
* :mod:`~lasca_jax.analysis.stats`: fold means, Wilcoxon tests.
* :mod:`~lasca_jax.analysis.tables`: the paper's tables from a sweep.
* :mod:`~lasca_jax.analysis.plots`: figures.
* :mod:`~lasca_jax.analysis.report`: a sweep's tables and figures written in one call.
"""
