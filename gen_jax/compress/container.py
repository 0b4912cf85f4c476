"""The compressed file: a small header that says what wrote it, then the coder's 32-bit words.

  MAGIC (8 bytes) | header length (uint32 LE) | header (UTF-8 JSON) | words (uint32 LE)

The header holds the coder, the model (its config name, step and a SHA-256 fingerprint of its
parameters), the data (event shape, levels, count), the coder's options and the SHA-256 and length of
the words. `unpack` refuses, with the file named, anything else: another format, a truncated or
corrupted file (checked against the header's hash before any decoding, so damage never decodes into a
silently wrong image), or a file written for another model (`check_model`).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np

MAGIC = b"GJAXCMP1"


def words_sha256(words: np.ndarray) -> str:
  return hashlib.sha256(np.asarray(words, "<u4").tobytes()).hexdigest()


def pack(header: dict, words: np.ndarray) -> bytes:
  """The file's bytes: the header (with the words' length and SHA-256 added) and the words."""
  header = {**header, "num_words": int(len(words)), "words_sha256": words_sha256(words)}
  encoded = json.dumps(header, sort_keys=True).encode()
  return MAGIC + struct.pack("<I", len(encoded)) + encoded + np.asarray(words, "<u4").tobytes()


def write_file(path: str, data: bytes) -> None:
  """Writes `data` whole, then renames: a kill leaves no partial file at `path`."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "wb") as f:
    f.write(data)
  os.replace(tmp, path)


def unpack(data: bytes, name: str = "the compressed data") -> tuple[dict, np.ndarray]:
  """(header, words) of bytes `pack` made; `name` (a file's path) goes into the errors.

  Raises:
    ValueError: naming `name`: not gen_jax compressed data, truncated, or corrupted.
  """
  path = name
  if not data.startswith(MAGIC):
    raise ValueError(f"{path} is not gen_jax compressed data (expected it to start with {MAGIC!r})")
  start = len(MAGIC) + 4
  if len(data) < start:
    raise ValueError(f"{path} is truncated: it ends inside its header")
  (header_length,) = struct.unpack("<I", data[len(MAGIC):start])
  try:
    header = json.loads(data[start:start + header_length].decode())
    expected = 4 * int(header["num_words"])
    digest = header["words_sha256"]
  except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
    raise ValueError(f"{path} is truncated or corrupted: its header does not read") from None
  body = data[start + header_length:]
  if len(body) != expected:
    raise ValueError(f"{path} is {'truncated' if len(body) < expected else 'longer than written'}: its header "
                     f"says {expected} bytes of coded data, it holds {len(body)}")
  words = np.frombuffer(body, "<u4").astype(np.uint32)
  if words_sha256(words) != digest:
    raise ValueError(f"{path} is corrupted: its coded data differs from the SHA-256 its header holds")
  return header, words


def check_model(path: str, header: dict, model: dict) -> None:
  """Raises when the data was written with another model than `model` ({name, step, params_sha256})."""
  written = header.get("model", {})
  if written.get("params_sha256") != model["params_sha256"]:
    raise ValueError(f"{path} was written with another model ({written.get('name')!r} at step {written.get('step')}, "
                     f"parameters {str(written.get('params_sha256'))[:12]}...); this run is {model['name']!r} at step "
                     f"{model['step']} ({model['params_sha256'][:12]}...): decode it with the run that wrote it")
