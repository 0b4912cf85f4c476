"""experiments.compare: every family trained under one budget, measured through one contract, one report."""
import json
import os

import numpy as np
import pytest

from experiments import compare

TINY = {  # the smallest networks of each family's digits config
    "classifier": {"model.channels": (8, 8), "model.feature_dim": 16},
    "flow": {"model.hidden": 8, "model.num_couplings_per_scale": 1},
    "vae": {"model.latent_dim": 4, "model.channels": (8, 8)},
    # the one-level U-Net without attention: it compiles in many programs (train, eval, samplers, figures,
    # DDIM encode / decode, ELBO, the FID-vs-NFE samplers), the largest share of this test's time on CPU
    "diffusion": {"model.channels": 8, "model.num_groups": 4, "model.num_res_blocks": 1,
                  "model.channel_multipliers": (1,), "model.attention_resolutions": (),
                  "model.num_timesteps": 10, "diffusion.sample_steps": 3},
    "gan": {"model.channels": 8, "model.latent_dim": 8},
    "autoregressive": {"model.channels": 8, "model.num_layers": 2, "model.head_channels": 16},
    "energy": {"model.channels": (8,), "model.langevin_steps": 3, "ebm.buffer_size": 64, "ebm.sample_steps": 3},
}


@pytest.mark.slow
def test_every_family_on_digits_in_one_report(tmp_path, quick_compile):
  rows = compare.compare("digits", str(tmp_path), examples=32, batch_size=16, num_samples=40, seeds=(0, 1),
                         overrides=TINY, fid_nfe_steps=(2, 9, 10))
  assert list(rows) == ["flow", "vae", "diffusion", "gan", "autoregressive", "energy"]
  for family, row in rows.items():
    assert row["examples"] == 32 and row["steps"] == 2, family  # one budget
    assert row["train_flops"] > 0 and row["samples_per_sec"] > 0, family
    assert np.isfinite(row["fid_mean"]) and row["fid_mean"] > 0 and row["fid_std"] >= 0, family
    assert 0 <= row["recall"] <= 1 and 0 <= row["coverage"] <= 1 and 0 <= row["authenticity"] <= 1, family
    assert np.isfinite(row["data_copying"]), family
    assert 0 <= row["auroc uniform noise"] <= 1 and 0 <= row["auroc MNIST 8x8"] <= 1, family
    assert os.path.getsize(tmp_path / f"samples_{family}.png") > 0
  assert rows["diffusion"]["network_evaluations"] == 3 and rows["autoregressive"]["network_evaluations"] == 64
  assert rows["flow"]["network_evaluations"] == 1 and rows["energy"]["network_evaluations"] == 3
  assert rows["flow"]["estimator"] == "exact" and rows["vae"]["estimator"] == "elbo"
  assert rows["gan"]["estimator"].startswith("none") and "bits_per_dim" not in rows["gan"]
  assert rows["autoregressive"]["bits_per_dim"] > 0 and "typicality auroc rotated 90" in rows["flow"]
  # Latent spaces: every family with one has a path length; the encoders round-trip (a flow exactly).
  for family in ("flow", "vae", "diffusion", "gan"):
    assert rows[family]["path_length"] > 0 and rows[family]["path_length_ratio"] > 0.95, family
    for figure in ("interpolations", "traversals"):
      assert os.path.getsize(tmp_path / f"{figure}_{family}.png") > 0
  for family in ("flow", "vae", "diffusion"):
    assert 0 <= rows[family]["probe_accuracy"] <= 1 and -1 <= rows[family]["kmeans_ari"] <= 1, family
    assert 0 <= rows[family]["active_dims"] <= rows[family]["latent_dims"], family
  assert rows["flow"]["round_trip_rmse"] < 1e-2 and rows["flow"]["latent_dims"] == 64
  assert rows["vae"]["latent_dims"] == 4 and "round_trip_rmse" not in rows["gan"]
  assert "path_length" not in rows["autoregressive"] and "path_length" not in rows["energy"]
  assert rows["diffusion"]["denoise_rmse"] > 0 and rows["vae"]["noisy_rmse"] == pytest.approx(2.0, rel=0.1)
  assert "denoise_rmse" not in rows["flow"]
  # Compression: the families with a coder round-trip the test split near their bits/dim.
  assert rows["autoregressive"]["coder"] == "autoregressive" and rows["vae"]["coder"] == "bits_back"
  for family in ("autoregressive", "vae"):
    assert rows[family]["coded_exact"] == "yes", family
    assert abs(rows[family]["coded_net_bits_per_dim"] - rows[family]["bits_per_dim"]) < 0.1, family
  assert "coder" not in rows["flow"] and "coder" not in rows["gan"]
  # FID against NFE: the steps the 9-transition chain has, for both samplers.
  assert [(p["eta"], p["nfe"]) for p in rows["diffusion"]["fid_against_nfe"]] == [(0.0, 3), (0.0, 10), (1.0, 3),
                                                                                  (1.0, 10)]
  assert os.path.getsize(tmp_path / "fid_against_nfe_diffusion.png") > 0 and not rows["flow"]["fid_against_nfe"]
  assert os.path.getsize(tmp_path / "roc_curves.png") > 0
  report = (tmp_path / "report.md").read_text()
  for title in ("## Sampling", "## Likelihood", "## Memorization", "## Outlier detection", "## Latent space",
                "## Latent structure", "## Denoising", "## Compression", "## FID against network evaluations: diffusion",
                "Not yet measured"):
    assert title in report
  assert "| gan | gan | " in report and "| none |" in report
  assert json.loads((tmp_path / "report.json").read_text())["rows"]["vae"]["estimator"] == "elbo"
  # The same measures from a finished run: nothing is trained again.
  again = compare.compare("digits", str(tmp_path / "again"), classifier_dir=str(tmp_path / "classifier"),
                          runs={"vae": str(tmp_path / "vae")}, num_samples=40, seeds=(0, 1), families=("vae",))
  assert list(again) == ["vae"] and again["vae"]["fid_mean"] == pytest.approx(rows["vae"]["fid_mean"], rel=1e-4)
  assert not os.path.exists(tmp_path / "again" / "vae")


def test_arguments_are_checked_before_any_training(tmp_path):
  with pytest.raises(ValueError, match="unknown families \\['glow'\\]"):
    compare.compare("digits", str(tmp_path), runs={"glow": str(tmp_path)})
  with pytest.raises(FileNotFoundError, match="not a gen_jax run"):
    compare.compare("digits", str(tmp_path), runs={"flow": str(tmp_path / "missing")})
  with pytest.raises(ValueError, match="unknown --data"):
    compare.compare("cifar10", str(tmp_path))
  assert not os.listdir(tmp_path)
