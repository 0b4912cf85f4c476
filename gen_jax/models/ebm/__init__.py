"""Energy-based models p(x) = exp(-E(x)) / Z: Langevin-trained energies, likelihoods, outlier scores.

  energy_nets    MLPEnergy (vectors), ConvEnergy (images, ResNet); swish; spectral norm optional
  model          EnergyModel: energy, sample (Langevin from noise or given starts), log_prob (2-D, grid)
  langevin       langevin_chain: unadjusted Langevin, all steps in one lax.scan
  replay_buffer  persistent chains (Du & Mordatch 2019): init, draw (with resets), store
  objectives     maximum likelihood with MCMC negatives, denoising score matching, NCE
  grid           exact 2-D normalisation on a grid with Richardson's error estimate
  ais            annealed importance sampling of log Z with its spread across chains (MALA transitions)
  outlier        energy and |grad_x E| outlier scores
  task           ebm_task / build_ebm_task / ebm_model: the family on the training loop
  (the report, python -m gen_jax.cli.ebm_report: grid NLL / AIS bits/dim, samples, OOD AUROCs)
"""
from gen_jax.models.ebm.ais import AISResult, ais_log_normalizer, mala_step, sigmoid_schedule
from gen_jax.models.ebm.energy_nets import ConvEnergy, EnergyResidualBlock, MLPEnergy
from gen_jax.models.ebm.grid import GridNormalizer, grid_log_normalizer, grid_log_prob, grid_points
from gen_jax.models.ebm.langevin import LangevinResult, energy_gradient, langevin_chain, uniform_on_box
from gen_jax.models.ebm.model import EnergyModel
from gen_jax.models.ebm.objectives import (denoising_score_matching_loss,
                                           maximum_likelihood_loss, noise_contrastive_loss)
from gen_jax.models.ebm.outlier import energy_score, gradient_norm_score
from gen_jax.models.ebm.replay_buffer import draw_chain_starts, init_replay_buffer, store_chains

__all__ = [
    "AISResult", "ConvEnergy", "EnergyModel", "EnergyResidualBlock", "GridNormalizer", "LangevinResult",
    "MLPEnergy", "ais_log_normalizer", "denoising_score_matching_loss",
    "draw_chain_starts", "energy_gradient", "energy_score", "gradient_norm_score", "grid_log_normalizer", "grid_log_prob", "grid_points",
    "init_replay_buffer", "langevin_chain", "mala_step", "maximum_likelihood_loss",
    "noise_contrastive_loss", "sigmoid_schedule", "store_chains", "uniform_on_box",
]
