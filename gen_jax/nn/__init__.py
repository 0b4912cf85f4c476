"""Shared neural-network building blocks."""
from gen_jax.nn.conv_resnet import ConvResNet, ResidualBlock
from gen_jax.nn.conv_transpose import PhaseConvTranspose, phase_conv_transpose
from gen_jax.nn.label_embedding import (LabelEmbedding, check_labels, classifier_free_guidance, drop_labels, guidance_scale_is_one,
                                      guided_output, null_labels)
from gen_jax.nn.made import MADE, made_degrees, made_masks
from gen_jax.nn.masked_dense import MaskedDense
from gen_jax.nn.mlp import MLP
from gen_jax.nn.time_mlp import TimeConditionedMLP
from gen_jax.nn.unet import UNet

__all__ = ["ConvResNet", "ResidualBlock", "LabelEmbedding", "check_labels", "classifier_free_guidance", "drop_labels",
           "guidance_scale_is_one", "guided_output", "null_labels", "MADE", "made_degrees", "made_masks", "MaskedDense",
           "MLP", "PhaseConvTranspose", "phase_conv_transpose", "TimeConditionedMLP", "UNet"]
