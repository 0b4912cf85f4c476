"""Normalizing flows: bijectors and the flow models built from them.

Every bijector is a linen Module with `forward(x) -> (y, log_det [batch])` (data -> latent) and
`inverse(y) -> x`; every flow model adds `log_prob`, `sample`, `encode` and `decode`.
"""
from gen_jax.models.flows.actnorm import ActNorm
from gen_jax.models.flows.affine_coupling import AffineCoupling
from gen_jax.models.flows.autoregressive import MaskedAutoregressiveAffine
from gen_jax.models.flows.chain import Chain
from gen_jax.models.flows.coupling import (CouplingConditioner, channel_mask, checkerboard_mask,
                                           coupling_mask, dimension_mask)
from gen_jax.models.flows.flow import FlowModel
from gen_jax.models.flows.glow import Glow
from gen_jax.models.flows.invertible_conv import Invertible1x1Conv, LULinear
from gen_jax.models.flows.logit import Logit
from gen_jax.models.flows.maf import MAF
from gen_jax.models.flows.multiscale import FlowLevel, MultiScale
from gen_jax.models.flows.neural_spline_flow import NeuralSplineFlow
from gen_jax.models.flows.permutation import Reverse
from gen_jax.models.flows.rational_quadratic_spline import rational_quadratic_spline
from gen_jax.models.flows.realnvp import RealNVP
from gen_jax.models.flows.spline_coupling import SplineCoupling
from gen_jax.models.flows.squeeze import (Squeeze, merge_channels, split_channels, squeeze2d,
                                          unsqueeze2d)

__all__ = [
    "ActNorm", "AffineCoupling", "Chain", "CouplingConditioner", "FlowLevel", "FlowModel", "Glow",
    "Invertible1x1Conv", "LULinear", "Logit", "MAF", "MaskedAutoregressiveAffine", "MultiScale",
    "NeuralSplineFlow", "RealNVP", "Reverse", "Squeeze", "SplineCoupling", "channel_mask",
    "checkerboard_mask", "coupling_mask", "dimension_mask", "merge_channels",
    "rational_quadratic_spline", "split_channels", "squeeze2d",
    "unsqueeze2d",
]
