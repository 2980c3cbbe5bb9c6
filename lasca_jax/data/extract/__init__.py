"""From raw media to per-frame features (Sec. 4.2), and back onto an annotation time base.

Modules:
  * :mod:`~lasca_jax.data.extract.video`: MediaPipe Face Landmarker blendshapes + head pose per frame.
  * :mod:`~lasca_jax.data.extract.audio`: audio decoding with PyAV and 15 MFCCs with librosa.
  * :mod:`~lasca_jax.data.extract.align`: pooling per-frame streams onto annotation time steps.
  * :mod:`~lasca_jax.data.extract.store`: the per-recording feature ``.npz`` (atomic write, checks).
  * :mod:`~lasca_jax.data.extract.runner`: one job per recording, resume, shards, worker processes.
  * :mod:`~lasca_jax.data.extract.load`: feature file + annotations -> :class:`lasca_jax.data.types.Recording`.

Nothing here imports JAX; extraction is plain numpy run on the host.
"""
