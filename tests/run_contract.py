"""The data contract of a loaded run, the same for every family (README, "Comparing families"):
`Run.sample(rng, num)` in the data as stored and `Run.log_likelihood(x)` in nats of the stored data.

Each family's digits test calls `check_run_contract` on the run it has trained, so the contract is
checked on every family without training a run for it alone.
"""
import jax
import numpy as np
import pytest


def check_run_contract(run, x, estimator_options=None):
  """`x`: test examples as the dataset stores them. Checks sample's form, that log_likelihood is the
  task's own estimator on stored data (same key), and that each refusal names what was expected."""
  samples = np.asarray(run.sample(jax.random.key(0), 3))
  assert samples.shape == (3, *run.spec.event_shape)
  if run.spec.num_levels is not None:
    assert samples.dtype == np.uint8 and samples.max() <= run.spec.num_levels - 1
  else:
    assert samples.dtype == np.float32
  check_latent_contract(run, x)
  if not run.estimators:
    with pytest.raises(ValueError, match="no likelihood estimator"):
      run.log_likelihood(x)
    return
  options = estimator_options or {}
  key = jax.random.key(3)
  log_p = np.asarray(run.log_likelihood(x, rng=key, **options))
  own = run.task.log_likelihoods[run.estimators[0]](run.all_params, x, key, **options)
  np.testing.assert_allclose(log_p, np.asarray(own), rtol=1e-6)  # compiled vs eager: float rounding
  assert log_p.shape == (len(x),) and np.all(np.isfinite(log_p))
  # Its own samples are data as stored: they go straight back in.
  assert np.all(np.isfinite(np.asarray(run.log_likelihood(samples, **options))))
  with pytest.raises(ValueError, match="has no 'nope'|unknown likelihood estimator"):
    run.log_likelihood(x, "nope")
  if run.spec.num_levels is not None:
    with pytest.raises(ValueError, match="integer levels"):
      run.log_likelihood(x.astype(np.float32) / (run.spec.num_levels - 1))
    with pytest.raises(ValueError, match="must lie in"):
      run.log_likelihood(np.full_like(x, run.spec.num_levels))
  with pytest.raises(ValueError, match="must have shape"):
    run.log_likelihood(x[..., :1, :] if x.ndim == 4 else x[:, :1])


# Families whose `sample` is the prior draw decoded and rounded: level k is the bin [k - 1/2, k + 1/2)
# (a flow's logit preprocessing can decode slightly beyond [-1/2, L - 1/2]).
DECODED_PRIOR_SAMPLERS = ("realnvp", "glow", "nsf", "maf", "gan")


def check_latent_contract(run, x):
  """`Run.latent_prior` / `decode` / `encode` / `denoise` where the task has them, refusals where not."""
  latent = run.task.latent
  if latent is None:
    with pytest.raises(ValueError, match="no latent space"):
      run.decode(np.zeros((1, 1), np.float32))
    with pytest.raises(ValueError, match="no latent space"):
      run.encode(x)
  else:
    key = jax.random.key(0)
    z = np.asarray(run.latent_prior(key, 3))
    decoded = np.asarray(run.decode(z))
    assert z.shape[0] == 3 and decoded.shape == (3, *run.spec.event_shape) and decoded.dtype == np.float32
    assert np.all(np.isfinite(decoded))
    if run.spec.num_levels is not None:
      if run.config.model.name in DECODED_PRIOR_SAMPLERS:  # the edge bins take the tails
        np.testing.assert_array_equal(np.clip(np.floor(decoded + 0.5), 0, run.spec.num_levels - 1),
                                      np.asarray(run.sample(key, 3)))
    if latent.encode is None:
      with pytest.raises(ValueError, match="no encoder"):
        run.encode(x)
    else:
      codes = np.asarray(run.encode(x))
      assert codes.shape == (len(x), *z.shape[1:]) and np.all(np.isfinite(codes))
      if run.config.model.name in DECODED_PRIOR_SAMPLERS:  # a bijection: the bin centres come back
        np.testing.assert_allclose(np.asarray(run.decode(codes)), x, atol=1e-2)
  if run.task.denoise is None:
    with pytest.raises(ValueError, match="cannot denoise"):
      run.denoise(x.astype(np.float32), 1.0)
  else:
    denoised = np.asarray(run.denoise(x.astype(np.float32) + 0.5, 1.0))
    assert denoised.shape == x.shape and np.all(np.isfinite(denoised))
