"""The pre-diffrax ODE solver, kept only as the baseline of benchmarks/ode_vs_diffrax.py: not part of gen_jax.

This is gen_jax/ode/solver.py as of commit 4f9fb6d0a46412f562d38596d24af9db20a8240b, the last with the
hand-written Dormand-Prince 5(4) (gen_jax.ode.solve_ode wraps diffrax since the commit after it, on the
measurement of ode_vs_diffrax.py). Its code is unchanged here, so that the benchmark runs in a clone
without that history (a shallow one); nothing else imports it and it is not maintained with gen_jax.
Its docstring as it was:

Solving dy/dt = f(t, y) for a pytree state: adaptive Dormand-Prince 5(4), fixed-step RK4 / Euler.

The probability-flow ODE likelihood integrates the pair (z [B, ...], delta_log_p [B]) through time;
`solve_ode` integrates any pytree y from t0 to t1 (t1 < t0 integrates backwards).

"dopri5" (Dormand & Prince 1980; Hairer, Norsett & Wanner, "Solving Ordinary Differential
Equations I", 2nd ed. 1993, II.4-II.5, Table 5.2): seven stages

  k_i = f(t + c_i h, y + h sum_{j<i} a_ij k_j),   y_new = y + h sum_i b_i k_i   (order 5),

an embedded 4th-order solution y_hat = y + h sum_i b_hat_i k_i, and a_7j = b_j, so
k_7 = f(t + h, y_new) is the next step's k_1 (FSAL: six evaluations per step). Error control
(II.4), with N the total number of components over all leaves of the state:

  err = sqrt( (1/N) sum_i ((y_new,i - y_hat,i) / (atol + rtol max(|y_i|, |y_new,i|)))^2 )

a step is accepted when err <= 1, and the next step is h * clip(0.9 err^(-1/5), 0.2, 10), with no
increase right after a rejection (facmax = 1, as in Hairer's code and scipy's RK45). The whole state
shares one step size (as scipy's solve_ivp on the flattened state, used by FFJORD and score_sde);
`jax.vmap` the solver for per-example step sizes. The last step is clipped to land on t1 exactly.

Initial step: Hairer's heuristic (II.4, "Starting step size"), with the same norm:
  d0 = ||y0||, d1 = ||f(t0, y0)||, h0 = 0.01 d0 / d1 (1e-6 when d0 or d1 < 1e-5),
  d2 = ||f(t0 + h0, y0 + h0 f(t0, y0)) - f(t0, y0)|| / h0,
  h1 = (0.01 / max(d1, d2))^(1/5) (max(1e-6, 1e-3 h0) when max(d1, d2) <= 1e-15),
  h = min(100 h0, h1);
one extra evaluation, and h0 is clipped to |t1 - t0| so that f is never evaluated outside [t0, t1].

"rk4" (the classical Runge-Kutta method, Kutta 1901), "midpoint" (the explicit midpoint rule, order 2)
and "euler" take `num_steps` equal steps in a `lax.scan`: 4, 2 and 1 evaluations per step.

Failures are reported, never hidden: `ODESolution.status` is SUCCESS, MAX_STEPS_REACHED (the
adaptive solver tried max_steps steps, accepted plus rejected, before t1), NON_FINITE (the state or
f became nan/inf: y0 or f(t0, y0) non-finite, a fixed step non-finite, or the adaptive solver ran
out of steps while rejecting steps since a non-finite trial; it rejects a non-finite trial step and
retries with a 5x smaller one, so nan/inf never enters the accepted state) or
STEP_SIZE_UNDERFLOW (t + h == t: the step became smaller than the resolution of t). Check it in a
jitted program with `solution.succeeded`, or outside jit with `raise_if_failed(solution)`.

Differentiation: the fixed-step methods are differentiable in forward and reverse mode (`lax.scan`).
"dopri5" runs in a `lax.while_loop`, which JAX differentiates in forward mode only (`jax.jvp`,
`jax.jacfwd`); the step-size selection is under `stop_gradient`, so its derivative is that of the
discrete solution for the step sizes taken.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks

METHODS = ("dopri5", "rk4", "midpoint", "euler")

SUCCESS = 0
MAX_STEPS_REACHED = 1
NON_FINITE = 2
STEP_SIZE_UNDERFLOW = 3

# Dormand-Prince 5(4) tableau (Hairer, Norsett & Wanner, Table 5.2).
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),  # = b (5th order)
)
# b - b_hat: the difference between the 5th- and the embedded 4th-order solutions.
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)
_A_MATRIX = np.array([row + (0.0,) * (7 - len(row)) for row in _A])  # [7, 7], row i: stage i + 1
_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0
_ERROR_EXPONENT = -1 / 5  # -1 / (q + 1), q = 4 the order of the embedded error estimate


class ODESolution(NamedTuple):
  """The result of `solve_ode` (every field gains a leading axis under `jax.vmap`).

  Attributes:
    y: the state at t1 (at `t` when the solve failed), same pytree as y0.
    t: the time reached; t1 on success.
    num_function_evals: evaluations of f.
    num_steps: accepted steps.
    num_rejected_steps: rejected steps (always 0 for the fixed-step methods).
    status: SUCCESS, MAX_STEPS_REACHED, NON_FINITE or STEP_SIZE_UNDERFLOW.
  """
  y: Any
  t: jax.Array
  num_function_evals: jax.Array
  num_steps: jax.Array
  num_rejected_steps: jax.Array
  status: jax.Array

  @property
  def succeeded(self) -> jax.Array:
    return self.status == SUCCESS


def solve_ode(fn: Callable[[jax.Array, Any], Any], y0: Any, t0, t1, *, method: str = "dopri5",
              rtol: float = 1e-5, atol: float = 1e-5, num_steps: int | None = None,
              max_steps: int = 10_000, first_step: float | None = None) -> ODESolution:
  """Integrates dy/dt = fn(t, y) from t0 to t1 (t1 < t0: backwards).

  Args:
    fn: (t scalar, y pytree) -> dy/dt, a pytree with y's structure, shapes and dtypes.
    y0: the state at t0, a pytree of floating-point arrays.
    t0, t1: start and end times (scalars, may be traced; computed in the state's float dtype).
    method: "dopri5" (adaptive), "rk4", "midpoint" or "euler" (fixed steps).
    rtol, atol: relative and absolute tolerances of "dopri5" (ignored by the fixed-step methods).
    num_steps: number of equal steps; required by the fixed-step methods, not accepted by "dopri5".
    max_steps: "dopri5" stops, with status MAX_STEPS_REACHED, after this many tried steps.
    first_step: "dopri5"'s first step size |h|; None uses Hairer's heuristic (one more evaluation).

  Returns:
    ODESolution; check `succeeded` (or call `raise_if_failed` outside jit) before using `y`.

  Call it under `jax.jit`: eagerly, the operations around the loop dispatch one by one (a first
  eager call measured 3x slower than jit's compile-and-run on the 2-core CPU).
  """
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  _check_state(y0)
  dtype = jnp.result_type(*jax.tree.leaves(y0))
  t0, t1 = jnp.asarray(t0, dtype), jnp.asarray(t1, dtype)
  if t0.shape or t1.shape:
    raise ValueError(f"t0 and t1 must be scalars (vmap the solver for several intervals), "
                     f"got shapes {t0.shape} and {t1.shape}")
  _check_derivative(fn, t0, y0)
  if method == "dopri5":
    if num_steps is not None:
      raise ValueError(f"num_steps={num_steps!r} applies to the fixed-step methods 'rk4', "
                       "'midpoint' and 'euler'; 'dopri5' chooses its steps from rtol and atol")
    checks.check_positive_int(max_steps, "max_steps")
    _check_tolerances(rtol, atol)
    return _solve_dopri5(fn, y0, t0, t1, rtol, atol, max_steps, first_step)
  if num_steps is None:
    raise ValueError(f"method={method!r} takes fixed steps: pass num_steps (a positive integer)")
  checks.check_positive_int(num_steps, "num_steps")
  return _solve_fixed(fn, y0, t0, t1, method, num_steps)


def raise_if_failed(solution: ODESolution) -> ODESolution:
  """Returns `solution` if every solve in it succeeded, else raises a ValueError saying why.

  Call it outside jit, on the concrete result (batched results from `jax.vmap` are fine).
  """
  if isinstance(solution.status, jax.core.Tracer):
    raise ValueError("raise_if_failed needs a concrete ODESolution: call it outside jit (inside, "
                     "use solution.succeeded)")
  status = np.asarray(solution.status)
  failed = np.flatnonzero(status.reshape(-1) != SUCCESS)
  if failed.size == 0:
    return solution
  i = int(failed[0])
  pick = lambda a: np.asarray(a).reshape(-1)[i]
  code, t = int(pick(solution.status)), float(pick(solution.t))
  accepted, rejected = int(pick(solution.num_steps)), int(pick(solution.num_rejected_steps))
  if code == MAX_STEPS_REACHED:
    reason = (f"ODE solve hit max_steps={accepted + rejected} ({accepted} accepted, {rejected} "
              f"rejected) at t={t:.6g} before t1: raise max_steps or loosen rtol/atol")
  elif code == NON_FINITE:
    reason = (f"ODE state or derivative became non-finite (nan/inf) at t={t:.6g} after {accepted} "
              "accepted steps")
  elif code == STEP_SIZE_UNDERFLOW:
    reason = (f"ODE step size underflowed (t + h == t) at t={t:.6g} after {accepted} accepted "
              "steps: the dynamics are stiff or singular there")
  else:
    reason = f"unknown ODE status {code}"
  if status.size > 1:
    reason = (f"{failed.size} of {status.size} ODE solves failed; the first (flat index {i}): "
              f"{reason}")
  raise ValueError(reason)


# --- the solvers -------------------------------------------------------------------------------


def _solve_dopri5(fn, y0, t0, t1, rtol, atol, max_steps, first_step) -> ODESolution:
  direction = jnp.where(t1 >= t0, 1.0, -1.0).astype(t0.dtype)
  span = jnp.abs(t1 - t0)
  f0 = fn(t0, y0)
  start_finite = _all_finite(y0) & _all_finite(f0)
  if first_step is None:
    h_abs = _initial_step(fn, t0, y0, f0, direction, span, rtol, atol)
    startup_evals = 2
  else:
    h_abs = jnp.abs(jnp.asarray(first_step, t0.dtype))
    startup_evals = 1

  def cond(carry):
    t, _, _, _, accepted, rejected, _, _, stop = carry
    return (direction * (t1 - t) > 0) & (accepted + rejected < max_steps) & ~stop

  def body(carry):
    t, y, k1, h_abs, accepted, rejected, rejected_last, nonfinite_since_accept, _ = carry
    remaining = t1 - t
    last = h_abs >= jnp.abs(remaining)
    h = jnp.where(last, remaining, direction * h_abs)
    t_new = jnp.where(last, t1, t + h)
    underflow = t_new == t
    y_new, k7, err = _dopri5_step(fn, t, y, k1, h, t_new)
    finite = _all_finite(y_new) & _all_finite(k7)
    err_norm = jax.lax.stop_gradient(_error_norm(err, y, y_new, rtol, atol))
    err_norm = jnp.where(finite & jnp.isfinite(err_norm), err_norm, jnp.inf)
    accept = (err_norm <= 1) & ~underflow
    factor = jnp.where(err_norm == 0, _MAX_FACTOR,
                       jnp.clip(_SAFETY * err_norm ** _ERROR_EXPONENT, _MIN_FACTOR, _MAX_FACTOR))
    factor = jnp.where(accept & rejected_last, jnp.minimum(factor, 1.0), factor)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(accept, a, b), new, old)
    return (jnp.where(accept, t_new, t), keep(y_new, y), keep(k7, k1),
            jax.lax.stop_gradient(jnp.abs(h) * factor).astype(t.dtype),
            accepted + accept, rejected + ~accept, ~accept,
            ~accept & (nonfinite_since_accept | ~finite), underflow)

  zero = jnp.zeros((), jnp.int32)
  carry = (t0, y0, f0, h_abs, zero, zero, jnp.array(False), jnp.array(False), ~start_finite)
  t, y, _, _, accepted, rejected, _, nonfinite, underflow = jax.lax.while_loop(cond, body, carry)
  reached = t == t1
  status = jnp.select(
      [~start_finite, reached, nonfinite, underflow],
      [NON_FINITE, SUCCESS, NON_FINITE, STEP_SIZE_UNDERFLOW], MAX_STEPS_REACHED).astype(jnp.int32)
  return ODESolution(y=y, t=t, num_function_evals=startup_evals + 6 * (accepted + rejected),
                     num_steps=accepted, num_rejected_steps=rejected, status=status)


def _dopri5_step(fn, t, y, k1, h, t_new):
  """One Dormand-Prince step: (y_new, k7 = f(t_new, y_new), local error estimate y_new - y_hat).

  The stages run in a `lax.fori_loop`, so that fn is traced and compiled once, not six times.
  """
  ks = jax.tree.map(lambda k: jnp.zeros((7,) + k.shape, k.dtype).at[0].set(k), k1)  # [7, ...]

  def stage(i, ks):
    y_i = jax.tree.map(lambda y, k: y + _weighted_sum(h, jnp.asarray(_A_MATRIX)[i], k), y, ks)
    t_i = jnp.where(i >= 5, t_new, t + jnp.asarray(_C, t.dtype)[i] * h)  # c_6 = c_7 = 1
    return jax.tree.map(lambda k, k_i: k.at[i].set(k_i), ks, fn(t_i, y_i))

  ks = jax.lax.fori_loop(1, 7, stage, ks)
  y_new = jax.tree.map(lambda y, k: y + _weighted_sum(h, _A_MATRIX[6], k), y, ks)
  err = jax.tree.map(lambda k: _weighted_sum(h, np.asarray(_E), k), ks)
  return y_new, jax.tree.map(lambda k: k[6], ks), err


def _weighted_sum(h, weights, k):
  """h sum_i weights_i k[i] for stacked stages k [S, ...] and weights [S] (a row of the tableau)."""
  weights = jnp.asarray(weights, k.dtype)
  return h.astype(k.dtype) * jnp.tensordot(weights, k, axes=1)


def _initial_step(fn, t0, y0, f0, direction, span, rtol, atol):
  """Hairer's starting step size (module docstring), clipped to the interval [t0, t1]."""
  y0, f0 = jax.lax.stop_gradient((y0, f0))
  scale = jax.tree.map(lambda y: atol + rtol * jnp.abs(y), y0)
  d0, d1 = _rms(y0, scale), _rms(f0, scale)
  h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / jnp.where(d1 > 0, d1, 1.0))
  h0 = jnp.minimum(h0, span).astype(t0.dtype)
  y1 = _combine(y0, direction * h0, [f0], (1.0,))
  f1 = fn(t0 + direction * h0, y1)
  diff = jax.tree.map(jnp.subtract, f1, f0)
  d2 = _rms(diff, scale) / jnp.where(h0 > 0, h0, 1.0)
  d12 = jnp.maximum(d1, d2)
  h1 = jnp.where(d12 <= 1e-15, jnp.maximum(1e-6, h0 * 1e-3),
                 (0.01 / jnp.where(d12 > 0, d12, 1.0)) ** (1 / 5))
  h = jnp.minimum(100 * h0, h1)
  h = jnp.where(jnp.isfinite(h) & (h > 0), h, h0)
  return jax.lax.stop_gradient(jnp.minimum(h, span)).astype(t0.dtype)


def _solve_fixed(fn, y0, t0, t1, method, num_steps) -> ODESolution:
  h = (t1 - t0) / num_steps

  def rk4(t, y):
    k1 = fn(t, y)
    k2 = fn(t + h / 2, _combine(y, h / 2, [k1], (1.0,)))
    k3 = fn(t + h / 2, _combine(y, h / 2, [k2], (1.0,)))
    k4 = fn(t + h, _combine(y, h, [k3], (1.0,)))
    return _combine(y, h, [k1, k2, k3, k4], (1 / 6, 1 / 3, 1 / 3, 1 / 6))

  def midpoint(t, y):  # the explicit midpoint rule (Runge 1895), order 2
    k1 = fn(t, y)
    return _combine(y, h, [fn(t + h / 2, _combine(y, h / 2, [k1], (1.0,)))], (1.0,))

  def euler(t, y):
    return _combine(y, h, [fn(t, y)], (1.0,))

  step, stages = {"rk4": (rk4, 4), "midpoint": (midpoint, 2), "euler": (euler, 1)}[method]

  def body(carry, i):
    y, finite = carry
    y = step(t0 + i * h, y)  # times from the index: no accumulated rounding
    return (y, finite & _all_finite(y)), None

  start_finite = _all_finite(y0)
  (y, finite), _ = jax.lax.scan(body, (y0, start_finite),
                                jnp.arange(num_steps, dtype=t0.dtype))
  return ODESolution(y=y, t=t1, num_function_evals=jnp.asarray(stages * num_steps, jnp.int32),
                     num_steps=jnp.asarray(num_steps, jnp.int32),
                     num_rejected_steps=jnp.zeros((), jnp.int32),
                     status=jnp.where(finite, SUCCESS, NON_FINITE).astype(jnp.int32))


# --- pytree arithmetic -------------------------------------------------------------------------


def _combine(y, h, ks, coeffs):
  """y + h sum_i coeffs_i ks_i over every leaf of the pytrees y and ks[i]."""
  def leaf(y_leaf, *k_leaves):
    return y_leaf + h.astype(y_leaf.dtype) * sum(c * k for c, k in zip(coeffs, k_leaves))

  return jax.tree.map(leaf, y, *ks)


def _error_norm(err, y, y_new, rtol, atol):
  scale = jax.tree.map(lambda a, b: atol + rtol * jnp.maximum(jnp.abs(a), jnp.abs(b)), y, y_new)
  return _rms(err, scale)


def _rms(x, scale):
  """sqrt(mean over every component of every leaf of (x / scale)^2)."""
  leaves = jax.tree.leaves(jax.tree.map(lambda a, s: jnp.sum(jnp.square(a / s)), x, scale))
  size = sum(a.size for a in jax.tree.leaves(x))
  return jnp.sqrt(sum(leaves) / max(size, 1))


def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]))


# --- argument checks ---------------------------------------------------------------------------


def _check_state(y0) -> None:
  leaves = jax.tree_util.tree_flatten_with_path(y0)[0]
  if not leaves:
    raise ValueError("y0 must be a pytree with at least one array leaf, got an empty pytree")
  for path, leaf in leaves:
    dtype = jnp.result_type(leaf)
    if not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(f"y0{jax.tree_util.keystr(path)} must be a floating-point array, "
                       f"got {dtype}")


def _check_derivative(fn, t0, y0) -> None:
  """fn(t0, y0) must have y0's pytree structure, shapes and dtypes (the loop carries both)."""
  expected = jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), y0)
  got = jax.eval_shape(fn, t0, y0)
  if jax.tree.structure(got) != jax.tree.structure(expected):
    raise ValueError(f"fn(t, y) must return a pytree like y0, {jax.tree.structure(expected)}, "
                     f"got {jax.tree.structure(got)}")
  for (path, g), e in zip(jax.tree_util.tree_flatten_with_path(got)[0], jax.tree.leaves(expected)):
    if (g.shape, g.dtype) != (e.shape, e.dtype):
      raise ValueError(f"fn(t, y){jax.tree_util.keystr(path)} must have y0's shape and dtype "
                       f"{e.shape} {e.dtype}, got {g.shape} {g.dtype}")


def _check_tolerances(rtol, atol) -> None:
  for name, value in (("rtol", rtol), ("atol", atol)):
    if not isinstance(value, jax.core.Tracer) and not (math.isfinite(value) and value >= 0):
      raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
  if not any(isinstance(v, jax.core.Tracer) for v in (rtol, atol)) and rtol == 0 and atol == 0:
    raise ValueError("rtol and atol must not both be 0 (the error scale atol + rtol |y| would "
                     "vanish)")
