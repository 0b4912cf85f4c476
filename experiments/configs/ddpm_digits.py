"""DDPM (Ho et al. 2020) on the 8x8 digits (17 levels): linear betas, T = 1000, eps prediction,
L_simple, a U-Net with attention at 4x4; ancestral sampling over all 1000 states.
`--config=experiments/configs/ddpm_digits.py[:cpu][,metrics][,conditional]`; `conditional`: the
U-Net takes the 10 digit classes (and a null label), trains with 10% of the labels dropped and
samples the classes in turn with classifier-free guidance scale 2 (Ho & Salimans 2022)."""
import ml_collections

from experiments.configs.base import digits_config, parse_variant, set_unet

OWN_VARIANTS = ("conditional",)


def set_ddpm(config: ml_collections.ConfigDict, variants: set[str],
             channel_multipliers: tuple[int, ...], attention_resolutions: tuple[int, ...]) -> None:
  """DDPM's model, objective and sampler on a data config (shared by ddpm_digits, ddpm_mnist and the EDM
  configs); the `conditional` variant adds the classes and classifier-free guidance."""
  config.model.name = "diffusion"
  config.model.denoiser = "unet"
  set_unet(config, variants, channel_multipliers, attention_resolutions)
  config.model.schedule = "linear_betas"
  config.model.num_timesteps = 1000
  config.model.prediction = "eps"
  # sample_steps None: all 999 steps
  config.diffusion = ml_collections.ConfigDict({"objective": "simple", "sample_steps": None, "sample_eta": 1.0,
                                               "sampler": "ddim"})
  if "conditional" in variants:
    config.model.num_classes = 10
    config.diffusion.label_dropout = 0.1
    config.diffusion.guidance_scale = 2.0


def diffusion_data_config(data_config, arg: str | None) -> tuple[ml_collections.ConfigDict, set[str]]:
  """(config, variants) of `data_config` (digits_config / mnist_config) with the diffusion configs' own
  variants (OWN_VARIANTS) split off `arg` first; an unknown variant is an error naming all the known ones."""
  variants = parse_variant(arg, ("cpu", "metrics") + OWN_VARIANTS)
  own = variants & set(OWN_VARIANTS)
  config, data_variants = data_config(",".join(sorted(variants - own)))
  return config, data_variants | own


def get_config(arg: str | None = None):
  config, variants = diffusion_data_config(digits_config, arg)
  set_ddpm(config, variants, channel_multipliers=(1, 2), attention_resolutions=(4,))
  return config
