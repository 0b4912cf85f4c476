"""Lossless compression with the models: a test NLL in bits/dim kept as a real code length.

    data = gen_jax.compress.encode(run, images)     # bytes: header + ANS words
    images = gen_jax.compress.decode(run, data)     # bit-exact

CODERS (chosen by what the run's task offers):
  autoregressive   the exact conditionals of an autoregressive model (PixelCNN), pixel by pixel
                   (`autoregressive.py`): code length = exact NLL + quantization
  bits_back        BB-ANS with a VAE's posterior, prior and decoder (`bits_back.py`): code length =
                   a one-sample estimate of the negative ELBO + the initial bits, reported apart
The entropy coder is constriction's ANS (`entropy_coder.py`, its one user); the file layout is
`container.py`. Flows are not coded yet: a flow needs a discretized latent with local bits-back
coding (Ho et al. 2019), whose precision bookkeeping through every coupling is not built here.
"""
from __future__ import annotations

import hashlib
import json
import math
import time

import numpy as np

from gen_jax import checks
from gen_jax.compress import autoregressive
from gen_jax.compress import bits_back
from gen_jax.compress import container
from gen_jax.data import spec as spec_lib
from gen_jax.train import checkpoint

CODERS = ("autoregressive", "bits_back")
DEFAULT_BATCH_SIZE = {"autoregressive": 500, "bits_back": 100}
LATENT_BITS = 8  # buckets per latent dimension: 2^8 of equal prior mass (see bits_back.py on why not more)


def available_coders(run) -> tuple[str, ...]:
  """The coders `run`'s task offers (() for a family with neither)."""
  return tuple(name for name, ok in (("autoregressive", run.task.pixel_conditionals is not None),
                                     ("bits_back", run.task.bits_back is not None)) if ok)


def model_identity(run) -> dict:
  """{name, step, params_sha256}: what a compressed file records of the model that wrote it."""
  checksums = checkpoint.array_checksums(run.all_params)
  digest = hashlib.sha256(json.dumps(checksums, sort_keys=True).encode()).hexdigest()
  return {"name": run.config.model.name, "step": int(run.step), "params_sha256": digest}


def _coder(run, coder: str | None) -> str:
  offered = available_coders(run)
  if not offered:
    raise ValueError(f"a {run.config.model.name!r} run has no coder: gen_jax.compress codes with an autoregressive "
                     "model's conditionals or a VAE's bits-back (flows: not yet)")
  coder = offered[0] if coder is None else coder
  if coder not in offered:
    raise ValueError(f"coder must be one of this run's {list(offered)}, got {coder!r}")
  return coder


def encode(run, images, coder: str | None = None, batch_size: int | None = None, seed: int = 0) -> bytes:
  """The compressed bytes of `images` (as stored: uint8 levels [N, H, W, C]) under `run`'s model."""
  coder = _coder(run, coder)
  images = np.asarray(images)
  if run.spec.kind != "image":
    raise ValueError(f"gen_jax.compress codes images of discrete levels; this run models {run.spec.kind}s")
  spec_lib.check_examples(images, run.spec, "images")
  checks.check_nonempty_batch(images, "images")
  batch_size = DEFAULT_BATCH_SIZE[coder] if batch_size is None else batch_size
  header = {"coder": coder, "model": model_identity(run), "count": len(images), "batch_size": int(batch_size),
            "data": {"name": run.spec.name, "event_shape": list(run.spec.event_shape),
                     "num_levels": run.spec.num_levels}}
  if coder == "autoregressive":
    words = autoregressive.encode_words(run.task, run.all_params, images, batch_size)
  else:
    latent_dim = run.model.latent_dim
    words, initial_bits = bits_back.encode_words(run.task.bits_back, run.all_params, images, batch_size, latent_dim,
                                                 LATENT_BITS, seed)
    header.update(latent_dim=latent_dim, latent_bits=LATENT_BITS, seed=seed, initial_bits=initial_bits)
  return container.pack(header, words)


def decode(run, data: bytes, name: str = "the compressed data") -> np.ndarray:
  """The images `encode` compressed into `data`, bit-exact; refuses data of another model or damaged
  data, naming `name`."""
  header, words = container.unpack(data, name)
  container.check_model(name, header, model_identity(run))
  event_shape, count, batch_size = tuple(header["data"]["event_shape"]), header["count"], header["batch_size"]
  if header["coder"] == "autoregressive":
    return autoregressive.decode_words(run.task, run.all_params, words, count, event_shape, batch_size)
  return bits_back.decode_words(run.task.bits_back, run.all_params, words, count, event_shape, batch_size,
                                header["latent_dim"], header["latent_bits"], header["seed"])


def measure(run, images, coder: str | None = None, batch_size: int | None = None) -> dict:
  """Encodes and decodes `images`: {coder, bits_per_dim (the whole bytes), net_bits_per_dim (less the
  header and, bits-back, the initial bits), encode / decode images per second, exact (round trip)}."""
  images = np.asarray(images)
  start = time.perf_counter()
  data = encode(run, images, coder, batch_size)
  encode_seconds = time.perf_counter() - start
  start = time.perf_counter()
  decoded = decode(run, data)
  decode_seconds = time.perf_counter() - start
  header, words = container.unpack(data)
  dims = images.size
  net_bits = 32 * len(words) - header.get("initial_bits", 0)
  return {"coder": header["coder"], "bytes": len(data), "bits_per_dim": 8 * len(data) / dims,
          "net_bits_per_dim": net_bits / dims, "initial_bits": header.get("initial_bits", 0),
          "encode_images_per_s": len(images) / encode_seconds, "decode_images_per_s": len(images) / decode_seconds,
          "exact": bool(np.array_equal(decoded, images)), "num_images": len(images),
          "dims_per_image": math.prod(images.shape[1:])}
