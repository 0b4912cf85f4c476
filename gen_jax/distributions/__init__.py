"""Densities the families share, each with its log-prob (nats) and sampler; one meaning per name.

  gaussian        diagonal Gaussians per dimension: reparameterize, log_prob, standard_normal_log_prob,
                  KL terms; sum_per_example
  discretized     logistic and Gaussian laws discretized to the L bins of [-1, 1]
  likelihoods     observation models p(x | .) with one API (log_prob [B], log_prob_per_dim, sample,
                  mean): Bernoulli, Gaussian, DiscretizedLogistic(Mixture), Categorical
"""
from gen_jax.distributions import discretized
from gen_jax.distributions import gaussian
from gen_jax.distributions.categorical import Categorical
from gen_jax.distributions.discretized import discretized_gaussian_log_prob, discretized_logistic_log_prob
from gen_jax.distributions.likelihoods import (LIKELIHOODS, Bernoulli, DiscretizedLogistic,
                                               DiscretizedLogisticMixture, Gaussian, Likelihood,
                                               get_likelihood, make_likelihood, resolve_likelihood,
                                               split_params)

__all__ = [
    "Bernoulli", "Categorical", "DiscretizedLogistic", "DiscretizedLogisticMixture", "Gaussian", "LIKELIHOODS",
    "Likelihood", "discretized", "discretized_gaussian_log_prob", "discretized_logistic_log_prob", "gaussian",
    "get_likelihood", "make_likelihood", "resolve_likelihood", "split_params",
]
