"""Solving dy/dt = f(t, y) for a pytree state: adaptive Dormand-Prince 5(4) (diffrax), fixed-step RK4 /
midpoint / Euler.

The probability-flow ODE likelihood integrates the pair (z [B, ...], delta_log_p [B]) through time;
`solve_ode` integrates any pytree y from t0 to t1 (t1 < t0 integrates backwards).

"dopri5" wraps diffrax (Kidger 2021, `diffrax.diffeqsolve` with `diffrax.Dopri5` and
`diffrax.PIDController`), the field's maintained JAX solver library, in place of the hand-written
Dormand-Prince this module held before: measured not slower here (benchmarks/ode_vs_diffrax.py,
benchmarks/ode_vs_diffrax_cpu.json; jax 0.10.2, diffrax 0.7.2, 2 shared cores of an AMD EPYC, float32,
rtol = atol = 1e-5, seconds per jitted warm solve, hand-written vs diffrax's Dopri5):
  problem (batch)                                   hand-written       diffrax Dopri5     ratio  max |diff|
  (a) MLP (64, 64) 2-D, exact divergence (512)      0.643 s, 824 NFE   0.471 s, 703 NFE   0.73   log p 7.0e-3
  (b) U-Net 16 ch 8x8x1, Hutchinson (64)            35.8 s, 1004 NFE   31.8 s, 859 NFE    0.89   log p 0.11
  (c) the same U-Net, sampling, state only (64)     22.3 s, 788 NFE    11.9 s, 655 NFE    0.53   z 9.9e-3

  (load average 6-10 on the 2 cores from other jobs: the per-evaluation ratios, 0.86, 1.04 and 0.64, are
  within that noise; an earlier, quieter run of (a) gave 0.91, 1.06 per
  evaluation). diffrax's Tsit5 on (a): 0.88,
  979 NFE; this module's solve_ode on (a): 0.93, 722 NFE.

diffrax's evaluations cost the same as the hand-written ones; it takes fewer steps because its
controller never shrinks the step after an accepted one. The results agree at the tolerances' level (the
differences above, against max |log p| of 12 for (a) and 103 for (b)).

The method (Dormand & Prince 1980; Hairer, Norsett & Wanner, "Solving Ordinary Differential Equations I",
2nd ed. 1993, II.4-II.5): seven stages with FSAL (six evaluations per step), an embedded 4th-order error
estimate, the error norm

  err = sqrt( (1/N) sum_i ((y_new,i - y_hat,i) / (atol + rtol max(|y_i|, |y_new,i|)))^2 )

over the N components of all leaves of the state (diffrax's default RMS norm), a step accepted when
err < 1 and the next step h * clip(0.9 err^(-1/5), 0.2, 0.9) after a rejection, h * clip(0.9 err^(-1/5),
1, 10) after an acceptance (diffrax's I controller: it never shrinks an accepted step's successor, where
scipy's RK45 and the former solver did; the steps taken therefore differ from scipy's, with the same
accuracy, tests/test_ode.py). The whole state shares one step size (as scipy's solve_ivp on the
flattened state, used by FFJORD and score_sde); `jax.vmap` the solver for per-example step sizes. The last
step lands on t1 exactly. Two additions to diffrax's controller (`_Controller`): a trial step with a
non-finite state or error estimate is rejected with the factor 0.2 (diffrax would carry the nan into the
step size), and a zero-length step (t + h == t), or a rejected step that the rounding of t keeps from
shrinking, stops the solve (diffrax would accept the first and grow the step again, and retry the second
until max_steps).

Initial step: Hairer's heuristic (II.4, "Starting step size"), with the same norm, passed to diffrax as
dt0 (diffrax 0.7.2's own heuristic is skipped inside diffeqsolve, which starts with 0.01):
  d0 = ||y0||, d1 = ||f(t0, y0)||, h0 = 0.01 d0 / d1 (1e-6 when d0 or d1 < 1e-5),
  d2 = ||f(t0 + h0, y0 + h0 f(t0, y0)) - f(t0, y0)|| / h0,
  h1 = (0.01 / max(d1, d2))^(1/5) (max(1e-6, 1e-3 h0) when max(d1, d2) <= 1e-15),
  h = min(100 h0, h1);
one extra evaluation, and h0 is clipped to |t1 - t0| so that f is never evaluated outside [t0, t1].
f(t0, y0) is handed to diffrax as the first step's FSAL stage, so num_function_evals is exactly
2 + 6 (accepted + rejected) (1 + ... with `first_step`).

"rk4" (the classical Runge-Kutta method, Kutta 1901), "midpoint" (the explicit midpoint rule, order 2)
and "euler" take `num_steps` equal steps in a `lax.scan`: 4, 2 and 1 evaluations per step. They stay
hand-written: diffrax has no classical RK4, its fixed steps run in its adaptive while loop (a scan is
reverse-mode differentiable, including in t1, and takes exactly num_steps steps), and each is a few
lines here.

Failures are reported, never hidden: `ODESolution.status` is SUCCESS, MAX_STEPS_REACHED (the
adaptive solver tried max_steps steps, accepted plus rejected, before t1), NON_FINITE (the state or
f became nan/inf: y0 or f(t0, y0) non-finite, a fixed step non-finite, or the adaptive solver stopped
while rejecting steps since a non-finite trial; it rejects a non-finite trial step and retries with a
5x smaller one, so nan/inf never enters the accepted state) or STEP_SIZE_UNDERFLOW (t + h == t, or a rejected
step that cannot shrink: the step reached the resolution of t). diffrax's RESULTS map to these: successful -> SUCCESS,
max_steps_reached -> MAX_STEPS_REACHED, dt_min_reached (raised only by `_Controller`'s underflow) ->
STEP_SIZE_UNDERFLOW, each -> NON_FINITE when the steps since the last accepted one were rejected since a
non-finite trial. Check it in a jitted program with `solution.succeeded`, or outside jit with
`raise_if_failed(solution)`.

Differentiation: the fixed-step methods are differentiable in forward and reverse mode (`lax.scan`).
"dopri5" runs diffrax with `adjoint=diffrax.ForwardMode()` (a `lax.while_loop`), which JAX
differentiates in forward mode only (`jax.jvp`, `jax.jacfwd`); the step-size selection is under
`stop_gradient`, so its derivative is that of the discrete solution for the step sizes taken. (diffrax's
default RecursiveCheckpointAdjoint would give reverse mode instead, and forward mode would then fail;
DirectAdjoint gives both at a cost that grows with max_steps.)
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks

METHODS = ("dopri5", "rk4", "midpoint", "euler")

SUCCESS = 0
MAX_STEPS_REACHED = 1
NON_FINITE = 2
STEP_SIZE_UNDERFLOW = 3


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

  Call it under `jax.jit`: eagerly, the operations around the loop dispatch one by one, and diffrax
  traces and compiles its loop again on every call (the wrapped fn is a new function each time).
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
  term = diffrax.ODETerm(lambda t, y, args: fn(t, y))
  solver = diffrax.Dopri5()
  # A non-finite start integrates over [t0, t0]: no steps, status NON_FINITE below.
  t_end = jnp.where(start_finite, t1, t0)
  solution = diffrax.diffeqsolve(
      term, solver, t0, t_end, direction * h_abs, y0,
      stepsize_controller=_Controller(rtol=rtol, atol=atol), max_steps=max_steps,
      saveat=diffrax.SaveAt(t1=True, controller_state=True), throw=False,
      solver_state=_fsal_state(solver, term, t0, y0, f0), adjoint=diffrax.ForwardMode())
  accepted = solution.stats["num_accepted_steps"].astype(jnp.int32)
  rejected = solution.stats["num_rejected_steps"].astype(jnp.int32)
  nonfinite = solution.controller_state[1]
  status = jnp.select(
      [~start_finite, solution.result == diffrax.RESULTS.successful, nonfinite,
       solution.result == diffrax.RESULTS.dt_min_reached],
      [NON_FINITE, SUCCESS, NON_FINITE, STEP_SIZE_UNDERFLOW], MAX_STEPS_REACHED).astype(jnp.int32)
  return ODESolution(y=jax.tree.map(lambda a: a[0], solution.ys), t=solution.ts[0].astype(t0.dtype),
                     num_function_evals=startup_evals + 6 * (accepted + rejected),
                     num_steps=accepted, num_rejected_steps=rejected, status=status)


def _fsal_state(solver, term, t0, y0, f0):
  """Dopri5's solver state (first_step=False, f(t0, y0)): its first step reuses our f0.

  diffrax 0.7's FSAL Runge-Kutta state is (first_step flag, the last stage f); without it the first
  step evaluates f(t0, y0) again (and again after each rejection of the first step). A diffrax whose
  state is laid out otherwise gets None (its own start; `num_function_evals` then undercounts by those).
  """
  shape = jax.eval_shape(lambda: solver.init(term, t0, t0, y0, None))
  expected = (jax.ShapeDtypeStruct((), jnp.bool_),
              jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), y0))
  if (jax.tree.structure(shape) != jax.tree.structure(expected)
      or jax.tree.leaves(shape) != jax.tree.leaves(expected)):
    return None
  return (jnp.array(False), f0)


class _Controller(diffrax.PIDController):
  """diffrax's PIDController (here the I controller, Hairer II.4) with two additions.

  1. A trial step whose state or error estimate is non-finite (nan/inf) is rejected with the
     smallest factor (0.2: the step shrinks 5x), as an infinite error; diffrax itself would carry the
     nan into the step size. The state gains a flag: every step since the last accepted one was
     rejected since a non-finite trial (status NON_FINITE when the solve stops there).
  2. A step of zero length (t + h == t), or a rejected step whose successor the rounding of t leaves
     no shorter (a few ulps of t), stops the solve with RESULTS.dt_min_reached (our
     STEP_SIZE_UNDERFLOW); diffrax would accept the first (zero error) and grow the step again, and
     retry the second at the same length until max_steps.
  """

  def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
    t_next, state = super().init(terms, t0, t1, y0, dt0, args, func, error_order)
    return t_next, (state, jnp.array(False))

  def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state):
    state, nonfinite = controller_state
    finite = _all_finite(y1_candidate) & _all_finite(y_error)
    y1_candidate = jax.tree.map(lambda a, b: jnp.where(finite, a, b), y1_candidate, y0)
    y_error = jax.tree.map(lambda e: jnp.where(finite, e, jnp.inf), y_error)
    keep, next_t0, next_t1, made_jump, state, result = super().adapt_step_size(
        t0, t1, y0, y1_candidate, args, y_error, error_order, state)
    # diffrax's times run forwards (it flips a backward solve), and it takes the next step's length from
    # the rounded times t1 - t0: a rejected step a few ulps long would be retried at that length forever.
    underflow = (t1 == t0) | (~keep & (next_t1 >= t1))
    keep = keep & ~underflow
    result = diffrax.RESULTS.where(underflow, diffrax.RESULTS.dt_min_reached, result)
    nonfinite = ~keep & (nonfinite | ~finite)
    return keep, next_t0, next_t1, made_jump, (state, nonfinite), result


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
