"""ODE solvers against closed forms (expm, exp(sin t)), scipy's RK45 and finite differences.

Accuracy tests run in float64 (`jax.enable_x64`), so that the solver's error, not float32 rounding,
is what they measure.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

from gen_jax.ode import solver as ode

RNG = np.random.default_rng(0)
A = 0.7 * RNG.standard_normal((4, 4))
Y0 = RNG.standard_normal(4)


def linear(t, y):
  return jnp.asarray(A, y.dtype) @ y


def van_der_pol(t, y, mu=1.0):
  return jnp.stack([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])


def scipy_van_der_pol(t, y, mu=1.0):
  return [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]


def test_linear_ode_error_falls_with_the_tolerance():
  # Measured (diffrax 0.7.2's Dopri5 and PIDController): errors 5.3e-4, 6.0e-6, 7.1e-8, 6.7e-10 at tol
  # 1e-3 ... 1e-9 in 14, 26, 50, 104 evaluations; scipy's RK45 (same tableau and starting step, a
  # controller that also shrinks the step after an accepted one) 14, 26, 50, 110.
  exact = scipy.linalg.expm(A) @ Y0
  errors = []
  with jax.enable_x64(True):
    # Traced tolerances: one compilation for the four solves.
    solve = jax.jit(lambda tol: ode.solve_ode(linear, jnp.asarray(Y0), 0.0, 1.0, rtol=tol,
                                              atol=tol))
    for tol in (1e-3, 1e-5, 1e-7, 1e-9):
      sol = solve(tol)
      ode.raise_if_failed(sol)
      error = np.max(np.abs(np.asarray(sol.y) - exact))
      assert error < 2 * tol, (tol, error)
      reference = scipy.integrate.solve_ivp(lambda t, y: A @ y, (0, 1), Y0, method="RK45", rtol=tol,
                                            atol=tol)
      assert int(sol.num_function_evals) <= reference.nfev, (sol, reference.nfev)
      assert int(sol.num_function_evals) == 2 + 6 * int(sol.num_steps + sol.num_rejected_steps)
      errors.append(error)
  assert all(b < a / 10 for a, b in zip(errors, errors[1:])), errors


def test_nonlinear_ode_matches_scipy():
  # Van der Pol (mu = 1) over [0, 5]. Measured (diffrax 0.7.2): max error 2.0e-9 at rtol = atol = 1e-9
  # (794 evaluations, 115 accepted and 17 rejected steps; scipy's RK45 1.4e-9 in 782); 7.2e-5 at 1e-5
  # in 164 evaluations (scipy 3.9e-5 in 188). diffrax's controller never shrinks the step after an
  # accepted one (scipy's does), so the two take different steps: compare errors, not steps.
  reference = scipy.integrate.solve_ivp(scipy_van_der_pol, (0, 5), [2.0, 0.0], method="RK45",
                                        rtol=1e-10, atol=1e-10).y[:, -1]
  with jax.enable_x64(True):
    solve = jax.jit(lambda tol: ode.solve_ode(van_der_pol, jnp.array([2.0, 0.0]), 0.0, 5.0,
                                              rtol=tol, atol=tol))
    sol = ode.raise_if_failed(solve(1e-9))
    assert float(sol.t) == 5.0
    np.testing.assert_allclose(np.asarray(sol.y), reference, atol=1e-8)
    loose = solve(1e-5)
  scipy_loose = scipy.integrate.solve_ivp(scipy_van_der_pol, (0, 5), [2.0, 0.0], method="RK45",
                                          rtol=1e-5, atol=1e-5)
  assert int(loose.num_function_evals) <= scipy_loose.nfev
  np.testing.assert_allclose(np.asarray(loose.y), reference, atol=2e-4)
  np.testing.assert_allclose(np.asarray(loose.y), scipy_loose.y[:, -1], atol=1e-4)  # measured 3.3e-5


def test_pytree_state_matches_the_flattened_solve():
  """(z [B, D], delta_logp [B]) as for the probability-flow ODE: dz/dt = A z, d delta/dt = -tr A."""
  z0 = RNG.standard_normal((3, 4))
  trace = np.trace(A)

  def fn(t, state):
    z, _ = state
    return z @ jnp.asarray(A.T), jnp.full(z.shape[:1], -trace, z.dtype)

  def flat_fn(t, y):
    z, delta = fn(t, (y[:12].reshape(3, 4), y[12:]))
    return jnp.concatenate([z.reshape(-1), delta])

  with jax.enable_x64(True):
    solve = jax.jit(lambda f, y0: ode.solve_ode(f, y0, 0.0, 1.0, rtol=1e-8, atol=1e-8),
                    static_argnums=0)
    sol = solve(fn, (jnp.asarray(z0), jnp.zeros(3)))
    flat = solve(flat_fn, jnp.concatenate([jnp.asarray(z0).reshape(-1), jnp.zeros(3)]))
  z, delta = sol.y
  assert bool(sol.succeeded) and z.shape == (3, 4) and delta.shape == (3,)
  np.testing.assert_allclose(np.asarray(z), z0 @ scipy.linalg.expm(A).T, atol=1e-7)
  np.testing.assert_allclose(np.asarray(delta), -trace, rtol=1e-12)
  # One RMS norm over all leaves: the same steps as the flattened state.
  assert int(sol.num_function_evals) == int(flat.num_function_evals)
  np.testing.assert_allclose(np.asarray(z).reshape(-1), np.asarray(flat.y[:12]), rtol=1e-12)


def test_backward_integration_recovers_y0():
  with jax.enable_x64(True):
    solve = jax.jit(lambda y0, t0, t1: ode.solve_ode(van_der_pol, y0, t0, t1, rtol=1e-10,
                                                     atol=1e-10))
    forward = solve(jnp.array([2.0, 0.0]), 0.0, 3.0)
    backward = solve(forward.y, 3.0, 0.0)  # the same compiled solver, run backwards
  assert bool(backward.succeeded) and float(backward.t) == 0.0
  np.testing.assert_allclose(np.asarray(backward.y), [2.0, 0.0], atol=1e-7)  # measured 8e-9


def test_float32_lands_on_t1_exactly():
  sol = jax.jit(lambda y0: ode.solve_ode(linear, y0, 0.1, 0.7))(jnp.asarray(Y0, jnp.float32))
  assert sol.y.dtype == jnp.float32 and sol.t.dtype == jnp.float32
  assert float(sol.t) == float(np.float32(0.7)) and bool(sol.succeeded)
  np.testing.assert_allclose(np.asarray(sol.y), scipy.linalg.expm(0.6 * A) @ Y0, atol=1e-4)


@pytest.mark.parametrize("method,order", [("rk4", 4), ("midpoint", 2), ("euler", 1)])
def test_fixed_step_convergence_order(method, order):
  """dy/dt = y cos t, y(0) = 1: y(2) = exp(sin 2). Doubling the steps divides the error by 2^p."""
  exact = np.exp(np.sin(2.0))
  with jax.enable_x64(True):
    solve = jax.jit(lambda n: ode.solve_ode(lambda t, y: y * jnp.cos(t), jnp.ones(()), 0.0, 2.0,
                                            method=method, num_steps=n).y, static_argnums=0)
    # The midpoint rule reaches its asymptotic ratio later (3.2, 3.6, 3.8 from 10 steps): start at 80.
    steps = (80, 160, 320, 640) if method == "midpoint" else (10, 20, 40, 80)
    errors = [abs(float(solve(n)) - exact) for n in steps]
  ratios = np.array(errors[:-1]) / np.array(errors[1:])
  # Measured: rk4 errors 1.7e-5, 1.1e-6, 6.5e-8, 4.0e-9 (ratios 16.1-16.3); Euler ratios 1.98-2.00;
  # midpoint 4.6e-5, 1.2e-5, 3.0e-6, 7.6e-7 (ratios 3.90-3.97).
  np.testing.assert_allclose(ratios, 2.0 ** order, rtol=0.1)


def test_jit_and_vmap_match_single_solves():
  y0s = jnp.asarray(RNG.standard_normal((3, 4)), jnp.float32)
  t1s = jnp.array([0.5, 1.0, 2.0], jnp.float32)
  solve = lambda y0, t1: ode.solve_ode(linear, y0, 0.0, t1, rtol=1e-4, atol=1e-6)
  batched = jax.jit(jax.vmap(solve))(y0s, t1s)
  assert bool(jnp.all(batched.succeeded)) and batched.y.shape == (3, 4)
  np.testing.assert_array_equal(np.asarray(batched.t), np.asarray(t1s))
  for i in range(3):
    single = jax.jit(solve)(y0s[i], t1s[i])
    np.testing.assert_allclose(np.asarray(batched.y[i]), np.asarray(single.y), rtol=1e-6)
    assert int(batched.num_function_evals[i]) == int(single.num_function_evals)
  # Each example took its own steps: the longest interval needed the most.
  assert int(batched.num_steps[2]) > int(batched.num_steps[0])


def test_max_steps_exhaustion_is_reported():
  solve = jax.jit(lambda t1: ode.solve_ode(linear, jnp.asarray(Y0, jnp.float32), 0.0, t1,
                                           max_steps=3))
  sol = solve(1.0)
  assert int(sol.status) == ode.MAX_STEPS_REACHED and not bool(sol.succeeded)
  assert 0.0 < float(sol.t) < 1.0 and int(sol.num_steps + sol.num_rejected_steps) == 3
  with pytest.raises(ValueError, match=r"max_steps=3 .* before t1"):
    ode.raise_if_failed(sol)
  batched = jax.jit(jax.vmap(solve))(jnp.array([0.01, 0.02, 5.0]))
  np.testing.assert_array_equal(np.asarray(batched.succeeded), [True, True, False])
  with pytest.raises(ValueError, match=r"1 of 3 ODE solves failed; the first \(flat index 2\)"):
    ode.raise_if_failed(batched)


def test_non_finite_state_is_reported():
  log_field = lambda t, y: jnp.log(1.0 - t) * jnp.ones_like(y)  # nan beyond t = 1

  @jax.jit
  def solves(y0):
    return (ode.solve_ode(lambda t, y: y, y0, 0.0, 1.0),  # y0 non-finite
            # Steps into t > 1 are rejected until the step size underflows at t = 1.
            ode.solve_ode(log_field, jnp.ones(2), 0.0, 2.0),
            ode.solve_ode(log_field, jnp.ones(2), 0.0, 2.0, method="rk4", num_steps=4))

  bad_start, adaptive, fixed = solves(jnp.array([1.0, jnp.nan]))
  assert int(bad_start.status) == ode.NON_FINITE and int(bad_start.num_steps) == 0
  assert int(adaptive.status) == ode.NON_FINITE and bool(jnp.all(jnp.isfinite(adaptive.y)))
  assert abs(float(adaptive.t) - 1.0) < 1e-5
  assert int(fixed.status) == ode.NON_FINITE
  for sol in (bad_start, adaptive, fixed):
    with pytest.raises(ValueError, match="non-finite"):
      ode.raise_if_failed(sol)
  with pytest.raises(ValueError, match="needs a concrete ODESolution"):
    jax.jit(ode.raise_if_failed)(adaptive)


def test_step_size_underflow_is_reported():
  """dy/dt = (1 - t)^-3 blows up at t = 1: the steps shrink to the resolution of t there, both ways.

  diffrax alone would retry a rejected step a few ulps long until max_steps (measured: 99,795 rejected
  steps); solve_ode stops (measured in float32 forwards: 123 accepted and 98 rejected steps)."""
  blow_up = lambda t, y: jnp.ones_like(y) / (1 - t) ** 3
  solve = jax.jit(lambda t0, t1: ode.solve_ode(blow_up, jnp.ones(2), t0, t1, max_steps=100_000))
  for t0, t1 in ((0.0, 2.0), (2.0, 0.0)):
    sol = solve(t0, t1)
    assert int(sol.status) == ode.STEP_SIZE_UNDERFLOW, sol
    assert abs(float(sol.t) - 1.0) < 1e-5 and int(sol.num_steps + sol.num_rejected_steps) < 1000
    assert bool(jnp.all(jnp.isfinite(sol.y)))
    with pytest.raises(ValueError, match="step size underflowed"):
      ode.raise_if_failed(sol)


@pytest.mark.parametrize("method", ["rk4", "midpoint", "euler"])
def test_fixed_step_gradients_match_finite_differences(method):
  """Reverse mode through the scan, with respect to a parameter of f, y0 and t1."""
  def loss(theta, y0, t1):
    fn = lambda t, y: -theta * y + jnp.sin(3 * t) * y[::-1]
    return jnp.sum(ode.solve_ode(fn, y0, 0.0, t1, method=method, num_steps=20).y ** 2)

  with jax.enable_x64(True):
    args = (jnp.asarray(0.7), jnp.array([1.0, -0.5]), jnp.asarray(1.3))
    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(*args)
    loss = jax.jit(loss)
    eps = 1e-6
    for i in range(3):
      flat = np.asarray(args[i]).reshape(-1)
      for j in range(flat.size):
        up, down = flat.copy(), flat.copy()
        up[j] += eps
        down[j] -= eps
        shift = lambda v: [jnp.asarray(v.reshape(np.shape(args[i]))) if k == i else args[k]
                           for k in range(3)]
        fd = (float(loss(*shift(up))) - float(loss(*shift(down)))) / (2 * eps)
        np.testing.assert_allclose(np.asarray(grads[i]).reshape(-1)[j], fd, rtol=1e-6, atol=1e-9)


def test_dopri5_forward_mode_derivative():
  """d/dtheta of y(1) for dy/dt = -theta y is -y0 exp(-theta), by jax.jvp through the while loop."""
  with jax.enable_x64(True):
    y1 = lambda theta: ode.solve_ode(lambda t, y: -theta * y, jnp.ones(()), 0.0, 1.0, rtol=1e-10,
                                     atol=1e-10).y
    value, tangent = jax.jit(lambda x, dx: jax.jvp(y1, (x,), (dx,)))(jnp.asarray(0.8),
                                                                     jnp.asarray(1.0))
  np.testing.assert_allclose(float(value), np.exp(-0.8), rtol=1e-9)
  np.testing.assert_allclose(float(tangent), -np.exp(-0.8), rtol=1e-8)


def test_bad_arguments_name_what_was_expected():
  y0 = jnp.ones(4)
  with pytest.raises(ValueError, match="method must be one of"):
    ode.solve_ode(linear, y0, 0.0, 1.0, method="rk45")
  with pytest.raises(ValueError, match="pass num_steps"):
    ode.solve_ode(linear, y0, 0.0, 1.0, method="rk4")
  with pytest.raises(ValueError, match="applies to the fixed-step methods"):
    ode.solve_ode(linear, y0, 0.0, 1.0, num_steps=10)
  with pytest.raises(ValueError, match="must be a floating-point array"):
    ode.solve_ode(linear, jnp.ones(4, jnp.int32), 0.0, 1.0)
  with pytest.raises(ValueError,
                     match=r"must have y0's shape and dtype \(4,\) float32, got \(3,\)"):
    ode.solve_ode(lambda t, y: y[:3], y0, 0.0, 1.0)
  with pytest.raises(ValueError, match="rtol and atol must not both be 0"):
    ode.solve_ode(linear, y0, 0.0, 1.0, rtol=0.0, atol=0.0)
  with pytest.raises(ValueError, match="max_steps must be a positive integer"):
    ode.solve_ode(linear, y0, 0.0, 1.0, max_steps=0)
