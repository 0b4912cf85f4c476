"""Flow matching on 2-D toy data with a time-conditioned MLP velocity, sampled by the adaptive dopri5 solver.
`--config=experiments/configs/flow_matching_toy2d.py:DENSITY[,cpu][,ot]` (ot: minibatch-OT couplings)."""
import ml_collections

from experiments.configs.base import toy2d_config


def get_config(arg: str | None = None):
  variants = [v for v in (arg or "").split(",") if v]
  config, _ = toy2d_config(",".join(v for v in variants if v != "ot"))
  config.model.name = "flow_matching"
  config.model.network = "mlp"
  config.model.hidden_sizes = (256, 256, 256)
  config.model.embedding_dim = 64
  config.model.sigma = 0.0
  config.flow_matching = ml_collections.ConfigDict({
      "coupling": "minibatch_ot" if "ot" in variants else "independent", "sampler": "dopri5", "sample_steps": None})
  return config
