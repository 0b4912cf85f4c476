"""Autoregressive models with exact log-likelihood.

  PixelCNN            Gated PixelCNN over discrete images, categorical or discretized-logistic-
                      mixture outputs (pixelcnn.py), built from `GatedLayer`s (gated_layer.py) of
                      `MaskedConv2D`s (masked_conv.py: type A/B, vertical/horizontal, no blind spot)
  Categorical         the L-way softmax per dimension (gen_jax.distributions.categorical)
  MADEDensity         MADE with Gaussian-mixture conditionals for continuous vectors (made_density.py)
  autoregressive_task their `Task`: exact NLL, bits/dim for images (task.py)
"""
from gen_jax.distributions.categorical import Categorical
from gen_jax.models.autoregressive.gated_layer import GatedLayer, gated_activation
from gen_jax.models.autoregressive.made_density import MADEDensity
from gen_jax.models.autoregressive.masked_conv import MaskedConv2D, pixelcnn_mask
from gen_jax.models.autoregressive.pixelcnn import OUTPUTS, PixelCNN, pixel_likelihood
from gen_jax.models.autoregressive.task import autoregressive_task, build_autoregressive_task

__all__ = [
    "Categorical", "GatedLayer", "MADEDensity", "MaskedConv2D", "OUTPUTS", "PixelCNN",
    "autoregressive_task", "build_autoregressive_task", "gated_activation", "pixel_likelihood",
    "pixelcnn_mask",
]
