"""Frozen encoders: the sentence transformer and its prompt store, and the baseline encoders.

* :mod:`~lasca_jax.encoders.text`: backbones, precision and device, batched prompt encoding.
* :mod:`~lasca_jax.encoders.store`: the SQLite prompt -> embedding store shared by runs.
* :mod:`~lasca_jax.encoders.baseline`: precomputed baseline-encoder embeddings pooled per window.
* :mod:`~lasca_jax.encoders.wav2vec2`: extracting wav2vec 2.0 baseline embeddings.
* :mod:`~lasca_jax.encoders.peak`: the device's measured matmul peak (throughput as a share).
"""
