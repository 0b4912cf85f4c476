"""A TFDS split read record by record (`gen_jax.data.records`): the same values as in memory, only the
rows asked for read (one process's share of a global batch), values checked as they are read."""
import numpy as np
import pytest

from gen_jax.data import batch_indices, load_dataset
from gen_jax.data.records import RecordColumn, RecordReader
from gen_jax.data.spec import DataSpec, Dataset


@pytest.fixture(scope="module")
def digits():
  return load_dataset("digits", "train"), load_dataset("digits", "train", in_memory=False)


class CountingSource:
  """A data source that records every read."""

  def __init__(self, examples):
    self.examples, self.reads = examples, []

  def __len__(self):
    return len(self.examples)

  def __getitems__(self, keys):
    self.reads.append(list(keys))
    return [self.examples[k] for k in keys]


def test_records_hold_the_values_of_the_split_in_memory(digits):
  memory, records = digits
  assert isinstance(records.data, RecordColumn) and isinstance(records.labels, RecordColumn)
  assert records.data.shape == memory.data.shape and records.data.dtype == np.uint8 and len(records) == 1500
  indices = np.random.default_rng(0).integers(0, len(memory), 200)
  np.testing.assert_array_equal(records.data[indices], memory.data[indices])
  np.testing.assert_array_equal(records.labels[indices], memory.labels[indices])
  np.testing.assert_array_equal(records.data[7:300:3], memory.data[7:300:3])
  np.testing.assert_array_equal(records.data[-1], memory.data[-1])
  np.testing.assert_array_equal(records.labels.astype(np.int32)[indices], memory.labels[indices])
  assert records.labels.astype(np.int32)[indices].dtype == np.int32
  np.testing.assert_array_equal(np.asarray(records.data), memory.data)
  assert isinstance(load_dataset("digits", "test", in_memory=None).data, np.ndarray)  # one process, small: in memory


def test_each_process_reads_only_its_rows_of_a_batch_and_images_and_labels_once():
  examples = [{"image": np.full((2, 2, 1), i % 17, np.uint8), "label": i % 10} for i in range(50)]
  source = CountingSource(examples)
  reader = RecordReader(source)
  images, labels = RecordColumn(reader, "image", (2, 2, 1), np.uint8), RecordColumn(reader, "label", (), np.int64)
  batch = batch_indices(3, 8, 50, seed=0)
  for rows in (slice(0, 4), slice(4, 8)):  # the rows of process 0 and of process 1
    source.reads.clear()
    got_images, got_labels = images[batch[rows]], labels[batch[rows]]
    assert source.reads == [list(batch[rows])]  # those records only, read once for both columns
    np.testing.assert_array_equal(got_labels, batch[rows] % 10)
    np.testing.assert_array_equal(got_images[:, 0, 0, 0], batch[rows] % 17)


def test_values_are_checked_as_records_are_read():
  examples = [{"image": np.full((2, 2, 1), 3, np.uint8)} for _ in range(10)]
  examples[6] = {"image": np.full((2, 2, 1), 40, np.uint8)}  # beyond 17 levels
  column = RecordColumn(RecordReader(CountingSource(examples)), "image", (2, 2, 1), np.uint8)
  dataset = Dataset(data=column, labels=None, spec=DataSpec("fake", (2, 2, 1), 17, "image"))  # not read whole
  assert dataset.data[[0, 1, 9]].max() == 3
  with pytest.raises(ValueError, match=r"num_levels=17"):
    dataset.data[[5, 6]]
  with pytest.raises(ValueError, match=r"must have shape \('batch', 3, 3, 1\)"):  # shapes at once
    Dataset(data=column, labels=None, spec=DataSpec("fake", (3, 3, 1), 17, "image"))
  wide = RecordColumn(RecordReader(CountingSource([{"label": 300}])), "label", (), np.uint8)
  with pytest.raises(ValueError, match="do not fit uint8 exactly"):
    wide[[0]]


@pytest.mark.parametrize("index, message", [(np.asarray([0, 10]), r"must lie in \[-10, 10\)"),
                                            (np.asarray([0.5]), "integer array"),
                                            (np.zeros((2, 2), int), "1-D integer array")])
def test_bad_indices_are_refused(index, message):
  column = RecordColumn(RecordReader(CountingSource([{"label": 1}] * 10)), "label", (), np.int64)
  with pytest.raises(IndexError, match=message):
    column[index]
