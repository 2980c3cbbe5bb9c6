"""From raw media to per-frame features (Sec. 4.2), and back onto an annotation time base.

Modules:
  * :mod:`~lasca_jax.extract.video`: MediaPipe Face Landmarker blendshapes + head pose per frame.
  * :mod:`~lasca_jax.extract.audio`: audio decoding with PyAV and 15 MFCCs with librosa.
  * :mod:`~lasca_jax.extract.align`: pooling per-frame streams onto annotation time steps.
  * :mod:`~lasca_jax.extract.store`: the per-recording feature ``.npz`` (atomic write, checks).
  * :mod:`~lasca_jax.extract.runner`: one job per recording, resume, shards, worker processes.
  * :mod:`~lasca_jax.extract.load`: feature file + annotations -> :class:`lasca_jax.data.Recording`.

Nothing here imports JAX; extraction is plain numpy run on the host.
"""
