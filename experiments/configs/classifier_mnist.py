"""The domain feature network of the MNIST split: a small conv classifier on its labels.

`--config=experiments/configs/classifier_mnist.py[:cpu]`; `gen_jax.eval.domain_features` loads the run.
"""
import ml_collections

from experiments.configs.base import mnist_config


def get_config(arg: str | None = None):
  config, variants = mnist_config(arg)
  config.model.name = "classifier"
  config.model.num_classes = 10
  config.model.channels = (16, 32, 64)  # 28x28 -> 14x14 -> 7x7
  config.model.convs_per_stage = 2
  config.model.feature_dim = 128
  config.optim.learning_rate = 2e-3
  config.optim.weight_decay = 1e-4
  config.classifier = ml_collections.ConfigDict()
  config.classifier.augment_shift = 2  # random translations of up to 2 pixels while training
  config.train.num_steps = 10_000
  if "cpu" in variants:  # about 2.5 minutes on 2 CPU cores
    config.train.batch_size = 64
    config.train.num_steps = 3000
  return config
