"""A hierarchical VAE (top-down inference, NVAE-style residual posteriors) on the MNIST split (256
levels), discretized-logistic decoder, so its ELBO bounds the discrete likelihood. Latents 4x4, 7x7
and 14x14 (three layers); the CPU variant keeps two, 4x4 and 7x7. KL warm-up as in hvae_digits.
`--config=experiments/configs/hvae_mnist.py[:cpu][,metrics]`."""
import ml_collections

from experiments.configs.base import mnist_config


def get_config(arg: str | None = None):
  config, variants = mnist_config(arg)
  config.model.name = "hvae"
  config.model.likelihood = "discretized_logistic"
  config.model.num_latent_layers = 3
  config.model.first_latent_downsamples = 1
  config.model.latent_channels = 8
  config.model.hidden_channels = 128
  config.model.num_blocks = 2
  config.vae = ml_collections.ConfigDict({"beta": 1.0, "kl_warmup_steps": 10_000})
  if "cpu" in variants:
    config.model.num_latent_layers = 2
    config.model.first_latent_downsamples = 2
    config.model.hidden_channels = 48
    config.model.num_blocks = 1
    config.vae.kl_warmup_steps = 1000
    config.train.num_steps = 3000
    config.train.eval_every = config.train.sample_every = config.train.save_every = 1000
  return config
