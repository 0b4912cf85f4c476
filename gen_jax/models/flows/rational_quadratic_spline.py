"""Monotonic rational-quadratic spline with identity tails (Durkan et al. 2019, "Neural Spline
Flows", 3.1; Gregory & Delbourgo 1982).

On [-B, B] the spline has K bins with knots (x^k, y^k), k = 0..K, x^0 = y^0 = -B, x^K = y^K = B,
and positive derivatives d^k at the knots (d^0 = d^K = 1, so the spline joins the identity tails
outside [-B, B] with a continuous first derivative). In bin k, with w = x^{k+1} - x^k,
h = y^{k+1} - y^k, s = h / w and xi = (x - x^k) / w in [0, 1]:

  y = y^k + h [s xi^2 + d^k xi (1 - xi)] / [s + (d^{k+1} + d^k - 2 s) xi (1 - xi)],

  dy/dx = s^2 [d^{k+1} xi^2 + 2 s xi (1 - xi) + d^k (1 - xi)^2]
          / [s + (d^{k+1} + d^k - 2 s) xi (1 - xi)]^2.

The inverse solves a quadratic in xi: with dy = y - y^k and delta = d^{k+1} + d^k - 2 s,
a = h (s - d^k) + dy delta, b = h d^k - dy delta, c = -s dy, the root in [0, 1] is

  xi = 2 c / (-b - sqrt(b^2 - 4 a c))       (Durkan et al. 2019, eqs. 6-8, stable form).

The parameters are unconstrained: widths and heights [..., K] go through a softmax (with a
minimum bin size), the K - 1 interior derivatives [..., K - 1] through a softplus (with a minimum),
shifted so that zero parameters give uniform bins and unit derivatives, i.e. the identity map.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _knots(unnormalized: jax.Array, bound: float, min_size: float) -> jax.Array:
  """Unconstrained bin sizes [..., K] -> knot positions [..., K + 1] from -bound to bound."""
  num_bins = unnormalized.shape[-1]
  if min_size * num_bins >= 1.0:
    raise ValueError(f"minimum bin size {min_size} is too large for {num_bins} bins "
                     f"(need min_size * K < 1)")
  sizes = min_size + (1.0 - min_size * num_bins) * jax.nn.softmax(unnormalized, axis=-1)
  cum = jnp.cumsum(sizes, axis=-1)
  cum = jnp.concatenate([jnp.zeros_like(cum[..., :1]), cum], axis=-1)
  knots = bound * (2.0 * cum - 1.0)
  # Pin the end knots exactly, so that rounding cannot open a gap at the tails.
  return knots.at[..., 0].set(-bound).at[..., -1].set(bound)


def _gather(params: jax.Array, index: jax.Array) -> jax.Array:
  return jnp.take_along_axis(params, index[..., None], axis=-1)[..., 0]


def rational_quadratic_spline(x: jax.Array, widths: jax.Array, heights: jax.Array,
                              derivatives: jax.Array, bound: float, inverse: bool = False,
                              min_bin_width: float = 1e-3, min_bin_height: float = 1e-3,
                              min_derivative: float = 1e-3) -> tuple[jax.Array, jax.Array]:
  """Elementwise monotonic RQ spline on [-bound, bound], identity outside.

  Args:
    x: inputs, any shape S (outputs y when `inverse`).
    widths: unconstrained bin widths, shape S + (K,).
    heights: unconstrained bin heights, shape S + (K,).
    derivatives: unconstrained interior knot derivatives, shape S + (K - 1,).
    bound: B > 0, half-width of the spline's interval.
    inverse: compute the inverse map.
    min_bin_width, min_bin_height, min_derivative: lower bounds for numerical stability.

  Returns:
    (y, log_det) of shape S: y = g(x) and log dg/dx elementwise (forward), or x = g^{-1}(y) and
    log dg^{-1}/dy = -log g'(x) (inverse).
  """
  num_bins = widths.shape[-1]
  if heights.shape[-1] != num_bins or derivatives.shape[-1] != num_bins - 1:
    raise ValueError(f"expected widths [..., K], heights [..., K], derivatives [..., K-1]; got "
                     f"{widths.shape}, {heights.shape}, {derivatives.shape}")
  shape = x.shape
  widths = jnp.broadcast_to(widths, shape + (num_bins,))
  heights = jnp.broadcast_to(heights, shape + (num_bins,))
  derivatives = jnp.broadcast_to(derivatives, shape + (num_bins - 1,))

  knots_x = _knots(widths, bound, min_bin_width)            # [..., K + 1]
  knots_y = _knots(heights, bound, min_bin_height)          # [..., K + 1]
  # softplus(0 + offset) = 1 - min_derivative, so zero parameters give unit derivatives.
  offset = float(np.log(np.expm1(1.0 - min_derivative)))
  inner = min_derivative + jax.nn.softplus(derivatives + offset)
  ones = jnp.ones_like(inner[..., :1])
  knot_derivs = jnp.concatenate([ones, inner, ones], axis=-1)   # [..., K + 1], ends = 1 (tails)

  inside = (x >= -bound) & (x <= bound)
  x_in = jnp.clip(x, -bound, bound)                          # keeps the unused branch finite
  knots = knots_y if inverse else knots_x
  index = jnp.sum(x_in[..., None] >= knots[..., 1:-1], axis=-1)  # bin in [0, K - 1]

  xk, xk1 = _gather(knots_x, index), _gather(knots_x, index + 1)
  yk, yk1 = _gather(knots_y, index), _gather(knots_y, index + 1)
  dk, dk1 = _gather(knot_derivs, index), _gather(knot_derivs, index + 1)
  w, h = xk1 - xk, yk1 - yk
  s = h / w
  delta = dk1 + dk - 2.0 * s

  if inverse:
    dy = x_in - yk
    a = h * (s - dk) + dy * delta
    b = h * dk - dy * delta
    c = -s * dy
    disc = jnp.maximum(b * b - 4.0 * a * c, 0.0)
    xi = jnp.clip(2.0 * c / (-b - jnp.sqrt(disc)), 0.0, 1.0)
    out = xk + xi * w
  else:
    xi = jnp.clip((x_in - xk) / w, 0.0, 1.0)
    out = yk + h * (s * xi ** 2 + dk * xi * (1.0 - xi)) / (s + delta * xi * (1.0 - xi))

  xi1m = xi * (1.0 - xi)
  denom = s + delta * xi1m
  log_deriv = (2.0 * jnp.log(s)
               + jnp.log(dk1 * xi ** 2 + 2.0 * s * xi1m + dk * (1.0 - xi) ** 2)
               - 2.0 * jnp.log(denom))
  if inverse:
    log_deriv = -log_deriv
  y = jnp.where(inside, out, x)
  log_det = jnp.where(inside, log_deriv, jnp.zeros_like(log_deriv))
  return y, log_det
