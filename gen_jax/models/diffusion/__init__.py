"""Diffusion models: noise schedules, objectives, samplers and the probability-flow ODE."""
