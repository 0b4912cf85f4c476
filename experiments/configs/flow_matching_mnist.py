"""Flow matching on the MNIST split (256 levels): a U-Net (28 -> 14 -> 7) with attention at 7x7, midpoint
sampling in 50 steps. `--config=experiments/configs/flow_matching_mnist.py[:cpu][,metrics][,ot][,conditional]`
(the variants of flow_matching_digits)."""
from experiments.configs.base import mnist_config
from experiments.configs.flow_matching_digits import set_flow_matching, split_variants


def get_config(arg: str | None = None):
  data_arg, own = split_variants(arg)
  config, variants = mnist_config(data_arg)
  set_flow_matching(config, variants | own, channel_multipliers=(1, 2, 2), attention_resolutions=(7,))
  return config
