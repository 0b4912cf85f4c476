"""Reader for the IDX file format of MNIST (LeCun et al., http://yann.lecun.com/exdb/mnist/).

An IDX file is a big-endian header followed by a dense C-ordered array:

  bytes 0-1   0x00 0x00
  byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
  byte  3     number of dimensions d
  4 * d bytes each dimension's size, big-endian uint32
  the data    prod(sizes) elements, big-endian

MNIST images are `...-idx3-ubyte` (magic 0x00000803 = 2051: uint8, 3 dims [N, 28, 28]) and labels
`...-idx1-ubyte` (magic 0x00000801 = 2049: uint8, 1 dim [N]). Files may be gzip-compressed; this is
detected from the content (gzip magic 0x1f 0x8b), not from the file name.
"""
from __future__ import annotations

import gzip
import os

import numpy as np

IMAGES_MAGIC = 0x00000803  # uint8, 3 dims
LABELS_MAGIC = 0x00000801  # uint8, 1 dim

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: str | os.PathLike) -> bytes:
  with open(path, "rb") as f:
    raw = f.read()
  if raw[:2] == b"\x1f\x8b":
    try:
      return gzip.decompress(raw)
    except (EOFError, OSError) as e:  # truncated or corrupt gzip stream
      raise ValueError(f"IDX file {path} is a corrupt or truncated gzip file: {e}") from e
  return raw


def parse_idx(raw: bytes, expected_magic: int | None = None, source: str = "<bytes>") -> np.ndarray:
  """Parses the bytes of an (uncompressed) IDX file into a numpy array (native byte order).

  Args:
    raw: the file's bytes.
    expected_magic: the 4-byte magic number as an int (e.g. `IMAGES_MAGIC`), or None to accept any
      valid IDX header.
    source: where the bytes came from, for error messages.

  Returns:
    The array, shape given by the header, dtype given by the type byte (native endianness).

  Raises:
    ValueError: the header is not IDX, the magic differs from `expected_magic`, or the file size
      does not equal header + prod(dims) * itemsize (truncated or trailing bytes).
  """
  if len(raw) < 4:
    raise ValueError(f"IDX file {source} is too short ({len(raw)} bytes) to hold a 4-byte magic number")
  magic = int.from_bytes(raw[:4], "big")
  if expected_magic is not None and magic != expected_magic:
    raise ValueError(f"IDX file {source} has magic number 0x{magic:08x}, expected 0x{expected_magic:08x}")
  if raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
    raise ValueError(f"{source} is not an IDX file: magic 0x{magic:08x} must be 0x0000TTDD with type "
                     f"TT in {sorted(hex(t) for t in _DTYPES)}")
  ndim = raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise ValueError(f"IDX file {source} is truncated: {len(raw)} bytes, header alone needs {header}")
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  dtype = _DTYPES[raw[2]]
  expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(raw) != expected:
    what = "truncated" if len(raw) < expected else "longer than its header says"
    raise ValueError(f"IDX file {source} is {what}: {len(raw)} bytes, expected {expected} for shape "
                     f"{shape} of {dtype}")
  data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
  return data.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
  """Reads an IDX file (raw or gzip) into a numpy array; see `parse_idx` for the checks."""
  return parse_idx(_read_bytes(path), expected_magic=expected_magic, source=str(path))
