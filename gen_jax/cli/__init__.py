"""Command lines, one per module (`python -m gen_jax.cli.NAME --help`); the driver layer.

  fid          FID between two image folders or pytorch-fid .npz statistics
  metrics      every sample-quality metric between two image folders
  likelihood   a run's test log-likelihood, estimator named (nats, bits/dim)
  score_run    a run's likelihood and sample quality as one markdown row
  ebm_report   an energy-based model's NLL (grid or AIS), OOD AUROC and sample figure

Training runs from `python -m experiments.main --config=...`.
"""
