"""Ordinary differential equations shared by the continuous-time families (diffusion's probability flow,
flow matching): the solver, the divergence of a vector field, and the change-of-variables log-density."""
from gen_jax.ode.change_of_variables import DIVERGENCES, log_prob
from gen_jax.ode.divergence import divergence_noise, exact_divergence, hutchinson_divergence
from gen_jax.ode.solver import METHODS, ODESolution, raise_if_failed, solve_ode

__all__ = ["DIVERGENCES", "METHODS", "ODESolution", "divergence_noise", "exact_divergence",
           "hutchinson_divergence", "log_prob", "raise_if_failed", "solve_ode"]
