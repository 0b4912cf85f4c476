"""Model names in configs -> Flax modules and their family's `Task`."""
from __future__ import annotations

import dataclasses
import inspect

import flax.linen as nn
import ml_collections

from gen_jax.data.spec import DataSpec
from gen_jax.models import flows
from gen_jax.models.autoregressive import MADEDensity, PixelCNN, build_autoregressive_task
from gen_jax.models.classifier import Classifier
from gen_jax.models.classifier_task import build_classifier_task
from gen_jax.models.diffusion.task import build_diffusion_task, diffusion_model
from gen_jax.models.ebm.task import build_ebm_task, ebm_model
from gen_jax.models.flows.task import build_flow_task
from gen_jax.models.flow_matching.task import build_flow_matching_task, flow_matching_model
from gen_jax.models.gan.task import build_gan_task, gan_model
from gen_jax.models.vae.task import build_vae_task
from gen_jax.models.vae.hierarchical import HierarchicalVAE
from gen_jax.models.vae.vae import VAE
from gen_jax.train.task import Task

# name -> (module class or factory(event_shape=..., [num_levels=...,] **fields), task builder)
MODELS = {
    "realnvp": (flows.RealNVP, build_flow_task),
    "glow": (flows.Glow, build_flow_task),
    "nsf": (flows.NeuralSplineFlow, build_flow_task),
    "maf": (flows.MAF, build_flow_task),
    "vae": (VAE, build_vae_task),
    "hvae": (HierarchicalVAE, build_vae_task),
    "diffusion": (diffusion_model, build_diffusion_task),  # DDPM / VDM: a factory, not a class
    "flow_matching": (flow_matching_model, build_flow_matching_task),  # a factory, not a class
    "gan": (gan_model, build_gan_task),
    "ebm": (ebm_model, build_ebm_task),  # energy-based models: a factory, not a class
    "pixelcnn": (PixelCNN, build_autoregressive_task),
    "made": (MADEDensity, build_autoregressive_task),
    "classifier": (Classifier, build_classifier_task),  # the domain feature network of gen_jax.eval
}


def _entry(name: str):
  if name not in MODELS:
    raise ValueError(f"model.name must be one of {sorted(MODELS)}, got {name!r}")
  return MODELS[name]


def takes_num_levels(builder) -> bool:
  """Whether a module class (a flax dataclass) or factory has a `num_levels` field: the data's grey levels."""
  if dataclasses.is_dataclass(builder):
    return any(field.name == "num_levels" for field in dataclasses.fields(builder))
  return "num_levels" in inspect.signature(builder).parameters


def build_model(model_config: ml_collections.ConfigDict, spec: DataSpec) -> nn.Module:
  """The module named by `model_config.name`, its other fields as attributes, on the data's event shape;
  a model with a `num_levels` field gets the data's grey levels (never a config's copy)."""
  module_cls, _ = _entry(model_config.name)
  if "num_levels" in model_config:
    raise ValueError("config.model.num_levels is not a model option: the grey levels come from the data "
                     f"(this data has num_levels={spec.num_levels}); a multiscale flow's depth is num_scales")
  kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in model_config.items() if k != "name"}
  if takes_num_levels(module_cls):
    kwargs["num_levels"] = spec.num_levels
  return module_cls(event_shape=tuple(spec.event_shape), **kwargs)


def build_task(config: ml_collections.ConfigDict, spec: DataSpec) -> Task:
  _, task_builder = _entry(config.model.name)
  return task_builder(config, build_model(config.model, spec), spec)
