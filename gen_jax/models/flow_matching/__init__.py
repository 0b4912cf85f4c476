"""Flow matching: the conditional optimal-transport path (Lipman et al. 2023), rectified flow with
reflow (Liu et al. 2023) and minibatch-OT couplings (Tong et al. 2023), class-conditional with
classifier-free guidance; sampled by Euler, midpoint or adaptive (`gen_jax.ode`) solvers, scored as a
continuous normalizing flow.

  FlowMatching          the module: loss, velocity, guided_velocity, generate, encode, sample, log_prob
  flow_matching_model   the config factory (task.py)
  paths                 the conditional path x_t = t x_1 + (1 - t) x_0 (+ sigma eps) and u_t = x_1 - x_0
  couplings             independent and minibatch-OT (ott-jax Sinkhorn) pairings
  reflow                rectified flow's reflow: a trained model's (noise, sample) pairs and straightness
"""
from gen_jax.models.flow_matching import couplings, paths, reflow
from gen_jax.models.flow_matching.flow_matching import FlowMatching
from gen_jax.models.flow_matching.task import build_flow_matching_task, flow_matching_model, flow_matching_task

__all__ = ["FlowMatching", "build_flow_matching_task", "couplings", "flow_matching_model", "flow_matching_task", "reflow",
           "paths"]
