"""experiments.fid_vs_nfe: every sampler's FID against its network evaluations, and guidance's price."""
import json
import os

import numpy as np
import pytest

from experiments import fid_vs_nfe

# The smallest U-Net (one level, no attention): each run compiles its network in many programs (train,
# eval, sampler, figures, every sampler and NFE measured), which is this test's time on CPU.
ONE_LEVEL = {"model.channels": 8, "model.num_groups": 4, "model.num_res_blocks": 1, "model.channel_multipliers": (1,),
             "model.attention_resolutions": ()}
FM_TINY = {**ONE_LEVEL, "flow_matching.sample_steps": 2}
TINY = {
    "classifier": {"model.channels": (8, 8), "model.feature_dim": 16},
    "diffusion": {**ONE_LEVEL, "model.num_timesteps": 10, "diffusion.sample_steps": 3},
    "flow_matching": FM_TINY, "flow_matching_ot": FM_TINY, "flow_matching_conditional": FM_TINY,
}


@pytest.mark.slow
def test_every_sampler_on_digits_in_one_report(tmp_path, quick_compile):
  report = fid_vs_nfe.fid_vs_nfe("digits", str(tmp_path), examples=32, batch_size=16, num_samples=30, nfe=(4,),
                                 tolerances=(1e-1,), scales=(1.0, 3.0), overrides=TINY, log=lambda _: None)
  for name in ("classifier", "diffusion", "flow_matching", "flow_matching_ot", "flow_matching_conditional"):
    assert os.path.exists(tmp_path / name / "config.json"), name
  assert report["runs"]["flow_matching_ot"]["config"] == "flow_matching_digits:cpu,ot"
  assert report["runs"]["diffusion"]["examples"] == 32
  curves = report["fid_against_nfe"]
  assert all(np.isfinite(p["fid"]) and p["fid"] >= 0 for p in curves)
  # The 9-transition chain: NFE 4 (3 steps + the decoder; EDM Heun 2 steps of 2, the last Euler, + the
  # decoder). One NFE target only: each target compiles every sampler again (the test's cost).
  diffusion = [(p["sampler"], p["steps"], p["nfe"]) for p in curves if p["run"] == "diffusion"]
  assert diffusion == [("DDPM ancestral", 3, 4), ("DDIM", 3, 4), ("DPM-Solver++(2M)", 3, 4), ("EDM Heun", 2, 4)]
  for run in ("flow_matching", "flow_matching_ot"):
    points = [(p["sampler"], p["steps"], p["nfe"]) for p in curves if p["run"] == run]
    assert points[:2] == [("euler", 4, 4), ("midpoint", 2, 4)], run
    dopri = [p for p in curves if p["run"] == run and p["sampler"] == "dopri5"]
    assert len(dopri) == 1 and dopri[0]["tolerance"] == 0.1 and dopri[0]["steps"] is None
    # FSAL: 2 startup evaluations + 6 per tried step
    assert dopri[0]["nfe"] == 2 + 6 * (dopri[0]["accepted_steps"] + dopri[0]["rejected_steps"]) > 2
  guidance = report["guidance"]
  assert [p["scale"] for p in guidance] == [1.0, 3.0]
  assert [p["nfe"] for p in guidance] == [4, 8]  # midpoint, 2 steps; the doubled batch where s != 1
  assert all(0 <= p["accuracy"] <= 1 and np.isfinite(p["fid"]) for p in guidance)
  assert 0 <= report["classifier_test_accuracy"] <= 1
  for figure in ("fid_against_nfe.png", "guidance.png", "guidance_s1.png", "guidance_s3.png"):
    assert os.path.getsize(tmp_path / figure) > 0, figure
  markdown = (tmp_path / "report.md").read_text()
  for title in ("## diffusion (ddpm_digits:cpu)", "## flow_matching_ot", "| FID at NFE | 4 |",
                "## Classifier-free guidance", "| EDM Heun | 2 |"):
    assert title in markdown, title
  assert json.loads((tmp_path / "report.json").read_text())["guidance"][0]["scale"] == 1.0


def test_arguments_are_checked_before_any_training(tmp_path):
  with pytest.raises(ValueError, match="unknown runs \\['glow'\\]"):
    fid_vs_nfe.fid_vs_nfe("digits", str(tmp_path), runs={"glow": str(tmp_path)})
  with pytest.raises(FileNotFoundError, match="not a gen_jax run"):
    fid_vs_nfe.fid_vs_nfe("digits", str(tmp_path), runs={"diffusion": str(tmp_path / "missing")})
  with pytest.raises(ValueError, match="unknown --data"):
    fid_vs_nfe.fid_vs_nfe("cifar10", str(tmp_path))
  assert not os.listdir(tmp_path)
