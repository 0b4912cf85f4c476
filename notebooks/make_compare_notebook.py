"""Writes notebooks/compare.ipynb from the cells below and executes it in place (stored with outputs).

  python notebooks/make_compare_notebook.py

It reads a finished report directory of `python -m experiments.compare` (by default the digits report
stored in docs/results/compare_digits/: report.json and the figures) and trains nothing: a few seconds.
"""
import os

from notebook_tools import REPO, execute_and_write

PATH = os.path.join(REPO, "notebooks", "compare.ipynb")

cells = [
    ("md", r"""# Every family on every property, side by side

`python -m experiments.compare --data=digits --workdir=DIR` trains one model per family (a flow, a VAE,
diffusion, a GAN, an autoregressive model and an energy-based model) under one budget, or loads finished
runs with `--runs`, measures each through the one data contract (`Run.sample`, `Run.log_likelihood`,
and `Run.encode` / `decode` / `denoise` where a family has them) and writes `report.md`, `report.json`
and figures into DIR. This notebook reads such a directory: set `REPORT_DIR` to your own. What each
measure means, and its paper, is in `experiments/compare.py`'s docstring."""),
    ("code", """import json
import os

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

REPORT_DIR = "docs/results/compare_digits"  # a finished `experiments.compare` directory
with open(os.path.join(REPORT_DIR, "report.json")) as f:
    report = json.load(f)
rows = report["rows"]
print(report["data"], "-", ", ".join(f"{family}: {row['model']}" for family, row in rows.items()))"""),
    ("md", """## The tables
`report.md` holds one table per property, families as rows and units in the headers."""),
    ("code", """with open(os.path.join(REPORT_DIR, "report.md")) as f:
    display(Markdown(f.read()))"""),
    ("md", """## The trade-offs in one figure
Each panel is one property; a family without the property (no likelihood, no latent space) has no bar.
Sampling speed is on a log scale."""),
    ("code", """panels = [("bits_per_dim", "test bits/dim (lower is better)", False),
          ("fid_mean", "FID, domain features (lower)", False),
          ("recall", "recall (higher)", False),
          ("samples_per_sec", "samples / s (higher)", True),
          ("auroc MNIST 8x8", "outlier AUROC, MNIST 8x8 (higher)", False),
          ("probe_accuracy", "linear probe on latents (higher)", False)]
families = list(rows)
figure, axes = plt.subplots(2, 3, figsize=(12, 6))
for ax, (key, title, log) in zip(axes.ravel(), panels):
    values = [rows[f].get(key) for f in families]
    shown = [i for i, v in enumerate(values) if isinstance(v, (int, float))]
    ax.bar([families[i] for i in shown], [values[i] for i in shown], color="tab:blue")
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", rotation=45, labelsize=8)
    if log:
        ax.set_yscale("log")
figure.tight_layout()
plt.show()"""),
    ("md", """## Samples, interpolations and traversals
One seed's samples per family; for the families with a latent space, interpolations between test
images' codes (between prior draws for a GAN, which has no encoder) and traversals of the 8 dimensions
the codes vary most along."""),
    ("code", """def show(names, title):
    names = [n for n in names if os.path.exists(os.path.join(REPORT_DIR, n))]
    figure, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4))
    for ax, name in zip(np.atleast_1d(axes), names):
        ax.imshow(plt.imread(os.path.join(REPORT_DIR, name)), cmap="gray")
        ax.set_title(name.rsplit("_", 1)[1][:-4], fontsize=10)
        ax.axis("off")
    figure.suptitle(title)
    plt.show()

show([f"samples_{f}.png" for f in families], "samples")
show([f"interpolations_{f}.png" for f in families], "interpolations (rows: pairs)")
show([f"traversals_{f}.png" for f in families], "traversals (rows: dimensions, -2 to +2 s.d.)")"""),
    ("md", """## Diffusion: sample quality against network evaluations
FID of DDIM (deterministic) and ancestral sampling at 10 to 250 steps, and the run's own sampler."""),
    ("code", """for family, row in rows.items():
    for point in row.get("fid_against_nfe") or []:
        print(f"{family}: eta {point['eta']:.0f}, {point['nfe']:4d} evaluations: FID {point['fid']:.1f}")
    if row.get("fid_against_nfe"):
        print(f"{family}: its own sampler, {row['network_evaluations']} evaluations: FID {row['fid_mean']:.1f}")"""),
]


if __name__ == "__main__":
  execute_and_write(cells, PATH)
