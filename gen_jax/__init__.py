"""gen_jax: deep generative models in JAX."""

from gen_jax.drivers.run import Run, load_run

__all__ = ["Run", "load_run"]
