"""gen_jax: deep generative models in JAX."""

from gen_jax import xla_cpu_flags  # first: XLA reads XLA_FLAGS when the first backend is made

from gen_jax.drivers.run import Run, load_run

__all__ = ["Run", "load_run"]
