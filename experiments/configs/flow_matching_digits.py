"""Flow matching (Lipman et al. 2023) on the 8x8 digits (17 levels): the straight conditional path,
DDPM's U-Net as the velocity network, midpoint sampling in 50 steps (100 network evaluations).
`--config=experiments/configs/flow_matching_digits.py[:cpu][,metrics][,ot][,conditional]`:
  ot           minibatch optimal-transport couplings (OT-CFM, Tong et al. 2023);
  conditional  class-conditional on the digit labels, 10% label dropout, sampled at guidance scale 2.
"""
import ml_collections

from experiments.configs.base import digits_config, set_unet

VARIANTS = ("ot", "conditional")


def split_variants(arg: str | None) -> tuple[str, set[str]]:
  """(the data config's variants, this family's variants) of `--config=...:ARG`."""
  variants = [v for v in (arg or "").split(",") if v]
  return ",".join(v for v in variants if v not in VARIANTS), {v for v in variants if v in VARIANTS}


def set_flow_matching(config: ml_collections.ConfigDict, variants: set[str], channel_multipliers: tuple[int, ...],
                      attention_resolutions: tuple[int, ...]) -> None:
  """The model and the flow_matching section on an image data config (shared by the digits and MNIST configs)."""
  config.model.name = "flow_matching"
  config.model.network = "unet"
  set_unet(config, variants, channel_multipliers, attention_resolutions)
  config.model.sigma = 0.0
  config.flow_matching = ml_collections.ConfigDict({
      "coupling": "minibatch_ot" if "ot" in variants else "independent", "sampler": "midpoint",
      "sample_steps": 50, "label_dropout": 0.1, "guidance_scale": 2.0 if "conditional" in variants else 1.0})
  if "conditional" in variants:
    config.model.num_classes = 10


def get_config(arg: str | None = None):
  data_arg, own = split_variants(arg)
  config, variants = digits_config(data_arg)
  set_flow_matching(config, variants | own, channel_multipliers=(1, 2), attention_resolutions=(4,))
  return config
