"""gen_jax: deep generative models in JAX."""
