"""Monotonic rational-quadratic spline with identity tails (Durkan et al. 2019, "Neural Spline
Flows", 3.1; Gregory & Delbourgo 1982).

On [-B, B] the spline has K bins with knots (x^k, y^k), k = 0..K, x^0 = y^0 = -B, x^K = y^K = B,
and positive derivatives d^k at the knots (d^0 = d^K = 1, so the spline joins the identity tails
outside [-B, B] with a continuous first derivative). In bin k, with w = x^{k+1} - x^k,
h = y^{k+1} - y^k, s = h / w and xi = (x - x^k) / w in [0, 1]:

  y = y^k + h [s xi^2 + d^k xi (1 - xi)] / [s + (d^{k+1} + d^k - 2 s) xi (1 - xi)],

  dy/dx = s^2 [d^{k+1} xi^2 + 2 s xi (1 - xi) + d^k (1 - xi)^2]
          / [s + (d^{k+1} + d^k - 2 s) xi (1 - xi)]^2.

The inverse solves a quadratic a xi^2 + b xi + c = 0: with dy = y - y^k and delta = d^{k+1} + d^k
- 2 s, Durkan et al. 2019 (eqs. 6-8) have a = h (s - d^k) + dy delta, b = h d^k - dy delta,
c = -s dy. They are written here with dy and dy1 = y^{k+1} - y (h = dy + dy1, both >= 0), so that
nothing cancels at the ends of the bin (the direct form lost up to 3e-5 of x in float32 at y = +-B):

  a = dy1 (s - d^k) + dy (d^{k+1} - s),   b = dy1 d^k + dy (2 s - d^{k+1}),   c = -s dy,
  b^2 - 4 a c = (d^k dy1)^2 + 2 (2 s^2 - d^k d^{k+1}) dy dy1 + (d^{k+1} dy)^2,

and the root in [0, 1] is xi = 2 c / (-b - sqrt(b^2 - 4ac)) for b >= 0, (-b + sqrt(b^2 - 4ac)) / 2a
for b < 0 (the same root; each form is the one without cancellation).

The parameters are unconstrained: widths and heights [..., K] go through a softmax (with a
minimum bin size), the K - 1 interior derivatives [..., K - 1] through a softplus (with a minimum),
shifted so that zero parameters give uniform bins and unit derivatives, i.e. the identity map.
K >= 1. With K = 1 the one bin is [-B, B] -> [-B, B] with d^0 = d^1 = 1 (the tails), so s = 1,
delta = 0 and y = x: the one-bin spline is the identity for every parameter value (its widths and
heights are a softmax over one entry and it has no interior derivatives). That follows from the
construction, it is not special-cased: no knot is left to move.
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


def _clamp_rounding(xi: jax.Array) -> jax.Array:
  """xi clipped to [0, 1] with the gradient of xi itself.

  xi is in [0, 1] up to rounding, so the clip only absorbs rounding; its own gradient (1/2 at a
  tie, which happens at the knots and the bounds, 0 past them) would make autodiff's dy/dx at
  x = +-B a quarter of the true value 1.
  """
  return xi + jax.lax.stop_gradient(jnp.clip(xi, 0.0, 1.0) - xi)


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
  if num_bins < 1:
    raise ValueError(f"the spline needs num_bins K >= 1 (widths [..., K] with K >= 1), got "
                     f"widths of shape {widths.shape}")
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
  # The boundary derivatives are 1 (the tails). Their shape comes from x, not from `inner`: with
  # K = 1 there are no interior knots, inner is [..., 0] and a slice of it would be empty too.
  ones = jnp.ones(shape + (1,), inner.dtype)
  knot_derivs = jnp.concatenate([ones, inner, ones], axis=-1)   # [..., K + 1], ends = 1 (tails)

  inside = (x >= -bound) & (x <= bound)
  x_in = jnp.where(inside, x, 0.0)                           # keeps the unused branch finite
  knots = knots_y if inverse else knots_x
  index = jnp.sum(x_in[..., None] >= knots[..., 1:-1], axis=-1)  # bin in [0, K - 1]

  xk, xk1 = _gather(knots_x, index), _gather(knots_x, index + 1)
  yk, yk1 = _gather(knots_y, index), _gather(knots_y, index + 1)
  dk, dk1 = _gather(knot_derivs, index), _gather(knot_derivs, index + 1)
  w, h = xk1 - xk, yk1 - yk
  s = h / w
  delta = dk1 + dk - 2.0 * s

  if inverse:
    # a, b, c and b^2 - 4ac in terms of dy = y - y^k >= 0 and dy1 = y^{k+1} - y >= 0 (module
    # docstring): no term cancels near either end of the bin.
    dy, dy1 = x_in - yk, yk1 - x_in
    a = dy1 * (s - dk) + dy * (dk1 - s)
    b = dy1 * dk + dy * (2.0 * s - dk1)
    c = -s * dy
    disc = jnp.maximum((dk * dy1) ** 2 + 2.0 * (2.0 * s * s - dk * dk1) * dy * dy1
                       + (dk1 * dy) ** 2, 0.0)
    root = jnp.sqrt(disc)
    # The root in [0, 1] in the form whose sum does not cancel: 2c / (-b - root) for b >= 0,
    # (-b + root) / 2a for b < 0 (then dy > 0 and a > 0). Each denominator is kept off zero in the
    # branch where it is unused, so that neither the value nor its gradient turns NaN.
    positive = b >= 0.0
    xi_plus = 2.0 * c / jnp.where(positive, -b - root, -1.0)
    xi_minus = (root - b) / jnp.where(positive, 1.0, 2.0 * a)
    xi = _clamp_rounding(jnp.where(positive, xi_plus, xi_minus))
    out = xk + xi * w
  else:
    xi = _clamp_rounding((x_in - xk) / w)
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
