"""`EnergyModel`: p(x) = exp(-E(x)) / Z on the box [low, high]^D, with Langevin sampling and, in 2-D,
the exact (grid-normalised) log-density.

Methods, through `model.apply(variables, ..., method=...)`:
  energy(x)                         E(x) [B] (eval mode: spectral norm's stored estimate)
  __call__(x, train)                the same in train mode (spectral norm's power iteration advances;
                                    apply with mutable=['batch_stats'])
  sample(rng, num, steps, init)     Langevin from uniform noise on the box (or from `init`, e.g. the
                                    replay buffer), `steps` steps (default `langevin_steps`)
  log_prob(x)                       2-D only: -E(x) - log Z, log Z by the midpoint rule on a
                                    grid_size^2 grid (`grid.py`); images: use `ais.ais_log_normalizer`

Model space: vectors as they are; images as y in [0, 1]^D (dequantized levels (x + u) / L, done by the
task), so the box is the unit cube and Z is over it.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from gen_jax.models.ebm import grid
from gen_jax.models.ebm.langevin import langevin_chain, uniform_on_box


class EnergyModel(nn.Module):
  event_shape: tuple[int, ...]
  network: nn.Module  # MLPEnergy or ConvEnergy: x [B, ...] -> [B]
  domain: tuple[float, float] = (-5.0, 5.0)  # the support: the box [low, high]^D
  langevin_steps: int = 60
  step_size: float = 0.01
  noise_scale: float = 0.1414
  grid_size: int = 512
  unroll_langevin: bool = False  # True on CPU for conv energies (see langevin_chain)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.network(x, train)

  def energy(self, x: jax.Array) -> jax.Array:
    return self.network(x, False)

  def energy_fn(self):
    """A pure function x -> E(x) closed over this module's variables (for scans and autodiff)."""
    module, variables = self.unbind()
    return lambda x: module.apply(variables, x, method=module.energy)

  def sample(self, rng: jax.Array, num: int, steps: int | None = None, init: Any = None) -> jax.Array:
    init_rng, chain_rng = jax.random.split(rng)
    x0 = uniform_on_box(init_rng, (num, *self.event_shape), self.domain) if init is None else init
    return langevin_chain(self.energy_fn(), x0, chain_rng, num_steps=steps or self.langevin_steps,
                          step_size=self.step_size, noise_scale=self.noise_scale, domain=self.domain,
                          unroll=self.unroll_langevin).x

  def log_prob(self, x: jax.Array) -> jax.Array:
    if tuple(self.event_shape) != (2,):
      raise NotImplementedError("log_prob is exact (grid-normalised) for 2-D vectors only; for images, "
                                f"event shape {self.event_shape}, estimate log Z with ebm.ais_log_normalizer")
    return grid.grid_log_prob(self.energy_fn(), x, *self.domain, self.grid_size)
