"""TFDS builders (digits, mnist_split), IDX parsing, load_dataset, batching and input checks."""
import gzip
import struct

import numpy as np
import pytest
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits

from gen_jax import data as data_lib
from gen_jax.data import digits, idx, mnist_split
from gen_jax.data.spec import DataSpec, Dataset

MNIST_DIR = mnist_split.DEFAULT_DIR


def _read_split(builder, split):
  source = builder.as_data_source(split=split)
  examples = source.__getitems__(list(range(len(source))))
  return {k: np.stack([np.asarray(e[k]) for e in examples]) for k in ("image", "label", "index")}


def _build(builder_cls, data_dir, **kwargs):
  builder = builder_cls(data_dir=str(data_dir), **kwargs)
  builder.download_and_prepare(file_format="array_record")
  return builder


def _write_idx(path, array, compress=False):
  header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
  raw = header + np.ascontiguousarray(array, np.uint8).tobytes()
  with open(path, "wb") as f:
    f.write(gzip.compress(raw) if compress else raw)


# --- digits -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_builder(tfds_data_dir):
  return _build(digits.Digits, tfds_data_dir)


def test_digits_builder_splits_match_sklearn(digits_builder):
  train, test = _read_split(digits_builder, "train"), _read_split(digits_builder, "test")
  assert len(train["index"]) == 1500 and len(test["index"]) == 297
  assert not set(train["index"]) & set(test["index"])
  assert sorted(np.concatenate([train["index"], test["index"]])) == list(range(1797))
  ref = load_digits()
  for split in (train, test):
    assert split["image"].shape[1:] == (8, 8, 1) and split["image"].dtype == np.uint8
    np.testing.assert_array_equal(split["image"][..., 0], ref.images[split["index"]])
    np.testing.assert_array_equal(split["label"], ref.target[split["index"]])
  assert max(train["image"].max(), test["image"].max()) == 16
  # The documented split: the first 1500 of default_rng(0).permutation(1797).
  np.testing.assert_array_equal(np.sort(train["index"]),
                                np.sort(np.random.default_rng(0).permutation(1797)[:1500]))


def test_digits_builder_is_deterministic(digits_builder, tmp_path):
  other = _build(digits.Digits, tmp_path)
  for split in ("train", "test"):
    a, b = _read_split(digits_builder, split), _read_split(other, split)
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def test_load_dataset_digits(digits_builder, tfds_data_dir):
  del digits_builder  # prepared
  train = data_lib.load_dataset("digits", "train", tfds_data_dir)
  test = data_lib.load_dataset("digits", "test", tfds_data_dir)
  assert train.spec == DataSpec("digits", (8, 8, 1), 17, "image") and hash(train.spec)
  assert (len(train), len(test)) == (1500, 297)
  assert train.data.dtype == np.uint8 and train.labels.dtype == np.int64
  # TFDS split slicing goes through the same generic tfds.data_source path as 'mnist' or 'cifar10'.
  head = data_lib.load_dataset("digits", "train[:100]", tfds_data_dir)
  np.testing.assert_array_equal(head.data, train.data[:100])


# --- mnist_split ------------------------------------------------------------------------------

needs_mnist = pytest.mark.skipif(not mnist_split.has_mnist_test_files(MNIST_DIR),
                                 reason=f"MNIST IDX test files not in {MNIST_DIR}")


@needs_mnist
def test_mnist_split_on_official_test_images(tfds_data_dir, tmp_path, monkeypatch):
  monkeypatch.delenv(mnist_split.ENV_VAR, raising=False)  # found at <repo>/../shared/data/mnist
  train = data_lib.load_dataset("mnist_split", "train", tfds_data_dir)
  test = data_lib.load_dataset("mnist_split", "test", tfds_data_dir)
  assert (len(train), len(test)) == (8000, 2000)
  assert train.spec == DataSpec("mnist_split", (28, 28, 1), 256, "image")
  assert train.data.dtype == np.uint8 and train.data.shape[1:] == (28, 28, 1)
  official_images, official_labels = mnist_split.read_mnist(MNIST_DIR, "t10k")
  # Label histogram: both splits together are the official one; each split within 1.5% per class.
  hist = lambda y: np.bincount(y, minlength=10)
  np.testing.assert_array_equal(hist(train.labels) + hist(test.labels), hist(official_labels))
  for split in (train, test):
    np.testing.assert_allclose(hist(split.labels) / len(split), hist(official_labels) / 10_000, atol=0.015)
  # Examples are the official ones at their recorded index; the split is not by index halves.
  builder = tfds.builder("mnist_split", data_dir=tfds_data_dir)
  got = _read_split(builder, "train")
  np.testing.assert_array_equal(got["image"], official_images[got["index"]])
  np.testing.assert_array_equal(got["label"], official_labels[got["index"]])
  assert 0.47 < np.mean(got["index"] < 5000) < 0.53
  # Deterministic: a second build (folder passed explicitly) gives the same records in order.
  again = _read_split(_build(mnist_split.MnistSplit, tmp_path, mnist_dir=MNIST_DIR), "train")
  for key in got:
    np.testing.assert_array_equal(got[key], again[key])


def test_mnist_split_small_folder_with_train_files(tmp_path):
  folder = tmp_path / "mnist"
  folder.mkdir()
  rng = np.random.default_rng(0)
  test_images = rng.integers(0, 256, (50, 28, 28))
  _write_idx(folder / "t10k-images-idx3-ubyte.gz", test_images, compress=True)
  _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(50) % 10, compress=True)
  _write_idx(folder / "train-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28)))  # raw
  _write_idx(folder / "train-labels-idx1-ubyte", np.arange(20) % 10)
  builder = _build(mnist_split.MnistSplit, tmp_path / "tfds", mnist_dir=folder)
  sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
  assert sizes == {"train": 40, "test": 10, "official_train": 20}
  got = _read_split(builder, "test")
  np.testing.assert_array_equal(got["image"][..., 0], test_images[got["index"]])


def test_mnist_dir_discovery(tmp_path, monkeypatch):
  folder = tmp_path / "mnist"
  folder.mkdir()
  _write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((2, 28, 28)))
  _write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros((2,)))
  monkeypatch.setenv(mnist_split.ENV_VAR, str(folder))
  assert mnist_split.find_mnist_dir() == folder
  monkeypatch.setenv(mnist_split.ENV_VAR, str(tmp_path / "empty"))
  monkeypatch.setattr(mnist_split, "DEFAULT_DIR", tmp_path / "nowhere")
  with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.*GEN_JAX_MNIST_DIR"):
    mnist_split.find_mnist_dir()


def test_idx_parser_rejects_truncated_and_wrong_files(tmp_path):
  images = np.random.default_rng(0).integers(0, 256, (5, 28, 28))
  _write_idx(tmp_path / "ok", images)
  np.testing.assert_array_equal(idx.read_idx(tmp_path / "ok", idx.IMAGES_MAGIC), images)
  raw = (tmp_path / "ok").read_bytes()
  (tmp_path / "short").write_bytes(raw[:-100])
  with pytest.raises(ValueError, match="truncated.*expected 3936"):
    idx.read_idx(tmp_path / "short", idx.IMAGES_MAGIC)
  (tmp_path / "short.gz").write_bytes(gzip.compress(raw)[:-30])
  with pytest.raises(ValueError, match="truncated gzip"):
    idx.read_idx(tmp_path / "short.gz")
  with pytest.raises(ValueError, match="expected 0x00000801"):
    idx.read_idx(tmp_path / "ok", idx.LABELS_MAGIC)
  (tmp_path / "junk").write_bytes(b"\x89PNG....")
  with pytest.raises(ValueError, match="not an IDX file"):
    idx.read_idx(tmp_path / "junk")


@needs_mnist
def test_truncated_official_file_raises_clear_error(tmp_path):
  folder = tmp_path / "mnist"
  folder.mkdir()
  raw = gzip.decompress((MNIST_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())
  (folder / "t10k-images-idx3-ubyte").write_bytes(raw[: len(raw) // 2])
  (folder / "t10k-labels-idx1-ubyte.gz").write_bytes((MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes())
  with pytest.raises(ValueError, match="t10k-images-idx3-ubyte is truncated"):
    mnist_split.read_mnist(folder, "t10k")


# --- load_dataset and input checks -------------------------------------------------------------


def test_unknown_names_list_the_known_ones(tmp_path):
  with pytest.raises(ValueError, match=r"'digits', 'mnist_split', 'toy2d/two_moons'"):
    data_lib.load_dataset("no_such_dataset", "train", str(tmp_path))
  with pytest.raises(ValueError, match="toy2d/rings"):
    data_lib.load_dataset("toy2d/ring", "train")


def test_bad_images_raise_naming_the_expected_value():
  spec = DataSpec("digits", (8, 8, 1), 17, "image")
  with pytest.raises(ValueError, match="uint8, got float32"):
    Dataset(np.zeros((3, 8, 8, 1), np.float32), None, spec)
  with pytest.raises(ValueError, match=r"num_levels=17\) must lie in \[0, 16\]"):
    Dataset(np.full((3, 8, 8, 1), 17, np.uint8), None, spec)
  with pytest.raises(ValueError, match="rank 4"):
    Dataset(np.zeros((3, 8, 8), np.uint8), None, spec)
  with pytest.raises(ValueError, match=r"\('batch', 8, 8, 1\)"):
    Dataset(np.zeros((3, 8, 8, 3), np.uint8), None, spec)
  with pytest.raises(ValueError, match="labels must have shape \\(3,\\)"):
    Dataset(np.zeros((3, 8, 8, 1), np.uint8), np.zeros(4, np.int64), spec)
  with pytest.raises(ValueError, match="'image' or 'vector'"):
    DataSpec("x", (2,), None, "points")
  with pytest.raises(ValueError, match="float32, got float64"):
    Dataset(np.zeros((3, 2)), None, DataSpec("toy2d/rings", (2,), None, "vector"))


# --- batching ---------------------------------------------------------------------------------


def test_batch_indices_epochs_are_permutations_and_resumable():
  n, b, seed = 37, 8, 3
  steps = 5 * n // b + 2
  stream = np.concatenate([data_lib.batch_indices(s, b, n, seed) for s in range(steps)])
  assert stream.dtype == np.int64
  epochs = [stream[e * n:(e + 1) * n] for e in range(5)]
  for perm in epochs:
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))
  assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch
  # Pure function of (seed, step): recomputed in any order (a resumed run) gives the same batches.
  for s in [steps - 1, 7, 0, 4]:
    np.testing.assert_array_equal(data_lib.batch_indices(s, b, n, seed), stream[s * b:(s + 1) * b])
  assert not np.array_equal(data_lib.batch_indices(0, b, n, seed + 1), stream[:b])
  # A batch larger than the dataset spans epochs, each its own permutation.
  big = data_lib.batch_indices(1, 2 * n, n, seed)
  np.testing.assert_array_equal(np.sort(big[:n]), np.arange(n))
  with pytest.raises(ValueError, match="non-negative"):
    data_lib.batch_indices(-1, b, n, seed)


def test_padded_batches_cover_every_example_once():
  x = np.arange(10 * 3, dtype=np.uint8).reshape(10, 3)
  labels = np.arange(10)
  batches = list(data_lib.padded_batches({"x": x, "y": labels}, 4))
  assert len(batches) == 3
  assert all(batch["x"].shape == (4, 3) and mask.shape == (4,) for batch, mask in batches)
  mask = np.concatenate([m for _, m in batches])
  np.testing.assert_array_equal(mask, [1] * 10 + [0] * 2)
  kept = np.concatenate([batch["x"] for batch, _ in batches])[mask > 0]
  np.testing.assert_array_equal(kept, x)
  assert kept.dtype == np.uint8
  np.testing.assert_array_equal(np.concatenate([bt["y"] for bt, _ in batches])[mask > 0], labels)
  exact = list(data_lib.padded_batches(x, 5))
  assert len(exact) == 2 and all(m.all() for _, m in exact)
