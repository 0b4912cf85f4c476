"""DDPM's U-Net against diffusers' UNet2DModel, the independent reference.

diffusers' UNet2DModel with google/ddpm-cifar10-32's configuration is DDPM's network ported from
the TF checkpoint: the same parameter count at DDPM's CIFAR-10 layout, and, with its weights copied
into the Flax module, the same outputs on a small layout with every kind of block (attention at a
level that both downsamples and upsamples, width changes, output channels != input channels).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.nn import UNet

DDPM_CIFAR10_PARAMETERS = 35_746_307  # diffusers' google/ddpm-cifar10-32, DDPM's TF checkpoint


def diffusers_unet(channels, channel_multipliers, num_res_blocks, attention_resolutions, num_groups,
                   image_size, in_channels, out_channels, meta=False):
  """diffusers' UNet2DModel with DDPM's choices (google/ddpm-cifar10-32's config.json)."""
  import torch
  from diffusers import UNet2DModel
  resolutions = [image_size // 2 ** level for level in range(len(channel_multipliers))]
  attention = [r in attention_resolutions for r in resolutions]
  config = dict(
      sample_size=image_size, in_channels=in_channels, out_channels=out_channels,
      block_out_channels=tuple(channels * m for m in channel_multipliers),
      layers_per_block=num_res_blocks,
      down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention),
      up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)),
      attention_head_dim=None,  # one head as wide as the block
      norm_num_groups=num_groups, norm_eps=1e-6, downsample_padding=0,
      time_embedding_type="positional", flip_sin_to_cos=False, freq_shift=1, dropout=0.0)
  if meta:  # shapes only, nothing allocated
    with torch.device("meta"):
      return UNet2DModel(**config)
  return UNet2DModel(**config)


def count(tree):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def test_ddpm_cifar10_layout_has_diffusers_parameter_count():
  model = UNet(channels=128, channel_multipliers=(1, 2, 2, 2), num_res_blocks=2,
               attention_resolutions=(16,), dropout=0.1, num_groups=32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1,)))
  reference = diffusers_unet(128, (1, 2, 2, 2), 2, (16,), 32, 32, 3, 3, meta=True)
  reference_count = sum(p.numel() for p in reference.parameters())
  assert reference_count == DDPM_CIFAR10_PARAMETERS
  assert count(shapes["params"]) == DDPM_CIFAR10_PARAMETERS


# Flax module and parameter names -> diffusers state_dict names.
_RESNET = {"norm_1": "norm1", "conv_1": "conv1", "temb_proj": "time_emb_proj", "norm_2": "norm2",
           "conv_2": "conv2", "shortcut": "conv_shortcut"}
_ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def _torch_module_name(name, num_levels):
  parts = name.split("_")
  fixed = {"conv_in": "conv_in", "temb_dense_0": "time_embedding.linear_1",
           "temb_dense_1": "time_embedding.linear_2", "mid_res_0": "mid_block.resnets.0",
           "mid_res_1": "mid_block.resnets.1", "mid_attn": "mid_block.attentions.0",
           "norm_out": "conv_norm_out", "conv_out": "conv_out"}
  if name in fixed:
    return fixed[name]
  direction, level = parts[0], int(parts[1])
  block = f"down_blocks.{level}" if direction == "down" else f"up_blocks.{num_levels - 1 - level}"
  kind = parts[2]
  if kind == "downsample":
    return f"{block}.downsamplers.0.conv"
  if kind == "upsample":
    return f"{block}.upsamplers.0.conv"
  return f"{block}.{'resnets' if kind == 'res' else 'attentions'}.{parts[3]}"


def flax_params_from_diffusers(state_dict, flax_params, num_levels):
  """Copies a diffusers UNet2DModel state_dict into the Flax tree; every tensor used exactly once."""
  unused = set(state_dict)

  def convert(path, leaf):
    names = [p.key for p in path]
    module = _torch_module_name(names[0], num_levels)
    if len(names) == 3:
      table = _RESNET if "res" in names[0] else _ATTENTION
      module += "." + table[names[1]]
    key = module + "." + {"kernel": "weight", "scale": "weight", "bias": "bias"}[names[-1]]
    unused.discard(key)
    value = state_dict[key].detach().numpy()
    if value.ndim == 4:  # conv [O, I, kh, kw] -> [kh, kw, I, O]; a 1x1 conv -> Dense [I, O]
      value = value.transpose(2, 3, 1, 0)
      if leaf.ndim == 2:
        value = value[0, 0]
    elif value.ndim == 2:  # Linear [O, I] -> Dense [I, O]
      value = value.T
    assert value.shape == leaf.shape, (key, value.shape, leaf.shape)
    return jnp.asarray(value)

  params = jax.tree_util.tree_map_with_path(convert, flax_params)
  assert not unused, f"diffusers tensors with no Flax counterpart: {sorted(unused)}"
  return params


def test_matches_diffusers_unet2dmodel():
  import torch
  layout = dict(channels=32, channel_multipliers=(1, 2, 2), num_res_blocks=2,
                attention_resolutions=(8,), num_groups=8)
  batch, size, in_channels, out_channels = 2, 16, 3, 6
  torch.manual_seed(0)
  reference = diffusers_unet(**layout, image_size=size, in_channels=in_channels,
                             out_channels=out_channels).eval()
  with torch.no_grad():  # norms and biases away from their 1/0 initialisation
    for name, p in reference.named_parameters():
      if "norm" in name and name.endswith("weight"):
        p.copy_(1 + 0.2 * torch.randn_like(p))
      elif name.endswith("bias"):
        p.copy_(0.2 * torch.randn_like(p))

  model = UNet(**layout, dropout=0.0, output_channels=out_channels)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((batch, size, size, in_channels)).astype(np.float32)
  t = rng.uniform(size=(batch,)).astype(np.float32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x, t)["params"]
  params = flax_params_from_diffusers(reference.state_dict(), shapes, len(layout["channel_multipliers"]))

  out = np.asarray(jax.jit(model.apply)({"params": params}, x, t))
  with torch.no_grad():
    expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2)),
                         torch.from_numpy(1000 * t)).sample.numpy().transpose(0, 2, 3, 1)
  assert out.shape == (batch, size, size, out_channels)
  scale = np.abs(expected).max()
  assert scale > 0.1  # a non-trivial output
  np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4 * scale)


TINY = dict(channels=8, channel_multipliers=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
            num_groups=4)
TINY_MODEL = UNet(**TINY, dropout=0.5)
tiny_apply = jax.jit(TINY_MODEL.apply, static_argnames="train")


def rbg(seed):  # fast to compile on CPU (threefry init of every parameter compiles for ~20 s here)
  return jax.random.key(seed, impl="rbg")


@pytest.fixture(scope="module")
def tiny():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, 8, 8, 3)), jnp.float32)
  t = jnp.array([0.3, 0.7], jnp.float32)
  return jax.jit(TINY_MODEL.init)(rbg(0), x, t), x, t


def perturbed(params, seed=1):
  """Every parameter moved off its initial value (the zero-initialised layers make the output 0)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: p + 0.3 * rng.standard_normal(p.shape).astype(np.float32), params)


def test_output_shape_and_zero_output_at_initialisation(tiny):
  params, x, t = tiny
  out = tiny_apply(params, x, t)
  assert out.shape == x.shape  # output_channels=None: those of the input
  np.testing.assert_array_equal(out, 0.0)  # DDPM's zero-initialised residual branches and output conv
  assert not np.allclose(tiny_apply(perturbed(params), x, t), 0.0)
  model = UNet(**TINY, output_channels=5)
  shapes = jax.eval_shape(model.init, rbg(0), x, t)
  assert jax.eval_shape(model.apply, shapes, x, t).shape == (2, 8, 8, 5)


def test_dropout_only_when_training(tiny):
  params, x, t = tiny
  params = perturbed(params)
  drop = lambda seed: tiny_apply(params, x, t, train=True, rngs={"dropout": rbg(seed)})
  assert not np.allclose(drop(1), drop(2))
  np.testing.assert_array_equal(drop(1), drop(1))
  eval_out = tiny_apply(params, x, t, train=False)
  np.testing.assert_array_equal(eval_out, tiny_apply(params, x, t, train=False, rngs={"dropout": rbg(3)}))
  assert not np.allclose(drop(1), eval_out)


@pytest.mark.parametrize("layout, x_shape, t_shape, message", [
    (dict(TINY, channel_multipliers=(1, 2, 2, 2)), (1, 12, 12, 3), (1,), "divisible by 8"),
    (TINY, (2, 8, 7, 3), (2,), "divisible by 2"),
    (TINY, (2, 8, 8, 3), (2, 1), r"t must have shape \[B\] = \(2,\)"),
    (TINY, (2, 8, 8, 3), (), r"t must have shape \[B\]"),
    (TINY, (2, 8, 8, 3), (3,), r"t must have shape \[B\] = \(2,\)"),
    (dict(TINY, channels=12, num_groups=8), (2, 8, 8, 3), (2,), "channels must be divisible by num_groups"),
    (TINY, (8, 8, 3), (8,), r"rank 4 \[B, H, W, C\]"),
])
def test_bad_input_raises(layout, x_shape, t_shape, message):
  with pytest.raises(ValueError, match=message):
    UNet(**layout).init(rbg(0), jnp.zeros(x_shape), jnp.zeros(t_shape))
