"""The domain feature network of the 8x8 digits: a small conv classifier on their labels.

`--config=experiments/configs/classifier_digits.py[:cpu]`; `gen_jax.eval.domain_features` loads the run.
"""
import ml_collections

from experiments.configs.base import digits_config


def get_config(arg: str | None = None):
  config, variants = digits_config(arg)
  config.model.name = "classifier"
  config.model.num_classes = 10
  config.model.channels = (32, 64)
  config.model.convs_per_stage = 2
  config.model.feature_dim = 128
  config.optim.learning_rate = 2e-3
  config.optim.weight_decay = 1e-4
  config.classifier = ml_collections.ConfigDict()
  config.classifier.augment_shift = 0  # pixels of random translation while training
  config.train.num_steps = 5000
  if "cpu" in variants:  # about 30 s on 2 CPU cores
    config.train.num_steps = 1500
  return config
