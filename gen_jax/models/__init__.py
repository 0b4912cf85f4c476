"""Model families. `build_model` / `build_task` turn a config into a Flax module and its `Task`."""
from gen_jax.models.registry import MODELS, build_model, build_task
