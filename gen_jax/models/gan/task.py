"""The GAN family on the training skeleton: one compiled two-player step, health metrics, figures.

One step (`Task.update`), as PyTorch's DCGAN example orders it, on one batch of real data x and
z ~ N(0, I):
  1. fake = G(z) (train mode), kept with its vjp;
  2. discriminator: grad of  L_D(D(x), D(sg(fake))) + lambda_gp GP + gamma/2 R1  w.r.t. D's params,
     real and fake batches through D separately (separate BatchNorm statistics), one optax step;
  3. generator, on every n_critic-th step only (WGAN-GP's n_critic D steps per G step): grad of
     L_G(D'(fake)) through the same fake with the *updated* D', one optax step.
Each player has its own optax optimizer (Adam with its own learning rate and betas) and its own
optimizer state; both run inside one `jax.jit`-compiled, data-parallel step (the batch is sharded
like every family's; the gradients' mean over the batch is the global mean). Penalties evaluate D in
eval mode (BatchNorm running averages, spectral norm's stored estimate), so each example's input
gradient is its own.

Losses (`losses.LOSSES`): "minimax" and "non_saturating" (Goodfellow et al. 2014), "wasserstein"
(with a gradient penalty: WGAN-GP, Gulrajani et al. 2017), "hinge" (Lim & Ye 2017; with spectral
norm, Miyato et al. 2018); R1 (Mescheder et al. 2018) with any of them.

Logged every step: both losses, D's accuracy on real and on fake, both gradient norms, penalties.
With n_critic > 1 the generator's backward pass runs on its update steps only; its gradient norm is
logged there times n_critic and as 0 on the critic's other steps, so that a log window of a multiple
of n_critic steps (as `experiments/configs/gan_base.py` sets them) averages to its updates' mean.
`check_health` warns when the discriminator wins completely (accuracy > 0.99 on both and fakes
scored below 1% by D, where the minimax generator's gradient vanishes; not for a Wasserstein
critic, whose scores have no threshold); a non-finite loss stops the
run like every family's (the loss checked is L_D + L_G).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen_jax.data.spec import DataSpec
from gen_jax.models.gan import figures as figures_lib
from gen_jax.models.gan import losses as losses_lib
from gen_jax.models.gan import networks
from gen_jax.models.gan.gan import GAN
from gen_jax.train import optimizer as optimizer_lib
from gen_jax.train.config_section import section_options
from gen_jax.data.levels import centres_to_level_values
from gen_jax.train.task import LatentSpace, Task, merge_variables, split_variables

WIN_ACCURACY = 0.99


def _player(variables, name):
  return variables["params"][name]


def _with(variables, name, value, stats=None):
  """variables with params[name] = value (and batch_stats replaced when given)."""
  params = {**variables["params"], name: value}
  out = {**variables, "params": params}
  if stats is not None:
    out["batch_stats"] = stats
  return out


def gan_task(model: GAN, spec: DataSpec, loss: str = "non_saturating", n_critic: int = 1,
             gradient_penalty: float = 0.0, r1_penalty: float = 0.0,
             generator_optimizer: optax.GradientTransformation | None = None,
             discriminator_optimizer: optax.GradientTransformation | None = None) -> Task:
  d_loss_fn, g_loss_fn = losses_lib.get_losses(loss)
  if not isinstance(n_critic, int) or n_critic < 1:
    raise ValueError(f"n_critic must be an int >= 1, got {n_critic!r}")
  if gradient_penalty < 0 or r1_penalty < 0:
    raise ValueError(f"penalty weights must be >= 0, got gradient_penalty={gradient_penalty}, r1={r1_penalty}")
  g_opt = generator_optimizer or optax.adam(2e-4, b1=0.5, b2=0.999)
  d_opt = discriminator_optimizer or optax.adam(2e-4, b1=0.5, b2=0.999)
  images = spec.num_levels is not None
  has_stats = lambda v: "batch_stats" in v

  optimizer = optimizer_lib.players({"generator": g_opt, "discriminator": d_opt})

  def init(rng, batch):
    init_rng, z_rng = jax.random.split(rng)
    z = jax.random.normal(z_rng, (batch.shape[0], model.latent_dim))
    x = model.apply({}, batch, method=model.to_model_space)
    # Trained: both players' params; carried: BatchNorm statistics, spectral norm's estimates.
    return split_variables({"model": model.init(init_rng, z, x, False)})

  def apply(variables, *args, method, train):
    """model.apply in train mode with batch_stats mutable -> (out, new stats or None)."""
    if train and has_stats(variables):
      out, updates = model.apply(variables, *args, True, method=method, mutable=["batch_stats"])
      return out, updates["batch_stats"]
    return model.apply(variables, *args, train, method=method), variables.get("batch_stats")

  def update(params, state, opt_state, batch, rng, step):
    variables, opt_state, loss_value, metrics = two_player_step(merge_variables(params, state)["model"], opt_state,
                                                                batch, rng, step)
    return (*split_variables({"model": variables}), opt_state, loss_value, metrics)

  def two_player_step(variables, opt_state, batch, rng, step):
    z_rng, penalty_rng = jax.random.split(rng)
    x_real = model.apply(variables, batch, method=model.to_model_space)
    z = jax.random.normal(z_rng, (x_real.shape[0], model.latent_dim))

    def generate(g_params):
      return apply(_with(variables, "generator", g_params), z, method=model.decode, train=True)

    fake, g_vjp, stats = jax.vjp(generate, _player(variables, "generator"), has_aux=True)
    variables = _with(variables, "generator", variables["params"]["generator"], stats)

    def d_objective(d_params):
      v = _with(variables, "discriminator", d_params)
      real_logits, stats = apply(v, x_real, method=model.discriminate, train=True)
      fake_logits, stats = apply(_with(v, "discriminator", d_params, stats), jax.lax.stop_gradient(fake),
                                 method=model.discriminate, train=True)
      objective = d_loss_fn(real_logits, fake_logits)
      metrics = {}
      critic = lambda x: model.apply(_with(v, "discriminator", d_params, stats), x, False,
                                     method=model.discriminate)
      if gradient_penalty:
        metrics["gradient_penalty"] = losses_lib.gradient_penalty(critic, x_real, jax.lax.stop_gradient(fake),
                                                                  penalty_rng)
        objective = objective + gradient_penalty * metrics["gradient_penalty"]
      if r1_penalty:
        metrics["r1_penalty"] = losses_lib.r1_penalty(critic, x_real)
        objective = objective + 0.5 * r1_penalty * metrics["r1_penalty"]
      acc_real, acc_fake = losses_lib.discriminator_accuracy(real_logits, fake_logits)
      metrics.update(d_loss=objective, d_acc_real=acc_real, d_acc_fake=acc_fake,
                     d_fake_prob=jnp.mean(jax.nn.sigmoid(fake_logits)))
      return objective, (metrics, stats)

    d_params = _player(variables, "discriminator")
    (d_value, (metrics, stats)), d_grads = jax.value_and_grad(d_objective, has_aux=True)(d_params)
    d_updates, d_state = d_opt.update(d_grads, opt_state["discriminator"], d_params)
    variables = _with(variables, "discriminator", optax.apply_updates(d_params, d_updates), stats)

    def g_objective(fake_images):
      logits, new_stats = apply(variables, fake_images, method=model.discriminate, train=True)
      return g_loss_fn(logits), new_stats

    g_params = _player(variables, "generator")

    def step_generator(_):
      (g_value, stats), dl_dfake = jax.value_and_grad(g_objective, has_aux=True)(fake)
      (g_grads,) = g_vjp(dl_dfake)
      updates, state = g_opt.update(g_grads, opt_state["generator"], g_params)
      # x n_critic: a log window of k n_critic steps then averages to the mean over its k updates.
      return optax.apply_updates(g_params, updates), state, stats, g_value, n_critic * optax.tree.norm(g_grads)

    def keep_generator(_):  # the critic's other steps: no generator backward pass at all
      g_value, _ = g_objective(jax.lax.stop_gradient(fake))
      return (g_params, opt_state["generator"], variables.get("batch_stats"), g_value,
              jnp.zeros((), jnp.float32))

    if n_critic == 1:
      g_params, g_state, stats, g_value, g_grad_norm = step_generator(None)
    else:
      g_params, g_state, stats, g_value, g_grad_norm = jax.lax.cond(
          step % n_critic == n_critic - 1, step_generator, keep_generator, None)
    variables = _with(variables, "generator", g_params, stats)
    metrics.update(g_loss=g_value, d_grad_norm=optax.tree.norm(d_grads), g_grad_norm=g_grad_norm)
    return variables, {"generator": g_state, "discriminator": d_state}, d_value + g_value, metrics

  def evaluate(params, batch, rng):
    variables = params["model"]
    x_real = model.apply(variables, batch, method=model.to_model_space)
    z = jax.random.normal(rng, (x_real.shape[0], model.latent_dim))
    fake = model.apply(variables, z, False, method=model.decode)
    real_logits = model.apply(variables, x_real, False, method=model.discriminate)
    fake_logits = model.apply(variables, fake, False, method=model.discriminate)
    return {"d_real_logit": real_logits, "d_fake_logit": fake_logits,
            "d_acc_real": (real_logits > 0).astype(jnp.float32), "d_acc_fake": (fake_logits < 0).astype(jnp.float32)}

  def sample(params, rng, num):
    return model.apply(params["model"], rng, num, method=model.sample)

  def figures(params, rng, examples):
    del examples
    if not images:
      return {}
    return figures_lib.interpolations_and_traversals(model, params["model"], rng, spec.num_levels)

  def check_health(metrics):
    if loss == "wasserstein":  # a critic's scores have no decision threshold
      return None
    if min(metrics.get("d_acc_real", 0), metrics.get("d_acc_fake", 0)) > WIN_ACCURACY and \
        metrics.get("d_fake_prob", 1.0) < 0.01:
      return (f"the discriminator wins completely (accuracy real {metrics['d_acc_real']:.3f}, fake "
              f"{metrics['d_acc_fake']:.3f}; D(G(z)) = {metrics['d_fake_prob']:.2e}): the generator's "
              "gradient is vanishing, training has likely failed")
    return None

  def prior(rng, num):  # what `sample` draws: z ~ N(0, I)
    return jax.random.normal(rng, (num, model.latent_dim), jnp.float32)

  def decode(params, z):  # the generator in eval mode; images: its [-1, 1] output as levels, not rounded
    x = model.apply(params["model"], z, False, method=model.decode)
    return centres_to_level_values(x, spec.num_levels) if images else x

  return Task(model=model, init=init, optimizer=optimizer, update=update, evaluate=evaluate, sample=sample,
              figures=figures, check_health=check_health, latent=LatentSpace(prior=prior, decode=decode))


def build_gan_task(config: ml_collections.ConfigDict, model: GAN, spec: DataSpec) -> Task:
  """config.gan: the keyword options of `gan_task`; config.optim: every field of
  `gen_jax.train.optimizer.make_optimizer` but `learning_rate`, which each player has its own of
  (generator_learning_rate, discriminator_learning_rate)."""
  optim = config.optim
  rates = ("generator_learning_rate", "discriminator_learning_rate")
  optimizer_lib.check_optim_fields(optim, set(optimizer_lib.OPTIM_FIELDS) - {"learning_rate"} | set(rates))
  missing = [name for name in rates if name not in optim]
  if missing:
    raise ValueError(f"a GAN's config.optim needs {missing}: each player has its own learning rate")
  player = lambda rate: optimizer_lib.make_optimizer(optim, config.train.num_steps, learning_rate=optim[rate])
  return gan_task(model, spec, generator_optimizer=player(rates[0]), discriminator_optimizer=player(rates[1]),
                  **section_options(config, "gan", gan_task,
                                                     skip=("generator_optimizer", "discriminator_optimizer")))


def gan_model(event_shape, architecture: str = "dcgan", latent_dim: int = 100, num_levels: int | None = None,
              hidden_sizes=(256, 256), channels: int = 64, spectral_norm: bool = False,
              discriminator_norm: str = "batch") -> GAN:
  """A `GAN` from config fields: architecture "mlp" (vectors), "dcgan" or "resnet" (images)."""
  event_shape = tuple(event_shape)
  if architecture == "mlp":
    generator = networks.MLPGenerator(latent_dim, tuple(hidden_sizes), event_shape[0])
    discriminator = networks.MLPDiscriminator(tuple(hidden_sizes), spectral_norm=spectral_norm)
  elif architecture == "dcgan":
    generator = networks.DCGANGenerator(event_shape, latent_dim=latent_dim, base_channels=channels)
    discriminator = networks.DCGANDiscriminator(base_channels=channels, norm=discriminator_norm,
                                                spectral_norm=spectral_norm)
  elif architecture == "resnet":
    generator = networks.ResNetGenerator(event_shape, latent_dim=latent_dim, channels=channels)
    discriminator = networks.ResNetDiscriminator(channels=channels, spectral_norm=spectral_norm)
  else:
    raise ValueError(f"model.architecture must be 'mlp', 'dcgan' or 'resnet', got {architecture!r}")
  return GAN(event_shape=event_shape, generator=generator, discriminator=discriminator, latent_dim=latent_dim,
             num_levels=num_levels)
