"""lasca_jax: LaScA (language-conditioned affect-change modelling) in JAX/Flax."""

__version__ = "0.1.0"
