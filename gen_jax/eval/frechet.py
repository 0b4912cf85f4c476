"""Frechet distance between Gaussians: FID when the features are Inception pool3 activations.

For N(mu1, S1) and N(mu2, S2) the squared 2-Wasserstein (Frechet) distance is (Dowson & Landau 1982,
"The Frechet distance between multivariate normal distributions")

  d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^{1/2} S2 S1^{1/2})^{1/2}),

and FID (Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local Nash
equilibrium") is d^2 between Gaussians fitted to Inception features of real and generated images.

pytorch-fid evaluates the last term as tr(sqrtm(S1 S2)) with `scipy.linalg.sqrtm` of a non-symmetric
product (the two traces are equal: S1 S2 is similar to S1^{1/2} S2 S1^{1/2}), drops a small imaginary
part, and adds 1e-6 to the diagonals only when sqrtm returns non-finite values. Here both square
roots are of symmetric positive semi-definite matrices, taken with `np.linalg.eigh`:
S1^{1/2} = V diag(sqrt(w)) V^T, then tr(M^{1/2}) = sum_i sqrt(lambda_i(M)) for M = S1^{1/2} S2 S1^{1/2}.
Eigenvalues of a PSD matrix come out within round-off of their value (about D * 2.2e-16 of the
largest, in float64), and so slightly negative, or positive where they should be 0, on the null
space of a singular covariance (fewer samples than dimensions). Those within D * 2.2e-16 of the
largest are set to 0: their square roots (~1e-8 of the largest, each) would otherwise add up to a
visible error, while a true eigenvalue that small contributes no more than that error. A covariance
with an eigenvalue below -1e-5 of its largest is not PSD and is rejected rather than clipped.
Nothing is added to the diagonals, so a singular covariance gives the distance of the singular
Gaussians themselves (pytorch-fid's sqrtm, which rarely falls back to adding 1e-6, is off by ~1e-8
relative there, and gives about -3e-5 rather than 0 for two equal rank-19 covariances in 256-D).

When S1 is positive definite its Cholesky factor L replaces S1^{1/2} (L^T S2 L has the same
eigenvalues), leaving one eigenvalue-only symmetric problem: at D = 2048 that is several times
faster than sqrtm (benchmarks/eval_vs_torch.py). The LAPACK calls go through scipy.linalg (divide and
conquer, 'evd'): NumPy's own LAPACK build was 3-10x slower on these at 2048-D here.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.linalg.blas

from gen_jax import checks
from gen_jax.eval.statistics import FeatureStatistics

# Largest relative asymmetry, and most negative eigenvalue relative to the largest, taken as round-off.
_ROUND_OFF_TOLERANCE = 1e-5


def _as_covariance(sigma, dim: int, name: str) -> np.ndarray:
  sigma = np.asarray(sigma, np.float64)
  if sigma.shape != (dim, dim):
    raise ValueError(f"{name} must have shape [D, D] = {(dim, dim)} (D from mu1), got {sigma.shape}")
  scale = np.abs(sigma).max(initial=0.0)
  if np.abs(sigma - sigma.T).max(initial=0.0) > _ROUND_OFF_TOLERANCE * scale:
    raise ValueError(f"{name} must be a symmetric covariance matrix")
  return sigma


def _psd_eigh(matrix, name: str):
  """Eigenvalues (those within round-off of 0 set to 0) and eigenvectors of a symmetric PSD matrix."""
  eigenvalues, eigenvectors = scipy.linalg.eigh(matrix, driver="evd")
  largest = np.abs(eigenvalues).max(initial=0.0)
  if eigenvalues.size and eigenvalues.min() < -_ROUND_OFF_TOLERANCE * largest:
    raise ValueError(f"{name} must be positive semi-definite (a covariance), got eigenvalue "
                     f"{eigenvalues.min():.3g} (largest {largest:.3g})")
  round_off = eigenvalues.size * np.finfo(np.float64).eps * largest
  return np.where(eigenvalues > round_off, eigenvalues, 0.0), eigenvectors


def _psd_eigvalsh(matrix, name: str):
  """`_psd_eigh`'s eigenvalues alone (LAPACK without eigenvectors: several times cheaper)."""
  eigenvalues = scipy.linalg.eigh((matrix + matrix.T) / 2, eigvals_only=True, driver="evd")
  largest = np.abs(eigenvalues).max(initial=0.0)
  if eigenvalues.size and eigenvalues.min() < -_ROUND_OFF_TOLERANCE * largest:
    raise ValueError(f"{name} must be positive semi-definite (a covariance), got eigenvalue "
                     f"{eigenvalues.min():.3g} (largest {largest:.3g})")
  round_off = eigenvalues.size * np.finfo(np.float64).eps * largest
  return np.where(eigenvalues > round_off, eigenvalues, 0.0)


def trace_sqrt_product(sigma1, sigma2) -> float:
  """tr((S1^{1/2} S2 S1^{1/2})^{1/2}) for symmetric PSD S1, S2: the sum of sqrt(eigenvalues of S1 S2).

  S1 S2 is similar to the symmetric PSD matrix R^T S2 R for any R with R R^T = S1, so its eigenvalues
  come from one symmetric eigenvalue problem. R is the Cholesky factor when S1 is positive definite
  (cheap), and V diag(sqrt(w)) from S1's eigendecomposition when Cholesky fails (S1 singular).
  """
  try:
    root1 = scipy.linalg.cholesky(sigma1, lower=True)
  except np.linalg.LinAlgError:
    eigenvalues1, eigenvectors1 = _psd_eigh(sigma1, "sigma1")
    root1 = eigenvectors1 * np.sqrt(eigenvalues1)
  # scipy's BLAS, as for the LAPACK calls: mixing NumPy's and scipy's OpenBLAS thread pools in one
  # computation made each wait for the other's spinning threads (15 s instead of 1 s at 2048-D).
  gemm = scipy.linalg.blas.get_blas_funcs("gemm", (root1, sigma2))
  product = gemm(1.0, root1, gemm(1.0, sigma2, root1), trans_a=True)
  eigenvalues = _psd_eigvalsh(product, "S1^{1/2} S2 S1^{1/2}")
  return float(np.sqrt(eigenvalues).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

  Args:
    mu1, mu2: [D] means.
    sigma1, sigma2: [D, D] covariances (symmetric positive semi-definite; singular is fine).

  Returns:
    ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1^{1/2} sigma2 sigma1^{1/2})^{1/2}).
  """
  mu1 = np.asarray(mu1, np.float64)
  mu2 = np.asarray(mu2, np.float64)
  checks.check_rank(mu1, 1, "mu1", "[D]")
  dim = mu1.shape[0]
  if mu2.shape != (dim,):
    raise ValueError(f"mu2 must have shape [D] = {(dim,)} (D from mu1), got {mu2.shape}")
  sigma1 = _as_covariance(sigma1, dim, "sigma1")
  sigma2 = _as_covariance(sigma2, dim, "sigma2")
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance_from_statistics(a: FeatureStatistics, b: FeatureStatistics) -> float:
  """`frechet_distance` of two `FeatureStatistics` (FID when both hold Inception pool3 features)."""
  return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
