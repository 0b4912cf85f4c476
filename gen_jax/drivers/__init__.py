"""The driver layer: what runs the library end to end, above the engine and the evaluation module.

  loop        train_and_evaluate(config, workdir): train, evaluate, sample, checkpoint, resume
  run         load_run(workdir) -> Run: a finished (or running) run, ready for a notebook
  scoring     run_likelihood, load_domain_classifier, feature_network_for: scoring loaded runs

Command lines stand beside it in `gen_jax.cli`; `experiments/` holds the configs and their CLIs.
"""
