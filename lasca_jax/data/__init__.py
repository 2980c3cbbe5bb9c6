"""Data in: recordings and their types, dataset loaders, feature extraction from media.

* :mod:`~lasca_jax.data.types`: :class:`~lasca_jax.data.types.Recording`, feature names.
* :mod:`~lasca_jax.data.records`: typed groups of arrays that round-trip through ``.npz``.
* :mod:`~lasca_jax.data.datasets`: SEWA, Aff-Wild2, your own tables, the synthetic set.
* :mod:`~lasca_jax.data.extract`: MediaPipe blendshapes and librosa MFCCs from video and audio.
"""
