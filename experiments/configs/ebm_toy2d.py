"""An MLP energy on 2-D toy data, trained by maximum likelihood with Langevin negatives from a replay buffer.
`--config=experiments/configs/ebm_toy2d.py:DENSITY[,cpu][,short_run|dsm|nce]`.

The model lives on the box [-5, 5]^2 (chains clipped to it); its test NLL is exact up to the grid's
quadrature error (512^2 midpoint rule; gen_jax/models/ebm/grid.py). Langevin with noise_scale =
sqrt(2 step_size) samples exp(-E) itself (temperature 1), as the likelihood requires.
"""
from experiments.configs.base import parse_variant, toy2d_config
from gen_jax.data import toy2d

OBJECTIVE_VARIANTS = ("short_run", "dsm", "nce")


def get_config(arg: str | None = None):
  variants = parse_variant(arg, toy2d.NAMES + ("cpu",) + OBJECTIVE_VARIANTS)
  chosen = variants & set(OBJECTIVE_VARIANTS)
  if len(chosen) > 1:
    raise ValueError(f"choose one objective variant, got {sorted(chosen)}")
  config, _ = toy2d_config(",".join(sorted(variants - set(OBJECTIVE_VARIANTS))))
  config.model.name = "ebm"
  config.model.architecture = "mlp"
  config.model.hidden_sizes = (128, 128, 128)
  config.model.spectral_norm = False
  config.model.domain = (-5.0, 5.0)
  config.model.langevin_steps = 50
  config.model.step_size = 0.005
  config.model.noise_scale = 0.1  # sqrt(2 * 0.005): temperature 1
  config.model.grid_size = 512
  config.ebm = dict(objective="langevin", chains="persistent", buffer_size=10_000, reinit_prob=0.05,
                    energy_l2=0.0, dsm_sigma=0.1, sample_steps=500)
  if "short_run" in variants:
    config.ebm.chains = "short_run"
    config.model.langevin_steps = 200
  if "dsm" in variants:
    config.ebm.objective = "dsm"
  if "nce" in variants:
    config.ebm.objective = "nce"
  config.train.batch_size = 256
  config.optim.learning_rate = 1e-3
  config.train.ema_decay = 0.0  # no EMA, as the README's runs (the buffer is state: an EMA would leave it alone)
  return config
