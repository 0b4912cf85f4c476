"""Every family on every property, side by side, on one dataset and one training budget.

  python -m experiments.compare --data=digits --workdir=runs/compare_digits
  python -m experiments.compare --data=digits --workdir=DIR --runs flow=runs/realnvp_digits,gan=runs/gan_digits
  python -m experiments.compare --data=mnist_split --workdir=DIR --examples=96000

Stages (one progress bar over them):
  train     one run per family (FAMILY_CONFIGS: a flow, a VAE, diffusion, a GAN, an autoregressive and
            an energy-based model, each its config's `:cpu` variant) under one budget: every run sees
            the same number of training examples (`--examples`, batch `--batch_size`); plus the
            domain classifier whose features the sample measures use. `--runs family=DIR,...` loads
            finished runs instead (their own budgets are then reported as they were).
  measure   each run through the one data contract (`Run.sample`, `Run.log_likelihood`), on the test
            split (MEASURES below).
  write     DIR/report.md (one table per property, families as rows, units in the headers),
            DIR/report.json (every number), samples_<family>.png and the latent and FID-vs-NFE
            figures (below).

MEASURES (in `gen_jax.eval` unless named; features are the domain classifier's penultimate layer):
  training      examples seen, wall time of the training steps (from metrics.jsonl's steps/s: the
                first log window includes the step's compilation; evaluation, sampling and
                checkpoints excluded), FLOPs of one training step (XLA's cost analysis of the task's
                update) times the steps.
  sampling      samples/s at batch `--num_samples` (compiled, warm), network evaluations per sample
                (`network_evaluations`).
  quality       FID and KID of `--num_samples` samples against the test split, mean and standard
                deviation over `--seeds`; FID-infinity (Chong & Forsyth 2020) over all seeds' samples.
  coverage      precision, recall, density and coverage (k = 5; Kynkaanniemi et al. 2019, Naeem et al.
                2020).
  memorization  the data-copying statistic C_T (Meehan et al. 2020; << 0 copies, ~0 fresh), the
                authenticity (Alaa et al. 2022), and the train - test likelihood gap (nats) on as many
                train as test examples.
  likelihood    test NLL (nats, with its standard error over examples) and bits/dim of the discrete
                data by the run's first estimator, named with its options (`likelihood_options`: a
                diffusion model's ELBO over 50 geometric strata of
                transitions), and its seconds per 1000
                examples (compiled, warm); "none" with the reason where a family has none.
  outliers      AUROC of the family's outlier score against the test split for uniform noise, inverted
                images, images rotated by 90 degrees and (digits) MNIST reduced to 8x8; and of the
                typicality test (Nalisnick et al. 2019) where a likelihood exists.
  latent space  where the family has one (`Task.latent`: a flow's z, a VAE's z, a GAN's z, a diffusion
                model's DDIM latent z_1): the perceptual path length (Karras et al. 2019: linear paths
                between prior draws, eps 1e-4, squared distances of the classifier's features of the
                decoded outputs, `PATH_PAIRS` pairs, 1st-99th percentile mean) and its ratio to the mean
                squared endpoint distance (>= 1; 1 for outputs moving straight at constant speed; unlike
                the PPL comparable across latent sizes); where an encoder exists: the encode -> decode
                RMSE on the test split (levels; DDIM inversion for diffusion), the active dimensions
                (variance of the test codes > 0.01, Burda et al. 2016), a linear probe's test accuracy
                for the label (trained on the train codes) and k-means NMI / ARI of the test codes
                against the labels; figures interpolations_<family>.png (8 test pairs, or prior pairs
                without an encoder) and traversals_<family>.png (the 8 dimensions the codes vary most
                along, +-2 standard deviations).
  denoising     RMSE (levels) of `Run.denoise` on test images plus Gaussian noise of standard
                deviation (L - 1) / 8 (a diffusion model's denoiser at that noise level, a VAE's decoded
                posterior mean), beside the noisy input's RMSE.
  compression   where a coder exists (`gen_jax.compress`: a PixelCNN's conditionals, a VAE's bits-back):
                the test split encoded and decoded, the achieved bits/dim of the file and net of its
                header and initial bits, next to the run's test bits/dim, and whether it round-trips.
  FID vs NFE    for a diffusion model: FID (one seed) of DDIM (eta 0) and ancestral (eta 1) sampling at
                10, 25, 50, 100, 250 steps, a table and fid_against_nfe_<family>.png.
Figures: roc_curves.png (every family's ROC curve on each shifted set).
Not yet in the report (see the issues): a hierarchical VAE's latent (a list of layers under a learned
prior), denoising by flows, GANs and EBMs; the modes captured on the 2-D mixtures (digits and MNIST
have no modes to count: `gen_jax.models.gan.mode_coverage` measures them on toy2d); compression by
flows (local bits-back coding), diffusion and GANs.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

import gen_jax
from gen_jax import compress, latent_space, visualize
from gen_jax.data import bits_per_dim, find_mnist_dir, load_dataset
from gen_jax.data.mnist_split import read_mnist
from gen_jax.drivers import loop, scoring
from gen_jax.drivers.run import apply_overrides
from gen_jax.eval import (fid_infinity, frechet, kernel_distance, latent_structure, manifold_metrics, memorization,
                          outlier, path_length, statistics)
from gen_jax.train.metrics_log import read_metrics

FAMILY_CONFIGS = {
    "digits": {"flow": "realnvp_digits", "vae": "vae_digits", "diffusion": "ddpm_digits", "gan": "gan_digits",
               "autoregressive": "pixelcnn_digits", "energy": "ebm_digits"},
    "mnist_split": {"flow": "realnvp_mnist", "vae": "vae_mnist", "diffusion": "ddpm_mnist", "gan": "gan_mnist",
                    "autoregressive": "pixelcnn_mnist", "energy": "ebm_mnist"},
}
CLASSIFIER_CONFIGS = {"digits": "classifier_digits", "mnist_split": "classifier_mnist"}
DEFAULT_EXAMPLES = 128 * 1500  # examples seen by every family's run


def budgeted_config(module: str, examples: int, batch_size: int, overrides: dict | None = None,
                    variant: str = "cpu"):
  """`module`'s `:cpu` config (or `:variant`, e.g. "cpu,ot") trained on `examples` examples in batches of
  `batch_size` (the steps a multiple of its steps per call), evaluated, sampled and saved once, at the end."""
  config = importlib.import_module(f"experiments.configs.{module}").get_config(variant)
  apply_overrides(config, overrides or {}, f"{module}'s config")
  t = config.train
  steps_per_call = t.steps_per_call
  num_steps = max(steps_per_call, examples // batch_size // steps_per_call * steps_per_call)
  t.batch_size, t.num_steps = batch_size, num_steps
  t.log_every = max(steps_per_call, min(t.log_every, num_steps) // steps_per_call * steps_per_call)
  t.eval_every = t.save_every = t.sample_every = num_steps
  return config


def network_evaluations(run) -> int:
  """Network evaluations per sample, by how each family samples: one decoder / generator / inverse
  pass (flow, VAE, GAN); one denoiser call per sampler step (diffusion); one network pass per
  dimension (an autoregressive model); one energy gradient per Langevin step (an EBM)."""
  if "diffusion" in run.config:
    return int(run.config.diffusion.sample_steps or run.model.num_transitions)
  if run.config.model.name == "pixelcnn":
    return math.prod(run.spec.event_shape)
  if "ebm" in run.config:
    return int(run.config.ebm.sample_steps)
  return 1


def training_cost(run) -> dict:
  """Examples seen, the logged training time (its first window with the compilation) and FLOPs (one step's XLA cost
  analysis times the steps) of a finished run."""
  metrics = [m for m in read_metrics(os.path.join(run.workdir, "metrics.jsonl")) if "train/steps_per_sec" in m]
  seconds, previous = 0.0, 0
  for m in metrics:
    seconds += (m["step"] - previous) / m["train/steps_per_sec"]
    previous = m["step"]
  task, batch_size = run.task, run.config.train.batch_size
  dtype = jnp.uint8 if run.spec.num_levels is not None else jnp.float32
  batch = jax.ShapeDtypeStruct((batch_size, *run.spec.event_shape), dtype)
  rng = jax.random.key(0)
  params, state = jax.eval_shape(task.init, rng, batch)
  opt_state = jax.eval_shape(task.optimizer.init, params)
  # XLA's analysis of the lowered (unoptimised) step: no compilation, the same FLOP count for dense work
  cost = jax.jit(task.update).lower(params, state, opt_state, batch, rng, jnp.int32(0)).cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return {"examples": run.step * batch_size, "steps": run.step, "train_seconds": seconds,
          "train_flops": float(cost.get("flops", float("nan"))) * run.step}


EVAL_BATCH = 500
ELBO_TRANSITIONS = 50


def likelihood_options(run) -> dict:
  """The first estimator's options: a diffusion model's ELBO over ELBO_TRANSITIONS geometric strata of
  transitions per example (unbiased, a standard deviation of 7.5 nats per digit; all 999 of DDPM's cost
  300 s per 1000 digits on 2 cores, 20 times more)."""
  if run.config.model.name != "diffusion":
    return {}
  transitions = run.model.num_transitions
  return {"num_step_samples": min(ELBO_TRANSITIONS, transitions) if transitions else ELBO_TRANSITIONS}


def estimator_name(run) -> str:
  return run.estimators[0] + "".join(f" ({k}={v})" for k, v in likelihood_options(run).items())


def negative_log_likelihood(run, x) -> np.ndarray:
  """-Run.log_likelihood per example (nats), EVAL_BATCH examples per call."""
  options = likelihood_options(run)
  return np.concatenate([-np.asarray(run.log_likelihood(x[i:i + EVAL_BATCH], **options), np.float64)
                         for i in range(0, len(x), EVAL_BATCH)])


def outlier_scores(run, x) -> np.ndarray | None:
  """Higher = more outlying: -log P(x) (or its bound) where the run has an estimator, else the
  energy (an EBM) or minus the discriminator's logit (a GAN), from the task's own evaluation."""
  if run.estimators:
    return negative_log_likelihood(run, x)
  evaluate = jax.jit(run.task.evaluate)
  outs = [evaluate(run.all_params, jnp.asarray(x[i:i + EVAL_BATCH]), jax.random.key(0))
          for i in range(0, len(x), EVAL_BATCH)]
  for key, sign in (("energy", 1.0), ("d_real_logit", -1.0)):
    if key in outs[0]:
      return sign * np.concatenate([np.asarray(o[key], np.float64).reshape(-1) for o in outs])
  return None


def shifted_sets(data: str, test: np.ndarray, num_levels: int) -> dict[str, np.ndarray]:
  """The out-of-distribution sets, as many images as `test`."""
  sets = outlier.noise_and_inverted_sets(test, num_levels)
  sets["rotated 90"] = np.ascontiguousarray(np.rot90(test, 1, axes=(1, 2)))
  if data == "digits":
    images, _ = read_mnist(find_mnist_dir(), "t10k")
    sets["MNIST 8x8"] = outlier.mnist_to_digits(images[:len(test)])
  return sets


PATH_PAIRS = 512  # latent pairs for the path lengths (StyleGAN's eps = 1e-4, linear paths)
DENOISE_STD = 1 / 8  # the noise of the denoising measure, a fraction of the level range L - 1
FID_NFE_STEPS = (10, 25, 50, 100, 250)  # a diffusion model's sampler steps on the FID-vs-NFE curve


def _flat(codes) -> np.ndarray:
  codes = np.asarray(codes, np.float64)
  return codes.reshape(len(codes), -1)


def _in_batches(fn, x, batch: int = EVAL_BATCH) -> np.ndarray:
  return np.concatenate([np.asarray(fn(x[i:i + batch])) for i in range(0, len(x), batch)])


def latent_measures(run, classifier, train, train_labels, test, test_labels) -> tuple[dict, dict]:
  """The latent space's measures (module doc) and its figures {name: uint8 grid}; ({}, {}) without one."""
  latent = run.task.latent
  if latent is None:
    return {}, {}
  out, figures = {}, {}
  features = classifier.features_of_values
  lengths = path_length.path_lengths(run.decode, run.latent_prior, jax.random.key(0), PATH_PAIRS, features=features)
  chords = path_length.endpoint_distances(run.decode, run.latent_prior, jax.random.key(0), PATH_PAIRS,
                                          features=features)
  out["path_length"] = path_length.percentile_filtered_mean(lengths)
  out["path_length_ratio"] = float(lengths.mean() / chords.mean())
  z_shape = np.asarray(run.latent_prior(jax.random.key(0), 1)).shape[1:]
  levels = run.spec.num_levels
  # The figures show the level range; a flow's logit preprocessing can decode slightly beyond it.
  shown = lambda flat: jnp.clip(run.decode(jnp.reshape(flat, (-1, *z_shape))), 0, levels - 1)
  if latent.encode is not None:
    train_codes, test_codes = _in_batches(run.encode, train), _in_batches(run.encode, test)
    reconstruction = _in_batches(run.decode, test_codes.astype(np.float32))
    out["round_trip_rmse"] = float(np.sqrt(np.mean((reconstruction - test) ** 2)))
    train_flat, test_flat = _flat(train_codes), _flat(test_codes)
    out["latent_dims"] = test_flat.shape[1]
    out["active_dims"] = int(latent_space.active_units(jnp.asarray(test_flat)))
    out["probe_accuracy"] = latent_structure.linear_probe_accuracy(train_flat, train_labels, test_flat, test_labels)
    out.update({f"kmeans_{k}": v for k, v in latent_structure.clustering_agreement(test_flat, test_labels).items()})
    start, end, centre = test_flat[:8], test_flat[8:16], test_flat[0]
    spread = test_flat.std(axis=0)
  else:  # no encoder: between prior draws, around the prior's mean
    start = _flat(run.latent_prior(jax.random.key(1), 8))
    end = _flat(run.latent_prior(jax.random.key(2), 8))
    centre, spread = np.zeros(start.shape[1]), np.ones(start.shape[1])
  if levels is not None:
    figures["interpolations"] = latent_space.interpolation_grid(shown, start, end, 8, levels, spherical=False)
    dims = np.argsort(-spread)[:8]  # the 8 dimensions the codes vary most along, swept over +-2 s.d.
    rows = [latent_space.latent_traversal(centre, [d], centre[d] + spread[d] * np.linspace(-2, 2, 9)) for d in dims]
    figures["traversals"] = latent_space.images_to_grid(np.asarray(shown(jnp.concatenate(rows))), levels, 9)
  return out, figures


def denoising_error(run, test) -> dict:
  """RMSE (levels) of `Run.denoise` on test + DENOISE_STD (L - 1) N(0, I), beside the noisy input's."""
  if run.task.denoise is None or run.spec.num_levels is None:
    return {}
  std = DENOISE_STD * (run.spec.num_levels - 1)
  noisy = test + std * np.random.default_rng(0).standard_normal(test.shape)
  denoised = _in_batches(lambda y: run.denoise(y, std), noisy.astype(np.float32))
  return {"denoise_rmse": float(np.sqrt(np.mean((denoised - test) ** 2))),
          "noisy_rmse": float(np.sqrt(np.mean((noisy - test) ** 2)))}


def compression(run, test) -> dict:
  """The achieved code length of the test split where the run's family has a coder (else {})."""
  if run.spec.kind != "image" or not compress.available_coders(run):
    return {}
  result = compress.measure(run, test)
  return {"coder": result["coder"], "coded_bits_per_dim": result["bits_per_dim"],
          "coded_net_bits_per_dim": result["net_bits_per_dim"], "coded_exact": "yes" if result["exact"] else "NO",
          "coding_images_per_s": 2 / (1 / result["encode_images_per_s"] + 1 / result["decode_images_per_s"])}


def fid_against_nfe(run, classifier, test, num_samples: int, steps_list=FID_NFE_STEPS) -> list[dict]:
  """A diffusion model's FID (one seed) for DDIM (eta 0) and ancestral (eta 1) sampling at each of
  `steps_list` steps (NFE = steps + 1, the final denoising); [] for another family."""
  if "diffusion" not in run.config:
    return []
  transitions = run.model.num_transitions
  steps_list = [steps for steps in steps_list if not transitions or steps <= transitions]
  model, test_stats = run.model, statistics.statistics_of(classifier(test)[0])
  points = []
  for eta in (0.0, 1.0):
    for steps in steps_list:
      draw = jax.jit(lambda key, steps=steps, eta=eta: model.apply(run.params, key, num_samples, steps, eta,
                                                                   method=model.sample))
      fake = statistics.statistics_of(classifier(np.asarray(draw(jax.random.key(0))))[0])
      points.append({"eta": eta, "steps": steps, "nfe": steps + 1,
                     "fid": frechet.frechet_distance_from_statistics(test_stats, fake)})
  return points


def save_fid_against_nfe(path: str, points: list[dict], own: tuple[int, float]) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  figure, axes = plt.subplots(figsize=(4.5, 3.2))
  for eta, label in ((0.0, "DDIM (eta 0)"), (1.0, "ancestral (eta 1)")):
    curve = [p for p in points if p["eta"] == eta]
    axes.plot([p["nfe"] for p in curve], [p["fid"] for p in curve], "o-", label=label)
  axes.plot(*own, "k*", markersize=10, label="the run's sampler")
  axes.set(xscale="log", xlabel="network evaluations per sample", ylabel="FID (domain features)")
  axes.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  plt.close(figure)


def measure(run, classifier, data: str, train: np.ndarray, test: np.ndarray, num_samples: int,
            seeds: tuple[int, ...]) -> tuple[dict, np.ndarray]:
  """Every measure of one run (see the module doc), and its first seed's samples."""
  out = {}
  samples, seconds = [], []
  for seed in (*seeds, len(seeds) + 1)[:max(2, len(seeds))]:  # the first call compiles; the second is timed
    start = time.perf_counter()
    samples.append(np.asarray(run.sample(jax.random.key(seed), num_samples)))
    seconds.append(time.perf_counter() - start)
  samples = samples[:len(seeds)]
  out["samples_per_sec"] = num_samples / seconds[1]
  out["network_evaluations"] = network_evaluations(run)

  features = lambda images: classifier(images)[0]
  test_f, train_f = features(test), features(train)
  fake_f = [features(s) for s in samples]
  fids = [frechet.frechet_distance_from_statistics(statistics.statistics_of(test_f), statistics.statistics_of(f))
          for f in fake_f]
  kids = [kernel_distance.kernel_inception_distance(test_f, f, num_subsets=100,
                                                    subset_size=min(1000, len(test_f), len(f)))[0] for f in fake_f]
  out.update(fid_mean=float(np.mean(fids)), fid_std=float(np.std(fids)), kid_mean=float(np.mean(kids)),
             kid_std=float(np.std(kids)))
  out["fid_infinity"] = fid_infinity.fid_infinity(test_f, np.concatenate(fake_f)).fid_infinity
  out.update({k: float(v) for k, v in manifold_metrics.precision_recall_density_coverage(test_f, fake_f[0], 5).items()})
  # k cells holding about 50 generated points each on average (the test's tau keeps cells with >= 20)
  copying = memorization.data_copying_test(train_f, test_f, fake_f[0], num_cells=int(np.clip(num_samples // 50, 1, 10)))
  out["data_copying"], out["data_copying_cells"] = copying.statistic, copying.cells_used
  out["authenticity"] = memorization.authenticity(train_f, fake_f[0])

  inlier = None
  if run.estimators:
    train_nll = negative_log_likelihood(run, train[:len(test)])  # compiles the shapes the test split has
    start = time.perf_counter()
    inlier = negative_log_likelihood(run, test)
    seconds = time.perf_counter() - start
    mean = float(inlier.mean())
    out.update(estimator=estimator_name(run), test_nll=mean, test_nll_stderr=float(inlier.std(ddof=1) / math.sqrt(len(test))),
               seconds_per_1k=1000 * seconds / len(test), train_test_gap=mean - float(train_nll.mean()))
    if run.spec.num_levels is not None:
      out["bits_per_dim"] = float(bits_per_dim(mean, run.spec.num_dims))
  else:
    out["estimator"] = f"none ({run.config.model.name}: no tractable likelihood or bound)"
    inlier = outlier_scores(run, test)
  shifted = {}
  if inlier is not None:
    for name, images in shifted_sets(data, test, run.spec.num_levels).items():
      shifted[name] = outlier_scores(run, images)
      out[f"auroc {name}"] = outlier.auroc(inlier, shifted[name])
      if run.estimators:
        typical = lambda s: outlier.typicality_scores(s, train_nll)
        out[f"typicality auroc {name}"] = outlier.auroc(typical(inlier), typical(shifted[name]))
  return out, samples[0], (inlier, shifted)


def save_roc_curves(path: str, scores: dict) -> None:
  """One panel per shifted set, one ROC curve per family: scores {family: (test scores, {set: scores})}."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  import sklearn.metrics  # pylint: disable=import-outside-toplevel
  sets = sorted({name for _, shifted in scores.values() for name in shifted})
  figure, axes = plt.subplots(1, len(sets), figsize=(3.3 * len(sets), 3.3), squeeze=False)
  for ax, name in zip(axes[0], sets):
    for family, (inlier, shifted) in scores.items():
      if name in shifted:
        labels = np.concatenate([np.zeros(len(inlier)), np.ones(len(shifted[name]))])
        fpr, tpr, _ = sklearn.metrics.roc_curve(labels, np.concatenate([inlier, shifted[name]]))
        ax.plot(fpr, tpr, label=family)
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    ax.set(title=name, xlabel="false positive rate", ylabel="true positive rate")
  axes[0][0].legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def train_or_load(families: dict, data: str, workdir: str, runs: dict, examples: int, batch_size: int,
                  overrides: dict, bar) -> dict:
  """{family: workdir of its run}: the given runs, the others trained under the budget."""
  dirs = {}
  for family, module in families.items():
    bar.set_description(f"train {family}")
    if family in runs:
      dirs[family] = runs[family]
    else:
      dirs[family] = os.path.join(workdir, family)
      loop.train_and_evaluate(budgeted_config(module, examples, batch_size, overrides.get(family)), dirs[family])
    bar.update()
  return dirs


COLUMNS = {  # property -> [(column header with its unit, key in a row, format)]
    "Training": [("examples seen", "examples", "{:.0f}"), ("steps", "steps", "{:.0f}"),
                 ("train time (s)", "train_seconds", "{:.0f}"), ("train FLOPs", "train_flops", "{:.3g}")],
    "Sampling": [("samples / s", "samples_per_sec", "{:.3g}"), ("network evaluations / sample", "network_evaluations",
                                                                "{:.0f}")],
    "Sample quality (domain features)": [("FID", "fid_mean", "{:.3g}"), ("FID s.d. over seeds", "fid_std", "{:.2g}"),
                                         ("FID-infinity", "fid_infinity", "{:.3g}"), ("KID", "kid_mean", "{:.3g}"),
                                         ("KID s.d.", "kid_std", "{:.2g}")],
    "Coverage": [("precision", "precision", "{:.3f}"), ("recall", "recall", "{:.3f}"),
                 ("density", "density", "{:.3f}"), ("coverage", "coverage", "{:.3f}")],
    "Memorization": [("C_T (<<0: copying)", "data_copying", "{:.2f}"), ("cells", "data_copying_cells", "{:.0f}"),
                     ("authenticity", "authenticity", "{:.3f}"), ("train-test NLL gap (nats)", "train_test_gap",
                                                                   "{:.2f}")],
    "Latent space (features: the domain classifier's)": [
        ("path length (PPL)", "path_length", "{:.3g}"), ("PPL / endpoint distance", "path_length_ratio", "{:.2f}"),
        ("encode-decode RMSE (levels)", "round_trip_rmse", "{:.3f}"), ("active dims", "active_dims", "{:.0f}"),
        ("latent dims", "latent_dims", "{:.0f}")],
    "Latent structure (codes of the test split against its labels)": [
        ("linear probe accuracy", "probe_accuracy", "{:.3f}"), ("k-means NMI", "kmeans_nmi", "{:.3f}"),
        ("k-means ARI", "kmeans_ari", "{:.3f}")],
    "Denoising": [("denoised RMSE (levels)", "denoise_rmse", "{:.3f}"), ("noisy input RMSE", "noisy_rmse", "{:.3f}")],
    "Likelihood": [("estimator", "estimator", "{}"), ("test NLL (nats)", "test_nll", "{:.2f}"),
                   ("s.e.", "test_nll_stderr", "{:.2f}"), ("bits/dim", "bits_per_dim", "{:.3f}"),
                   ("s per 1k examples", "seconds_per_1k", "{:.3g}")],
    "Compression (the test split through gen_jax.compress)": [
        ("coder", "coder", "{}"), ("coded bits/dim", "coded_bits_per_dim", "{:.3f}"),
        ("net of header and initial bits", "coded_net_bits_per_dim", "{:.3f}"),
        ("test bits/dim (above)", "bits_per_dim", "{:.3f}"), ("bit-exact", "coded_exact", "{}"),
        ("images / s (encode and decode, harmonic mean)", "coding_images_per_s", "{:.3g}")],
}


def _cell(row: dict, key: str, fmt: str) -> str:
  value = row.get(key)
  if value is None:
    return "none"
  return fmt.format(value) if isinstance(value, (int, float, np.floating)) and fmt != "{}" else str(value)


def markdown_report(rows: dict, data: str, budget: str) -> str:
  lines = [f"# Every family on every property: {data}", "", budget, ""]
  for title, columns in COLUMNS.items():
    lines += [f"## {title}", "", "| family | model | " + " | ".join(c[0] for c in columns) + " |",
              "|---|---|" + "---:|" * len(columns)]
    lines += [f"| {family} | {row['model']} | " + " | ".join(_cell(row, key, fmt) for _, key, fmt in columns) + " |"
              for family, row in rows.items()]
    lines.append("")
  sets = sorted({k[len("auroc "):] for row in rows.values() for k in row if k.startswith("auroc ")})
  lines += ["## Outlier detection (AUROC against the test split; 0.5 is chance)", "",
            "| family | score | " + " | ".join(sets) + " | " + " | ".join(f"typicality: {s}" for s in sets) + " |",
            "|---|---|" + "---:|" * (2 * len(sets))]
  for family, row in rows.items():
    lines.append(f"| {family} | {row['outlier_score']} | " + " | ".join(
        _cell(row, f"auroc {s}", "{:.3f}") for s in sets) + " | " + " | ".join(
        _cell(row, f"typicality auroc {s}", "{:.3f}") for s in sets) + " |")
  curves = {family: row["fid_against_nfe"] for family, row in rows.items() if row.get("fid_against_nfe")}
  for family, points in curves.items():
    lines += ["", f"## FID against network evaluations: {family} ({rows[family]['model']}; one seed)", "",
              "| sampler | " + " | ".join(str(p["nfe"]) for p in points if p["eta"] == 0.0) + " |",
              "|---|" + "---:|" * (len(points) // 2)]
    for eta, name in ((0.0, "DDIM (eta 0)"), (1.0, "ancestral (eta 1)")):
      lines.append(f"| {name} | " + " | ".join(f"{p['fid']:.3g}" for p in points if p["eta"] == eta) + " |")
    lines += ["", f"The run's own sampler: {rows[family]['network_evaluations']} evaluations, FID "
              f"{rows[family]['fid_mean']:.3g} (mean over seeds)."]
  lines += ["", "Not yet measured here: " + __doc__.split("Not yet in the report")[1].split(":", 1)[1].strip()
            .replace("\n", " "), ""]
  return "\n".join(lines)


def compare(data: str, workdir: str, *, runs: dict | None = None, classifier_dir: str | None = None,
            examples: int = DEFAULT_EXAMPLES, batch_size: int = 128, num_samples: int | None = None,
            seeds: tuple[int, ...] = (0, 1, 2), overrides: dict | None = None,
            families: tuple[str, ...] | None = None, fid_nfe_steps: tuple[int, ...] = FID_NFE_STEPS) -> dict:
  """Trains (or loads) every family (or those named in `families`), measures each, writes DIR/report.md
  and report.json; returns the rows."""
  if data not in FAMILY_CONFIGS:
    raise ValueError(f"unknown --data {data!r}: expected one of {sorted(FAMILY_CONFIGS)}")
  runs, overrides = dict(runs or {}), dict(overrides or {})
  unknown = sorted((set(runs) | set(overrides) | set(families or ())) - {"classifier"} - set(FAMILY_CONFIGS[data]))
  if unknown:
    raise ValueError(f"unknown families {unknown}: expected names from {sorted(FAMILY_CONFIGS[data])}")
  families = {f: m for f, m in FAMILY_CONFIGS[data].items() if families is None or f in families}
  for family, path in runs.items():
    if not os.path.exists(os.path.join(path, "config.json")):
      raise FileNotFoundError(f"--runs {family}={path}: not a gen_jax run (no config.json)")
  os.makedirs(workdir, exist_ok=True)
  train_set, test_set = load_dataset(data, "train"), load_dataset(data, "test")
  train, test = train_set.data, test_set.data
  num_samples = len(test) if num_samples is None else num_samples
  stages = len(families) * 2 + 2
  with tqdm.tqdm(total=stages, desc="compare", disable=not sys.stderr.isatty()) as bar:
    if classifier_dir is None:
      bar.set_description("train classifier")
      classifier_dir = os.path.join(workdir, "classifier")
      loop.train_and_evaluate(budgeted_config(CLASSIFIER_CONFIGS[data], examples, batch_size,
                                              overrides.get("classifier")), classifier_dir)
    classifier = scoring.load_domain_classifier(classifier_dir)
    bar.update()
    dirs = train_or_load(families, data, workdir, runs, examples, batch_size, overrides, bar)
    rows, scores = {}, {}
    for family, path in dirs.items():
      bar.set_description(f"measure {family}")
      run = gen_jax.load_run(path)
      start = time.perf_counter()
      row, samples, scores[family] = measure(run, classifier, data, train, test, num_samples, seeds)
      latent_row, figures = latent_measures(run, classifier, train, train_set.labels, test, test_set.labels)
      points = fid_against_nfe(run, classifier, test, num_samples, fid_nfe_steps)
      rows[family] = {"model": run.config.model.name, "workdir": path, **training_cost(run), **row, **latent_row,
                      **denoising_error(run, test), **compression(run, test), "fid_against_nfe": points,
                      "outlier_score": ("-log P(x)" if run.estimators else
                                        "energy" if run.config.model.name == "ebm" else "-discriminator logit"),
                      "measure_seconds": time.perf_counter() - start}
      upscale = 4 if run.spec.event_shape[0] <= 16 else 2
      visualize.save_image_grid(os.path.join(workdir, f"samples_{family}.png"), samples[:64], run.spec.num_levels,
                                upscale=upscale)
      for name, grid in figures.items():
        visualize.save_image(os.path.join(workdir, f"{name}_{family}.png"), grid, upscale=upscale)
      if points:
        save_fid_against_nfe(os.path.join(workdir, f"fid_against_nfe_{family}.png"), points,
                             (row["network_evaluations"], row["fid_mean"]))
      bar.update()
    if any(shifted for _, shifted in scores.values()):
      save_roc_curves(os.path.join(workdir, "roc_curves.png"), scores)
    budget = (f"Budget: {examples} training examples per family in batches of {batch_size} (runs given with "
              f"--runs keep their own: see 'examples seen'); {num_samples} samples per seed, seeds {list(seeds)}; "
              f"features: the domain classifier at {classifier_dir}.")
    with open(os.path.join(workdir, "report.json"), "w") as f:
      json.dump({"data": data, "budget": budget, "rows": rows}, f, indent=2, default=float)
    with open(os.path.join(workdir, "report.md"), "w") as f:
      f.write(markdown_report(rows, data, budget))
    bar.update()
  return rows


def parse_pairs(text: str, what: str) -> dict:
  """"a=1,b=2" -> {"a": "1", "b": "2"}; an item without "=" raises naming `what`."""
  pairs = {}
  for item in filter(None, (text or "").split(",")):
    if "=" not in item:
      raise argparse.ArgumentTypeError(f"{what}: expected NAME=VALUE, got {item!r}")
    name, value = item.split("=", 1)
    pairs[name] = value
  return pairs


def parse_overrides(items: list[str], parser: argparse.ArgumentParser) -> dict:
  """`--set RUN:FIELD=VALUE` items -> {RUN: {FIELD: the JSON VALUE}}; a malformed item is a parser error."""
  overrides = {}
  for item in items:
    run, _, assignment = item.partition(":")
    field, _, value = assignment.partition("=")
    if not (run and field and value):
      parser.error(f"--set {item!r}: expected NAME:FIELD=VALUE")
    overrides.setdefault(run, {})[field] = json.loads(value)
  return overrides


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m experiments.compare", description=__doc__.split("\n")[0])
  parser.add_argument("--data", required=True, choices=sorted(FAMILY_CONFIGS))
  parser.add_argument("--workdir", required=True, help="where the runs, report.md, report.json and figures go")
  parser.add_argument("--runs", default="", help="finished runs to load instead of training: family=DIR,...")
  parser.add_argument("--classifier", default=None, help="a finished domain classifier run (else one is trained)")
  parser.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES, help="training examples seen per family")
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--num_samples", type=int, default=None, help="samples per seed (default: the test size)")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--families", default=None, help="only these families, comma-separated (default: all)")
  parser.add_argument("--set", action="append", default=[],
                      help="a config override for one family, FAMILY:FIELD=VALUE (JSON value), repeatable")
  args = parser.parse_args(argv)
  overrides = parse_overrides(args.set, parser)
  try:
    runs = parse_pairs(args.runs, "--runs")
    seeds = tuple(int(s) for s in args.seeds.split(","))
  except (argparse.ArgumentTypeError, ValueError) as error:
    parser.error(str(error))
  try:
    compare(args.data, args.workdir, runs=runs, classifier_dir=args.classifier, examples=args.examples,
            batch_size=args.batch_size, num_samples=args.num_samples, seeds=seeds, overrides=overrides,
            families=None if args.families is None else tuple(args.families.split(",")))
  except (ValueError, FileNotFoundError, KeyError) as error:
    parser.exit(2, f"{parser.prog}: error: {error}\n")
  print(os.path.join(args.workdir, "report.md"))
  return 0


if __name__ == "__main__":
  sys.exit(main())
