"""Read an image split of any TFDS dataset through `tfds.data_source` (no tf.data): into memory, or by record.

`tfds.data_source` gives random access to array_record files, so this needs no tensorflow for
reading: `tfds.features.Tensor` images decode with numpy, `tfds.features.Image` images (mnist,
cifar10, ...) with PIL. *Building* a dataset whose features are `tfds.features.Image` (e.g. the
first `tfds.data_source('mnist', ...)` on a machine) needs tensorflow to encode the PNGs; a folder
prepared elsewhere in array_record format (`download_and_prepare(file_format='array_record')`) can
be read here. The local builders `digits` and `mnist_split` go through this same path.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np
import tensorflow_datasets as tfds

from gen_jax.data.records import RecordColumn, RecordReader

# Refuse to read more than this into memory; larger splits are read record by record (`records.py`).
MAX_IN_MEMORY_BYTES = 4 * 2**30
_CHUNK = 4096


def _image_and_label_keys(info: tfds.core.DatasetInfo) -> tuple[str, str | None]:
  features = info.features
  if info.supervised_keys and isinstance(info.supervised_keys[0], str):
    image_key, label_key = info.supervised_keys[:2]
  elif "image" in features:
    image_key, label_key = "image", ("label" if "label" in features else None)
  else:
    raise ValueError(f"TFDS dataset {info.name} has no image feature: features are "
                     f"{list(features.keys())}, expected supervised_keys ('image', 'label') or 'image'")
  return image_key, label_key


def read_image_split(name: str, split: str, data_dir: str | None = None,
                     builder_kwargs: dict[str, Any] | None = None,
                     download_and_prepare_kwargs: dict[str, Any] | None = None,
                     in_memory: bool | None = True,
                     ) -> tuple[np.ndarray | RecordColumn, np.ndarray | RecordColumn | None, tfds.core.DatasetInfo]:
  """Reads split `split` of TFDS dataset `name` fully into memory, or opens it to be read record by record.

  Args:
    name: TFDS name, e.g. 'mnist', 'cifar10', 'digits' (with optional '/config' or ':version').
    split: TFDS split, slicing allowed ('train', 'test[:10%]', ...).
    data_dir: TFDS data dir; None for TFDS's default ($TFDS_DATA_DIR or ~/tensorflow_datasets).
    builder_kwargs: passed to the builder's constructor.
    download_and_prepare_kwargs: passed to `download_and_prepare` (e.g. a `download_config`).
    in_memory: True: read every record now (at most MAX_IN_MEMORY_BYTES of images); False: return
      `records.RecordColumn`s that read only the records indexed (`records.py`); None: records when
      the images exceed MAX_IN_MEMORY_BYTES or the job has many processes (each reads only its rows).

  Returns:
    (images uint8 [N, H, W, C], labels int64 [N] or None, the dataset's `DatasetInfo`). The images
    are not range-checked here; `load_dataset` does that with the dataset's number of levels.
  """
  # tfds.data_source picks array_record only when neither data_dir nor builder_kwargs is given.
  builder_kwargs = {"file_format": "array_record", **(builder_kwargs or {})}
  source = tfds.data_source(name, split=split, data_dir=data_dir, builder_kwargs=builder_kwargs,
                            download_and_prepare_kwargs=download_and_prepare_kwargs)
  info = source.dataset_info
  image_key, label_key = _image_and_label_keys(info)
  feature = info.features[image_key]
  shape = tuple(feature.shape)
  if len(shape) != 3 or any(d is None for d in shape) or np.dtype(feature.np_dtype) != np.uint8:
    raise ValueError(f"TFDS dataset {name} feature {image_key!r} has shape {shape} and dtype "
                     f"{feature.np_dtype}, expected a fixed (H, W, C) uint8 image")
  num = len(source)
  nbytes = num * math.prod(shape)
  if in_memory is None:
    in_memory = nbytes <= MAX_IN_MEMORY_BYTES and jax.process_count() == 1
  if not in_memory:
    reader = RecordReader(source)
    return (RecordColumn(reader, image_key, shape, np.uint8),
            RecordColumn(reader, label_key, (), np.int64) if label_key else None, info)
  if nbytes > MAX_IN_MEMORY_BYTES:
    raise ValueError(f"{name}[{split}] holds {nbytes / 2**30:.1f} GiB of images, more than "
                     f"MAX_IN_MEMORY_BYTES = {MAX_IN_MEMORY_BYTES / 2**30:.1f} GiB; read it record by record "
                     "with in_memory=False (or None)")
  images = np.empty((num,) + shape, np.uint8)
  labels = np.empty((num,), np.int64) if label_key else None
  for start in range(0, num, _CHUNK):
    keys = list(range(start, min(start + _CHUNK, num)))
    examples = source.__getitems__(keys)
    images[keys[0]:keys[-1] + 1] = np.stack([np.asarray(e[image_key]) for e in examples])
    if labels is not None:
      labels[keys[0]:keys[-1] + 1] = [int(e[label_key]) for e in examples]
  return images, labels, info
