"""The house's layers, read from the imports (ast), so a forbidden import fails here when it comes back.

  drivers   gen_jax/drivers/, gen_jax/cli/, gen_jax/compress/ (and experiments/): may import everything below
  eval      gen_jax/eval/: arrays and feature functions            no family, registry, run, loop or CLI
  families  gen_jax/models/<family>/, side by side                 never another family, the registry,
                                                                   eval, a driver or a CLI
  shared    gen_jax/nn, distributions, data, ode, checks, visualize, latent_space: no family, eval, engine, driver
  engine    gen_jax/train/: state, step, sharding, checkpoint, optimizer: no family, registry, eval, driver
"""
from __future__ import annotations

import ast
import importlib
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "gen_jax"
FAMILIES = ("autoregressive", "diffusion", "ebm", "flow_matching", "flows", "gan", "vae")
SHARED = ("gen_jax.nn", "gen_jax.distributions", "gen_jax.data", "gen_jax.ode", "gen_jax.checks",
          "gen_jax.visualize", "gen_jax.latent_space")
DRIVERS = ("gen_jax.drivers", "gen_jax.cli", "gen_jax.run", "gen_jax.compress")
# The one engine module the evaluation module may use: placing a batch on the devices' mesh.
EVAL_MAY_USE_FROM_ENGINE = ("gen_jax.train.sharding",)


def imported_modules(source: str, module: str) -> set[str]:
  """Every gen_jax module `source` imports (top level or inside functions), as dotted names; for
  `from a import b` the name `a.b` (b a module or a name in a: either way within `a`)."""
  names = set()
  package = module.rsplit(".", 1)[0]
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: resolve against the importing module's package
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
      names.update(f"{base}.{alias.name}" for alias in node.names)
  return {n for n in names if n == "gen_jax" or n.startswith("gen_jax.")}


def within(name: str, prefixes) -> bool:
  return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(module: str, imports: set[str]) -> list[str]:
  """The imports of `module` that its layer forbids."""
  parts = module.split(".")
  families = tuple(f"gen_jax.models.{f}" for f in FAMILIES)
  if parts[:2] == ["gen_jax", "models"] and len(parts) > 3 and parts[2] in FAMILIES:
    own = f"gen_jax.models.{parts[2]}"
    forbidden = [n for n in imports if (within(n, families) and not within(n, (own,)))
                 or within(n, ("gen_jax.models.registry", "gen_jax.models.classifier", "gen_jax.eval") + DRIVERS)
                 or n == "gen_jax.models"]
  elif parts[:2] == ["gen_jax", "eval"]:
    forbidden = [n for n in imports if within(n, ("gen_jax.models",) + DRIVERS)
                 or (within(n, ("gen_jax.train",)) and not within(n, EVAL_MAY_USE_FROM_ENGINE))]
  elif parts[:2] == ["gen_jax", "train"]:
    forbidden = [n for n in imports if within(n, ("gen_jax.models", "gen_jax.eval") + DRIVERS)]
  elif within(module, SHARED):
    forbidden = [n for n in imports if within(n, ("gen_jax.models", "gen_jax.eval", "gen_jax.train") + DRIVERS)]
  else:
    forbidden = []
  return sorted(forbidden)


def package_modules():
  for path in sorted(PACKAGE.rglob("*.py")):
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
      parts = parts[:-1] + ["__init__"]
    yield ".".join(parts), path


def test_every_module_imports_only_what_its_layer_allows():
  found = {}
  for module, path in package_modules():
    bad = violations(module, imported_modules(path.read_text(), module))
    if bad:
      found[module] = bad
  assert not found, f"layer violations (module -> forbidden imports): {found}"


def test_the_old_homes_are_gone():
  """Shared pieces live below the families, drivers above the engine and eval."""
  for old in ("models/vae/likelihoods.py", "models/vae/gaussian.py", "models/vae/latent_space.py",
              "models/gan/spectral_norm.py", "models/gan/scale.py", "models/ebm/report.py", "train/loop.py",
              "run.py", "eval/fid.py", "eval/metrics.py", "eval/score_run.py"):
    assert not (PACKAGE / old).exists(), old


@pytest.mark.parametrize("module,source", [
    ("gen_jax.models.gan.task", "from gen_jax.models.vae import latent_space"),
    ("gen_jax.models.diffusion.diffusion", "from gen_jax.models.vae.likelihoods import to_model_space"),
    ("gen_jax.models.ebm.energy_nets", "def f():\n  from ..gan.spectral_norm import maybe_spectral_norm"),
    ("gen_jax.models.flows.task", "import gen_jax.models.registry"),
    ("gen_jax.eval.domain_features", "from gen_jax.models.classifier import images_to_classifier_input"),
    ("gen_jax.eval.likelihood", "def main():\n  from gen_jax.drivers.run import load_run"),
    ("gen_jax.eval.features", "from gen_jax.train import step"),
    ("gen_jax.train.step", "from gen_jax import models"),
    ("gen_jax.train.state", "from gen_jax.models.registry import MODELS"),
    ("gen_jax.distributions.likelihoods", "from gen_jax.models.vae import vae"),
    ("gen_jax.data.levels", "from gen_jax.eval import frechet"),
])
def test_the_checker_catches_each_forbidden_import(module, source):
  assert violations(module, imported_modules(source, module)), (module, source)


@pytest.mark.parametrize("module,source", [
    ("gen_jax.models.gan.task", "from gen_jax.models.gan import losses\nfrom gen_jax.train.task import Task"),
    ("gen_jax.models.ebm.energy_nets", "from gen_jax.nn.spectral_norm import maybe_spectral_norm"),
    ("gen_jax.eval.features", "from gen_jax.train import sharding\nfrom gen_jax.data import batching"),
    ("gen_jax.drivers.loop", "from gen_jax import models\nfrom gen_jax.eval import training_metrics"),
])
def test_the_checker_allows_what_the_layers_allow(module, source):
  assert not violations(module, imported_modules(source, module))


@pytest.mark.parametrize("family", ["autoregressive", "diffusion", "ebm", "flows", "gan", "vae"])
def test_every_family_package_exports_its_names(family):
  """`from gen_jax.models.<family> import <Model>` works for the names the README lists."""
  package = importlib.import_module(f"gen_jax.models.{family}")
  assert package.__all__, f"gen_jax.models.{family} exports nothing"
  missing = [name for name in package.__all__ if not hasattr(package, name)]
  assert not missing, missing
  assert {"diffusion": "GaussianDiffusion", "flows": "Glow", "vae": "VAE", "gan": "GAN",
          "ebm": "EnergyModel", "autoregressive": "PixelCNN"}[family] in package.__all__
