"""Reads the tensors of PyTorch weight files without torch, and without running their code.

A `torch.save` file (or a TorchScript `torch.jit.save` file) is a zip archive: `<root>/data.pkl` is
a pickle whose tensors point, through pickle "persistent ids", at raw little-endian buffers
`<root>/data/<key>`. Files written before torch 1.6 use the legacy layout instead: five pickles in
a row (magic number, protocol, system info, the object, the storage keys) followed by each storage
as an int64 element count and its raw bytes.

Unpickling calls whatever global a pickle names, so a pickle can run arbitrary code (`os.system`).
`RestrictedUnpickler` allows only the globals that rebuild tensors and containers; every other
global raises `pickle.UnpicklingError` before anything is called. TorchScript modules
(`__torch__.*` classes) are rebuilt as inert attribute holders: their attributes are kept, their
code (stored as text in the archive) is never read.

What a file may claim is bounded before anything is allocated: a tensor's (size, stride, storage
offset) must address only elements inside its storage (non-negative strides and offset; for a
non-empty tensor, offset + sum((size_i - 1) * stride_i) < the storage's element count); a storage's
claimed size must equal the bytes of its record in the file (zip) or fit in what is left of the
file (legacy); and the storages read, and separately the arrays returned, may total at most
`max_bytes` (default `DEFAULT_MAX_BYTES`, 4 GiB). A 443-byte file cannot ask for terabytes.

Tensors whose strides overlap (stride 0, e.g. `torch.zeros(1).expand(1000)` saved as it is) address
only their storage and are legitimate: they are materialized, as torch.load would, by copying the
strided view into a contiguous array, and that copy counts against `max_bytes`.

`read_torch_weights(path, max_bytes)` returns the tensors as `{dotted.name: np.ndarray}`.
"""
import collections
import functools
import io
import os
import pickle
import zipfile

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
DEFAULT_MAX_BYTES = 4 << 30  # 4 GiB: FID Inception is 95 MB, the largest file this codebase reads.


class ScriptObject:
  """An inert stand-in for a TorchScript class (`__torch__.*`): holds its pickled attributes."""

  def __init__(self, *args):
    del args

  def __setstate__(self, state):
    if not isinstance(state, dict):
      raise pickle.UnpicklingError(f"expected a dict of attributes for a TorchScript object, got {type(state)}")
    self.__dict__.update(state)


def _script_class(module, name):
  return type(name, (ScriptObject,), {"__module__": module})


def _is_index(value):
  return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _rebuild_tensor(storage, storage_offset, size, stride, *unused, max_bytes):
  """torch._utils._rebuild_tensor_v2: a strided view into a flat storage (copied out by `_flatten`).

  Refuses, before any allocation, a layout that reaches outside the storage or a tensor of more
  than `max_bytes`; the view itself allocates nothing.
  """
  if not isinstance(storage, np.ndarray):
    raise pickle.UnpicklingError(f"a tensor must point at a storage, got {type(storage).__name__}")
  size, stride = tuple(size), tuple(stride)
  layout = f"offset {storage_offset!r}, size {size}, stride {stride}"
  if (len(size) != len(stride) or not _is_index(storage_offset) or not all(map(_is_index, size))
      or not all(map(_is_index, stride))):
    raise pickle.UnpicklingError(
        f"invalid tensor layout ({layout}): expected as many sizes as strides, all non-negative integers")
  numel = 1
  for n in size:
    numel *= n
  if numel:
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.size:
      raise pickle.UnpicklingError(
          f"tensor ({layout}) reaches element {last} but its storage has {storage.size}: "
          f"the file is truncated or corrupt")
  elif storage_offset > storage.size:
    raise pickle.UnpicklingError(f"empty tensor ({layout}) starts past its storage of {storage.size} elements")
  nbytes = numel * storage.dtype.itemsize
  if nbytes > max_bytes:
    raise pickle.UnpicklingError(
        f"tensor ({layout}) claims {nbytes} bytes, more than max_bytes={max_bytes} "
        f"(its storage holds {storage.nbytes} bytes)")
  itemsize = storage.dtype.itemsize
  return np.lib.stride_tricks.as_strided(
      storage[storage_offset:], shape=size, strides=tuple(s * itemsize for s in stride), writeable=False)


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
  del requires_grad, backward_hooks
  return data


def _build_intlist(values):
  return list(values)


_TENSOR_REBUILDERS = {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")}
_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.jit._pickle", "build_intlist"): _build_intlist,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class RestrictedUnpickler(pickle.Unpickler):
  """Unpickles tensors and containers only; any other global is refused (never called).

  Args:
    file: the pickle stream.
    load_storage: `(dtype, key, num_elements) -> 1-D np.ndarray` for a storage persistent id; it
      bounds what it allocates (see `_read_zip`, `_read_legacy`).
    max_bytes: the most bytes one tensor may claim (`read_torch_weights` also bounds their total).
  """

  def __init__(self, file, load_storage, max_bytes=DEFAULT_MAX_BYTES):
    super().__init__(file)
    self._load_storage = load_storage
    self._max_bytes = max_bytes
    self._storages = {}

  def find_class(self, module, name):
    if (module, name) in _TENSOR_REBUILDERS:
      return functools.partial(_rebuild_tensor, max_bytes=self._max_bytes)
    if (module, name) in _ALLOWED_GLOBALS:
      return _ALLOWED_GLOBALS[(module, name)]
    if module == "torch" and name in _STORAGE_DTYPES:
      return _STORAGE_DTYPES[name]
    if module.startswith("__torch__.") or module == "__torch__":
      return _script_class(module, name)
    raise pickle.UnpicklingError(
        f"refusing to load global '{module}.{name}': a weights file may only contain tensors "
        f"(allowed: torch._utils tensor rebuilders, torch.*Storage, collections.OrderedDict, TorchScript "
        f"attribute holders)")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
      raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}: expected ('storage', type, key, ...)")
    dtype, key, num_elements = pid[1], str(pid[2]), pid[4]
    if len(pid) > 5 and pid[5] is not None:
      raise pickle.UnpicklingError(f"storage {key}: views into storages (legacy view_metadata) are not supported")
    if not (isinstance(dtype, type) and issubclass(dtype, np.generic)):
      raise pickle.UnpicklingError(f"storage {key}: unsupported storage type {dtype!r}")
    if not _is_index(num_elements):
      raise pickle.UnpicklingError(f"storage {key}: element count {num_elements!r}, expected a non-negative integer")
    if key not in self._storages:
      self._storages[key] = self._load_storage(np.dtype(dtype), key, num_elements)
    return self._storages[key]


def _flatten(obj, prefix, out, budget):
  """Collects the arrays of nested dicts / TorchScript objects under dotted names.

  Each array is copied out of the file's buffers; `budget` (a one-element list of bytes left) is
  charged before each copy, so the copies together stay within `max_bytes`.
  """
  if isinstance(obj, np.ndarray):
    if obj.nbytes > budget[0]:
      raise ValueError(f"tensor '{prefix}' of size {obj.shape} ({obj.nbytes} bytes) would take the tensors "
                       f"past max_bytes (bytes left: {budget[0]})")
    budget[0] -= obj.nbytes
    out[prefix] = np.array(obj)  # a contiguous copy: the views share the file's buffers
  elif isinstance(obj, dict):
    for name, value in obj.items():
      _flatten(value, f"{prefix}.{name}" if prefix else str(name), out, budget)
  elif isinstance(obj, ScriptObject):
    _flatten(vars(obj), prefix, out, budget)
  return out


def _charge(budget, nbytes, what, path, limit="max_bytes"):
  """Takes `nbytes` from `budget` (a one-element list of bytes left), or refuses before allocating."""
  if nbytes > budget[0]:
    raise ValueError(f"{path}: {what} claims {nbytes} bytes, past {limit} (bytes left: {budget[0]})")
  budget[0] -= nbytes


def _read_zip(path, max_bytes):
  """Each storage's record must hold exactly its claimed bytes, checked before it is read."""
  budget = [max_bytes]
  with zipfile.ZipFile(path) as archive:
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
      raise ValueError(f"{path}: expected one '<root>/data.pkl' in a PyTorch zip archive, found {pickles}")
    root = pickles[0].split("/")[0]
    _charge(budget, archive.getinfo(pickles[0]).file_size, f"'{pickles[0]}'", path)

    def load_storage(dtype, key, num_elements):
      name = f"{root}/data/{key}"
      try:
        info = archive.getinfo(name)
      except KeyError as e:
        raise ValueError(f"{path}: storage '{name}' is missing from the archive (truncated file?)") from e
      expected = num_elements * dtype.itemsize
      if info.file_size != expected:
        raise ValueError(f"{path}: storage '{name}' holds {info.file_size} bytes, expected "
                         f"{expected} ({num_elements} x {dtype})")
      _charge(budget, expected, f"storage '{name}'", path)
      raw = archive.read(name)
      if len(raw) != expected:
        raise ValueError(f"{path}: storage '{name}' is truncated ({len(raw)} of {expected} bytes)")
      return np.frombuffer(raw, dtype=dtype.newbyteorder("<"), count=num_elements)

    return RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage, max_bytes).load()


def _read_legacy(path, max_bytes):
  """The pre-1.6 layout: magic, protocol, system info, object, storage keys, then each storage.

  The storages follow the object, so together they can claim at most the file's size.
  """
  budget = [min(max_bytes, os.path.getsize(path))]
  with open(path, "rb") as f:
    def header():
      return RestrictedUnpickler(f, _no_storage, max_bytes).load()

    try:
      magic = header()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
      raise ValueError(f"{path}: neither a PyTorch zip archive nor a legacy torch.save file ({e})") from e
    if magic != _LEGACY_MAGIC:
      raise ValueError(f"{path}: neither a PyTorch zip archive nor a legacy torch.save file (magic number differs)")
    header()  # protocol version
    header()  # system info (byte order, type sizes)
    buffers = {}

    def empty_storage(dtype, key, num_elements):  # filled below; the tensors are views into it
      _charge(budget, num_elements * dtype.itemsize, f"storage {key} ({num_elements} x {dtype})", path,
              limit="the file's size or max_bytes")
      buffers[key] = np.empty(num_elements, dtype)
      return buffers[key]

    obj = RestrictedUnpickler(f, empty_storage, max_bytes).load()
    for key in header():
      buffer = buffers[str(key)]
      count = np.frombuffer(f.read(8), dtype="<i8")
      raw = f.read(buffer.nbytes)
      if count.size != 1 or count[0] != buffer.size or len(raw) != buffer.nbytes:
        raise ValueError(f"{path}: storage {key} is truncated or corrupt")
      buffer[:] = np.frombuffer(raw, dtype=buffer.dtype.newbyteorder("<"))
  return obj


def _no_storage(dtype, key, num_elements):
  raise pickle.UnpicklingError(f"unexpected storage {key} in a legacy header pickle")


def read_torch_weights(path, max_bytes=DEFAULT_MAX_BYTES):
  """Returns every tensor of a PyTorch weights file as `{dotted.name: np.ndarray}`.

  Works for `torch.save` state dicts (zip or legacy layout) and TorchScript archives, without torch.
  `max_bytes` (default 4 GiB) bounds the storages read from the file and, separately, the arrays
  returned; every claim is checked against it and against the file before anything is allocated.
  Raises ValueError for a file that is not such a file, truncated, corrupt, or past `max_bytes`, and
  pickle.UnpicklingError for a pickle that names anything but tensors and containers or a tensor
  that reaches outside its storage.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no weights file at {path}")
  if zipfile.is_zipfile(path):
    try:
      obj = _read_zip(path, max_bytes)
    except (zipfile.BadZipFile, EOFError) as e:
      raise ValueError(f"{path}: corrupt PyTorch zip archive ({e})") from e
  else:
    obj = _read_legacy(path, max_bytes)
  weights = _flatten(obj, "", {}, [max_bytes])
  if not weights:
    raise ValueError(f"{path}: the file holds no tensors")
  return weights
