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

`read_torch_weights(path)` returns the tensors as `{dotted.name: np.ndarray}`.
"""
import collections
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


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  """torch._utils._rebuild_tensor_v2: a strided view into a flat storage (copied out by `_flatten`)."""
  size, stride = tuple(size), tuple(stride)
  if any(s < 0 for s in size) or any(s < 0 for s in stride) or storage_offset < 0:
    raise pickle.UnpicklingError(f"invalid tensor layout: offset {storage_offset}, size {size}, stride {stride}")
  last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else storage_offset - 1
  if last >= storage.size:
    raise pickle.UnpicklingError(
        f"tensor of size {size} (offset {storage_offset}, stride {stride}) needs {last + 1} elements but its "
        f"storage has {storage.size}: the file is truncated or corrupt")
  itemsize = storage.dtype.itemsize
  view = np.lib.stride_tricks.as_strided(
      storage[storage_offset:], shape=size, strides=tuple(s * itemsize for s in stride), writeable=False)
  return view


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
  del requires_grad, backward_hooks
  return data


def _build_intlist(values):
  return list(values)


_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.jit._pickle", "build_intlist"): _build_intlist,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class RestrictedUnpickler(pickle.Unpickler):
  """Unpickles tensors and containers only; any other global is refused (never called).

  Args:
    file: the pickle stream.
    load_storage: `(dtype, key, num_elements) -> 1-D np.ndarray` for a storage persistent id.
  """

  def __init__(self, file, load_storage):
    super().__init__(file)
    self._load_storage = load_storage
    self._storages = {}

  def find_class(self, module, name):
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
    if key not in self._storages:
      self._storages[key] = self._load_storage(np.dtype(dtype), key, num_elements)
    return self._storages[key]


def _flatten(obj, prefix, out):
  """Collects the arrays of nested dicts / TorchScript objects under dotted names."""
  if isinstance(obj, np.ndarray):
    out[prefix] = np.array(obj)  # a copy: the views share the file's buffers
  elif isinstance(obj, dict):
    for name, value in obj.items():
      _flatten(value, f"{prefix}.{name}" if prefix else str(name), out)
  elif isinstance(obj, ScriptObject):
    _flatten(vars(obj), prefix, out)
  return out


def _read_zip(path):
  with zipfile.ZipFile(path) as archive:
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
      raise ValueError(f"{path}: expected one '<root>/data.pkl' in a PyTorch zip archive, found {pickles}")
    root = pickles[0].split("/")[0]

    def load_storage(dtype, key, num_elements):
      name = f"{root}/data/{key}"
      try:
        raw = archive.read(name)
      except KeyError as e:
        raise ValueError(f"{path}: storage '{name}' is missing from the archive (truncated file?)") from e
      if len(raw) < num_elements * dtype.itemsize:
        raise ValueError(f"{path}: storage '{name}' holds {len(raw)} bytes, expected "
                         f"{num_elements * dtype.itemsize} ({num_elements} x {dtype})")
      return np.frombuffer(raw, dtype=dtype.newbyteorder("<"), count=num_elements)

    return RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage).load()


def _read_legacy(path):
  """The pre-1.6 layout: magic, protocol, system info, object, storage keys, then each storage."""
  with open(path, "rb") as f:
    def header():
      return RestrictedUnpickler(f, _no_storage).load()

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
      buffers[key] = np.empty(num_elements, dtype)
      return buffers[key]

    obj = RestrictedUnpickler(f, empty_storage).load()
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


def read_torch_weights(path):
  """Returns every tensor of a PyTorch weights file as `{dotted.name: np.ndarray}`.

  Works for `torch.save` state dicts (zip or legacy layout) and TorchScript archives, without torch.
  Raises ValueError for a file that is not such a file, truncated, or corrupt, and
  pickle.UnpicklingError for a pickle that names anything but tensors and containers.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no weights file at {path}")
  if zipfile.is_zipfile(path):
    try:
      obj = _read_zip(path)
    except (zipfile.BadZipFile, EOFError) as e:
      raise ValueError(f"{path}: corrupt PyTorch zip archive ({e})") from e
  else:
    obj = _read_legacy(path)
  weights = _flatten(obj, "", {})
  if not weights:
    raise ValueError(f"{path}: the file holds no tensors")
  return weights
