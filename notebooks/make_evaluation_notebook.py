"""Writes notebooks/evaluation.ipynb from the cells below and executes it in place (stored with outputs).

  python notebooks/make_evaluation_notebook.py

Runs in about a minute on 2 CPU cores (it trains a small classifier and runs Inception on 8 images).
The closing summary quotes numbers the cells print; after executing, this script checks that every
number it quotes appears in the outputs (`notebook_tools`), so a summary cannot silently go stale.
"""
import os

from notebook_tools import REPO, execute_and_write

PATH = os.path.join(REPO, "notebooks", "evaluation.ipynb")

cells = [
    ("md", """# Evaluating generative models in gen_jax

Sample-quality metrics compare *features* of generated and real images. This notebook looks at each
ingredient on the 8x8 digits:

1. **Features.** A small classifier trained on the digits (the domain feature network that FID, KID and
   precision/recall use on this dataset), and the FID Inception network with its three resize modes.
2. **FID vs sample count.** FID computed from n samples is biased upward, more so for small n; KID is not.
3. **Precision and recall of a truncated sampler.** A Gaussian mixture sampled at temperature T trades
   diversity (recall, coverage) for fidelity (precision, density).

Everything is seeded; files go to a temporary directory."""),
    ("code", """import contextlib
import io
import json
import os
import tempfile

import jax
import matplotlib.pyplot as plt
import numpy as np
from sklearn.mixture import GaussianMixture

from experiments.configs import classifier_digits
from gen_jax.data import load_dataset, uniform_dequantize
from gen_jax.eval import features, frechet, kernel_distance, resize, sample_quality, statistics
from gen_jax.drivers.scoring import load_domain_classifier
from gen_jax.drivers.loop import train_and_evaluate
from gen_jax.visualize import image_grid"""),
    ("md", "## 1. Features\nThe real data: scikit-learn's 8x8 handwritten digits, 17 grey levels (uint8 0..16)."),
    ("code", """train = load_dataset("digits", "train")
test = load_dataset("digits", "test")
levels = train.spec.num_levels
print(f"train {train.data.shape}, test {test.data.shape}, {train.data.dtype}, levels 0..{levels - 1}")
fig, axes = plt.subplots(1, 10, figsize=(10, 1.3))
for digit, ax in enumerate(axes):
  ax.imshow(train.data[np.argmax(train.labels == digit), ..., 0], cmap="gray_r", vmin=0, vmax=levels - 1)
  ax.set_title(str(digit)); ax.axis("off")
fig.tight_layout()"""),
    ("md", """### The domain feature network
Inception's ImageNet features say little about 8x8 digits, so on this dataset the metrics use the
penultimate layer (128 features) of a small conv classifier trained on the digit labels. Here it is the
`:cpu` config of `experiments/configs/classifier_digits.py` cut to 500 steps, trained by the same loop as
every model into a temporary workdir, then loaded as a `FeatureNetwork`."""),
    ("code", """workdir = tempfile.mkdtemp()
config = classifier_digits.get_config("cpu")
config.train.num_steps = 500
config.train.log_every = config.train.eval_every = config.train.sample_every = config.train.save_every = 500
with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
  train_and_evaluate(config, workdir)  # (its progress bar silenced: metrics.jsonl holds the numbers)
with open(os.path.join(workdir, "metrics.jsonl")) as f:
  final_eval = [r for r in map(json.loads, f) if "eval/accuracy" in r][-1]
print(f"test accuracy after {final_eval['step']} steps: {final_eval['eval/accuracy']:.4f}")

classifier = load_domain_classifier(workdir).feature_network()
classifier_features = lambda images: features.extract_features(classifier, images, 500, ("features",))["features"]
real_test, real_train = classifier_features(test.data), classifier_features(train.data)
print("classifier features: test", real_test.shape, "train", real_train.shape)"""),
    ("md", """### The FID Inception network and its resize modes
FID proper uses the TF-Inception pool3 features (2048-D) at 299x299. Images enter as uint8 in [0, 255],
so the 17 levels are scaled to 0..255 first. How they are resized to 299x299 is a choice that changes
the features (Parmar et al. 2022): `clean` is PIL's antialiased bicubic, `legacy_pytorch` and
`legacy_tensorflow` are the bilinear resizes of pytorch-fid and the original TF code. One digit resized
each way:"""),
    ("code", """eight_bit = np.round(test.data[:8].astype(np.float64) * 255 / (levels - 1)).astype(np.uint8)
resized = {mode: np.asarray(resize.resize_images(eight_bit[:1], mode)) for mode in resize.RESIZE_MODES}
fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
axes[0].imshow(eight_bit[0, ..., 0], cmap="gray", vmin=0, vmax=255); axes[0].set_title("8x8 original")
for ax, (mode, image) in zip(axes[1:], resized.items()):
  ax.imshow(image[0, ..., 0], cmap="gray", vmin=0, vmax=255); ax.set_title(f"{mode}, 299x299")
for ax in axes: ax.axis("off")
for mode in ("legacy_pytorch", "legacy_tensorflow"):
  print(f"{mode}: mean |pixel - clean's| = {np.abs(resized[mode] - resized['clean']).mean():.1f} of 255")"""),
    ("md", """Pool3 features of 8 test digits in each mode (a few seconds per mode on a CPU; the first call
converts the installed weights once and caches them). The relative difference
mean_i ||f_a(x_i) - f_b(x_i)|| / ||f_b(x_i)|| is compared with the same quantity between *different*
digits in one mode, the scale on which features separate images."""),
    ("code", """inception = {mode: features.extract_features(features.inception_network(resize=mode), eight_bit,
                                            batch_size=8, outputs=("features",))["features"]
             for mode in resize.RESIZE_MODES}
relative = lambda a, b: float(np.mean(np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)))
clean = inception["clean"]
print("pool3 features per mode:", {mode: f.shape for mode, f in inception.items()})
print(f"legacy_pytorch vs clean:             {relative(inception['legacy_pytorch'], clean):.3f}")
print(f"legacy_tensorflow vs clean:          {relative(inception['legacy_tensorflow'], clean):.3f}")
print(f"legacy_tensorflow vs legacy_pytorch: "
      f"{relative(inception['legacy_tensorflow'], inception['legacy_pytorch']):.3f}")
print(f"between different digits (clean):    {relative(np.roll(clean, 1, axis=0), clean):.3f}")"""),
    ("md", """## 2. FID vs sample count
FID fits a Gaussian to each feature set and compares them. Estimated from n samples, the trace term is
biased: even samples of the *same* distribution give FID > 0, decaying roughly like 1/n (Binkowski et
al. 2018; Chong & Forsyth 2020), so FIDs computed with different n do not compare. KID, an unbiased
estimate of the squared MMD, has the same expectation for every n, only a larger variance for small n.

Here the "generated" set is n *real* training images, against the 297 test images, in classifier features;
10 random draws per n (KID: 100 subsets of min(n, 297) each)."""),
    ("code", """rng = np.random.default_rng(0)
sizes = [25, 50, 100, 200, 400, 800, 1500]
test_stats = statistics.statistics_of(real_test)
fid_by_n, kid_by_n = {}, {}
for n in sizes:
  fids, kids = [], []
  for draw in range(10):
    subset = real_train[rng.choice(len(real_train), n, replace=False)]
    fids.append(frechet.frechet_distance_from_statistics(test_stats, statistics.statistics_of(subset)))
    kid_mean, _ = kernel_distance.kernel_inception_distance(real_test, subset, seed=draw,
                                                            subset_size=min(n, len(real_test)))
    kids.append(kid_mean)
  fid_by_n[n], kid_by_n[n] = np.array(fids), np.array(kids)
  print(f"n = {n:4d}   FID {fid_by_n[n].mean():6.2f} +- {fid_by_n[n].std():5.2f}   "
        f"KID {kid_by_n[n].mean():6.2f} +- {kid_by_n[n].std():5.2f}  (mean +- std over 10 draws)")"""),
    ("code", """fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for ax, values, name in zip(axes, (fid_by_n, kid_by_n), ("FID", "KID")):
  ax.errorbar(sizes, [values[n].mean() for n in sizes], yerr=[values[n].std() for n in sizes], marker="o",
              capsize=3)
  ax.axhline(0, color="gray", lw=0.5)
  ax.set_xscale("log"); ax.set_xlabel("n (real training images)")
  ax.set_title(f"{name}: n train vs 297 test images")
axes[1].axhline(kid_by_n[1500].mean(), color="C1", ls="--", label="KID at n = 1500")
axes[1].legend()
# FID's bias is about c / n: a line in 1/n, whose intercept estimates FID at n = infinity.
slope, intercept = np.polyfit(1 / np.array(sizes[2:]), [fid_by_n[n].mean() for n in sizes[2:]], 1)
print(f"fit over n >= 100: FID ~ {intercept:.2f} + {slope:.0f} / n")"""),
    ("md", """## 3. Precision and recall of a truncated sampler
A Gaussian mixture (10 components, full covariance with a floor of 10x the dequantization noise's
variance) is fitted to the dequantized training images y = (x + u) / 17, as `experiments/gmm_baseline.py`
does. Sampling at temperature T picks a component k, then y = mean_k + T chol(cov_k) z with z ~ N(0, I),
and quantizes back to the 17 levels, x = clip(floor(17 y), 0, 16). T < 1 concentrates samples near the
modes (the truncation trick of GANs and flows). The same components and z are used at every T."""),
    ("code", """y_train = np.asarray(uniform_dequantize(jax.random.key(0), train.data, levels), np.float64)
y_train = y_train.reshape(len(y_train), -1)  # [1500, 64] in [0, 1)
noise_variance = 1 / (12 * levels ** 2)  # of the uniform dequantization noise u / 17
gmm = GaussianMixture(10, covariance_type="full", reg_covar=10 * noise_variance, random_state=0).fit(y_train)
chol = np.linalg.cholesky(gmm.covariances_)
num_samples = 1000
sample_rng = np.random.default_rng(1)
component = sample_rng.choice(gmm.n_components, num_samples, p=gmm.weights_)
z = sample_rng.standard_normal((num_samples, y_train.shape[1]))

def sample_gmm(temperature):
  y = gmm.means_[component] + temperature * np.einsum("nij,nj->ni", chol[component], z)
  return np.clip(np.floor(y * levels), 0, levels - 1).astype(np.uint8).reshape(-1, *train.spec.event_shape)

print(f"{gmm.n_components} components, converged {gmm.converged_} after {gmm.n_iter_} EM iterations")"""),
    ("md", """Each sampler's 1000 images against the 297 test images, in classifier features (k = 5 nearest
neighbours). Precision: the share of samples inside the real manifold; recall: the share of real images
inside the samples' manifold; density and coverage (Naeem et al. 2020) are their outlier-robust
versions. The first row is 1000 *real* training images: what a perfect model scores at these sizes."""),
    ("code", """temperatures = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0]
real_reference = train.data[np.random.default_rng(2).choice(len(train.data), num_samples, replace=False)]

def evaluate(images):  # the real side passed as features, extracted once above
  return sample_quality.sample_quality(classifier, {"features": real_test}, images, ("fid", "prdc"), batch_size=500)

reference = evaluate(real_reference)
results = {t: evaluate(sample_gmm(t)) for t in temperatures}
names = ("precision", "recall", "density", "coverage", "fid")
print("sampler        " + "".join(f"{name:>11}" for name in names))
print("real train     " + "".join(f"{reference[name]:11.3f}" for name in names))
for t, r in results.items():
  print(f"GMM T = {t:<5}  " + "".join(f"{r[name]:11.3f}" for name in names))"""),
    ("code", """fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for name in ("precision", "recall", "density", "coverage"):
  axes[0].plot(temperatures, [results[t][name] for t in temperatures], marker="o", label=name)
axes[0].set_xlabel("temperature T"); axes[0].set_title("fidelity vs diversity"); axes[0].legend()
axes[1].plot(temperatures, [results[t]["fid"] for t in temperatures], marker="o", label="GMM")
axes[1].axhline(reference["fid"], color="gray", ls="--", label="real train images")
axes[1].set_xlabel("temperature T"); axes[1].set_title("FID (1000 samples vs 297 test)"); axes[1].legend()
fig.tight_layout()"""),
    ("code", """fig, axes = plt.subplots(1, 3, figsize=(12, 4.3))
for ax, (title, images) in zip(axes, [("GMM, T = 0.25", sample_gmm(0.25)), ("GMM, T = 1.5", sample_gmm(1.5)),
                                     ("real test images", test.data)]):
  ax.imshow(image_grid(images[:64], levels, columns=8)[..., 0], cmap="gray")
  ax.set_title(title); ax.axis("off")"""),
    ("md", """## Summary

- **Features.** The domain classifier reaches 0.9764 test accuracy after 500 steps; its 128 features drive
  sections 2 and 3. Inception's features of these upscaled 8x8 digits depend strongly on the resize mode:
  `legacy_pytorch` and `legacy_tensorflow` features differ from `clean` ones by 0.661 and 0.674 (relative)
  and from each other by 0.275, while two *different* digits in the same mode differ by 0.579. Changing the
  resize mode moves a digit further than replacing it by another digit: FIDs computed with different resize
  modes do not compare.
- **FID vs n.** Both sets are real digits, yet FID falls from 45.58 at n = 25 through 12.30 at n = 100 to
  5.21 at n = 1500, close to the fit 4.65 + 802 / n: small-sample bias, not a difference of distributions.
  The intercept 4.65 is what is left with unlimited training images, the bias and noise of the fixed 297
  test images. KID shows no trend with n (2.40 at n = 100, 2.50 at n = 1500) but its spread over draws grows
  as n shrinks, from 0.24 at n = 1500 to 37.31 at n = 25.
- **Truncation.** Raising the GMM's temperature from 0.0 to 2.0 trades fidelity for diversity: recall rises
  from 0.000 (at T = 0 the samples are the 10 component means) to 0.987 and coverage reaches 1.000 at
  T = 0.75, while precision falls from 1.000 to 0.889 and density from 1.583 to 0.610. Precision hardly
  moves up to T = 1 (0.989 or more), and rates the T = 0 sampler, 10 distinct images, as perfect: fidelity
  metrics need a diversity metric beside them. FID, which mixes both, is lowest at T = 1.0 (8.924), still
  above the 4.581 of 1000 real training images, which score precision 0.978 and recall 0.976."""),
]


if __name__ == "__main__":
  execute_and_write(cells, PATH)
