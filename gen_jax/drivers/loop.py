"""The training loop shared by every family: train, evaluate, sample, checkpoint, resume.

Writes into `workdir`:
  config.json, data_spec.json   what `gen_jax.load_run` needs to rebuild the model
  metrics.jsonl                 one JSON object per line: `step` and named metrics (train/*, eval/*)
  events.out.tfevents.*         the same scalars for TensorBoard (`tensorboard --logdir WORKDIR`)
  samples/step_N.png            sample grids (images) or scatter plots (2-D data); none for a task
                                without `sample` (a classifier)
  checkpoints/                  Orbax checkpoints of the whole train state

A run is a pure function of its config: batch `s` is drawn by `batch_indices(s, ...)` and step `s` uses
`fold_in(key, s)`, and compiled chunks of `steps_per_call` steps start at multiples of it, so a run killed
at any moment and restarted from its last checkpoint ends with the same params as an uninterrupted run.

On many processes (after `gen_jax.drivers.distributed.initialize`) the Mesh spans every process's
devices: each process reads only its rows of batch `s` (from the split's records, `data.records`) and
of each evaluation batch, which
`jax.make_array_from_process_local_data` assembles into the global batch (the config's size, the same
examples for any process count); every process takes part in each step, evaluation and checkpoint
(Orbax's multi-process save and restore) and draws and featurizes its share of the sample metrics'
chunks (`gen_jax.eval.across_processes`), and process 0 alone writes the logs, metrics.jsonl,
TensorBoard events, samples and figures (those from a host copy of the replicated params). A SIGTERM
to any one process stops all of them after the same step, with one checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time

import jax
import ml_collections
from jax.experimental import multihost_utils
import numpy as np
import tqdm

from gen_jax import data as data_lib
from gen_jax import models
from gen_jax import visualize
from gen_jax.drivers import scoring
from gen_jax.drivers import workdir_lock
from gen_jax.eval import across_processes
from gen_jax.eval import training_metrics
from gen_jax.train import checkpoint
from gen_jax.train import config_ranges
from gen_jax.train import sharding
from gen_jax.train import step as step_lib
from gen_jax.train.metrics_log import MetricsLog
from gen_jax.train.state import CHECKPOINT_FORMAT
from gen_jax.train.task import Task, task_batch


def validate_config(config: ml_collections.ConfigDict, mesh) -> None:
  """Every engine field in its range (`config_ranges`), the schedule in multiples of steps_per_call,
  batch sizes divisible over the mesh: before any data is loaded or anything compiled."""
  config_ranges.check_ranges(config)
  t = config.train
  k = t.steps_per_call
  if k <= 0:
    raise ValueError(f"train.steps_per_call must be a positive integer, got {k}")
  for name in ("log_every", "eval_every", "save_every", "sample_every"):
    value = t[name]
    if value <= 0 or value % k:
      raise ValueError(f"train.{name} must be a positive multiple of train.steps_per_call ({k}), got {value}")
  sharding.check_divisible(t.batch_size, mesh, "train.batch_size")
  sharding.check_divisible(config.eval.batch_size, mesh, "eval.batch_size")
  training_metrics.check_config(config.eval, k)


def _write_run_files(workdir: str, config, spec) -> None:
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  with open(os.path.join(workdir, "data_spec.json"), "w") as f:
    json.dump(dataclasses.asdict(spec), f, indent=2)


def _differences(before, after, prefix: str) -> list[str]:
  """'name: old -> new' for each leaf of two nested dicts that differs (a missing leaf shows as <none>)."""
  lines = []
  for key in sorted(set(before) | set(after), key=str):
    a, b = before.get(key, "<none>"), after.get(key, "<none>")
    if isinstance(a, dict) and isinstance(b, dict):
      lines += _differences(a, b, f"{prefix}{key}.")
    elif a != b and not (isinstance(a, list) and isinstance(b, tuple) and a == list(b)):
      lines.append(f"{prefix}{key}: {a!r} -> {b!r}")
  return lines


def check_workdir_holds_this_run(workdir: str, config, spec) -> None:
  """Before resuming: the run in `workdir` must be of the same model on the same data. Another model
  would fail deep inside Orbax with a shape error (or, with equal shapes, resume the wrong run); the
  train/eval sections (steps, logging) may change between resumes.

  Raises:
    ValueError: naming each model field / data property that differs, and what to do.
  """
  config_path, spec_path = os.path.join(workdir, "config.json"), os.path.join(workdir, "data_spec.json")
  if not (os.path.exists(config_path) and os.path.exists(spec_path)):
    return
  with open(config_path) as f:
    stored_model = json.load(f).get("model", {})
  with open(spec_path) as f:
    stored_spec = json.load(f)
  new_model = json.loads(config.model.to_json_best_effort())
  differ = _differences(stored_model, new_model, "model.")
  for field in ("event_shape", "num_levels", "kind"):
    old, new = stored_spec.get(field), getattr(spec, field)
    old = tuple(old) if isinstance(old, list) else old  # JSON stores the shape as a list
    if old != new:
      differ.append(f"data {field}: {old!r} -> {new!r}")
  if differ:
    raise ValueError(f"{workdir} holds the checkpoints of another run; this config differs in: "
                     + "; ".join(differ) + ". Use a new workdir, or remove this one to start over")


def check_checkpoint_holds_this_state(workdir: str, manager, shapes, config) -> None:
  """Before resuming: the saved arrays must be the ones this config's train state holds (a changed
  family option or optimizer can change them where `check_workdir_holds_this_run` sees no model field
  differ). Orbax would fail with advice to restore with strict=False, which pads or truncates params.

  Raises:
    ValueError: naming the arrays that differ and every config field that differs from config.json.
  """
  differ = checkpoint.state_differences(manager, shapes)
  if not differ:
    return
  with open(os.path.join(workdir, "config.json")) as f:
    fields = _differences(json.load(f), json.loads(config.to_json_best_effort()), "")
  shown = "; ".join(differ[:5]) + (f"; and {len(differ) - 5} more" if len(differ) > 5 else "")
  raise ValueError(f"{workdir} holds checkpoints of another train state ({len(differ)} arrays differ: {shown}); "
                   f"the config differs from its config.json in: {'; '.join(fields) or 'nothing (the code changed)'}. "
                   "Use a new workdir, or remove this one to start over")


def load_data(config: ml_collections.ConfigDict, train_data=None, test_data=None):
  """(train, test) Datasets: config.data.name through `load_dataset`, or a researcher's own data (a
  `Dataset` or arrays for `gen_jax.data.dataset_from_arrays`), both splits or neither."""
  if (train_data is None) != (test_data is None):
    raise ValueError("give both train_data and test_data (your own data), or neither (config.data.name)")
  if train_data is None:
    # the train split by record where each process needs only its rows (many processes, or a large split)
    return (data_lib.load_dataset(config.data.name, "train", config.data.data_dir, in_memory=None),
            data_lib.load_dataset(config.data.name, "test", config.data.data_dir))
  train, test = (d if isinstance(d, data_lib.Dataset) else data_lib.dataset_from_arrays(d, name=f"arrays ({split})")
                 for d, split in ((train_data, "train"), (test_data, "test")))
  if dataclasses.replace(test.spec, name=train.spec.name) != train.spec:
    raise ValueError(f"train_data and test_data must be the same kind of data, got {train.spec} and {test.spec}")
  return train, dataclasses.replace(test, spec=train.spec)


def examples(task: Task, dataset):
  """What `task`'s batches are cut from: the data array, or data with int32 labels for a task that uses them."""
  if not task.uses_labels:
    return dataset.data
  if dataset.labels is None:
    raise ValueError(f"{type(task.model).__name__} trains on labels, but dataset {dataset.spec.name!r} has "
                     "none; expected a labelled image dataset")
  return task_batch(task, dataset.data, dataset.labels.astype(np.int32))


def evaluate(task: Task, params, dataset, batch_size: int, key, mesh, evaluate_fn=None) -> dict[str, float]:
  """Masked average of `task.evaluate` over a whole split: the last partial batch is padded and masked,
  never dropped or duplicated. Each process reads only its rows of each batch (`sharding.process_rows`);
  the per-example values come back whole (replicated), so every process computes the same averages."""
  fn = evaluate_fn or jax.jit(task.evaluate)
  totals, count = {}, 0.0
  batch_sharding = sharding.batch_sharding(mesh)
  rows = sharding.process_rows(batch_sharding, (batch_size,))
  for i, (batch, mask) in enumerate(data_lib.padded_batches(examples(task, dataset), batch_size, rows)):
    per_example = fn(params, sharding.put_process_batch(batch, batch_sharding, batch_size),
                     jax.random.fold_in(key, i))
    for name, values in per_example.items():
      totals[name] = totals.get(name, 0.0) + float(np.sum(np.asarray(values, np.float64) * mask))
    count += float(mask.sum())
  return {name: total / count for name, total in totals.items()}


def write_samples(path: str, samples: np.ndarray, spec, reference: np.ndarray | None = None) -> None:
  if spec.kind == "image":
    visualize.save_image_grid(path, samples, spec.num_levels, upscale=4 if spec.event_shape[0] <= 16 else 2)
  else:
    visualize.save_scatter(path, samples, reference)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, devices=None, *, train_data=None,
                       test_data=None, strict_resume: bool = False):
  """Trains `config` in `workdir`, resuming from its newest intact checkpoint; returns the final train state.

  A damaged newest checkpoint (flipped bytes, truncated files, an empty step directory) is named in one
  line, moved to `checkpoints_damaged/` and the run resumes from the newest intact step; with
  `strict_resume` the run stops instead. One process trains in a workdir at a time (`workdir_lock`).

  The data: config.data.name (`gen_jax.data.load_dataset`: 'digits', a TFDS name, 'npz:PATH', ...), or
  your own `train_data` and `test_data`: `Dataset`s or arrays (uint8 images [N, H, W, C], 256 levels;
  float32 vectors [N, D]; `gen_jax.data.dataset_from_arrays` for other level counts and labels). The
  run then records its data as 'arrays' in config.json: score it by passing the arrays again
  (`Run.log_likelihood`).
  """
  mesh = sharding.make_mesh(devices)
  validate_config(config, mesh)
  train_ds, test_ds = load_data(config, train_data, test_data)  # checked before anything is written
  if train_data is not None:
    config = config.copy_and_resolve_references()
    config.data.name = train_ds.spec.name
  os.makedirs(workdir, exist_ok=True)
  with workdir_lock.hold(workdir, enabled=jax.process_index() == 0):
    return _train(config, workdir, mesh, train_ds, test_ds, strict_resume)


def _local(variables):
  """`variables` (replicated over the mesh) where this process alone can compute with them: as they are
  on one process, copied to host memory on many (a jitted call on arrays that span other processes' devices
  would wait for those processes to make the same call)."""
  return variables if jax.process_count() == 1 else jax.device_get(variables)


def _train(config, workdir, mesh, train_ds, test_ds, strict_resume):
  t = config.train
  is_chief = jax.process_index() == 0
  multi_process = jax.process_count() > 1
  spec = train_ds.spec
  task = models.build_task(config, spec)
  init_state, state_sharding = step_lib.make_init_state(task, t.ema_decay, mesh)

  key = jax.random.key(config.seed)
  init_key, train_key, eval_key, sample_key = jax.random.split(key, 4)
  num_train, train_examples = len(train_ds), examples(task, train_ds)
  # batch s is the same global examples for any process count; each process reads only its rows of it
  rows = sharding.process_rows(sharding.batch_sharding(mesh), (t.batch_size,))
  batch_at = lambda s: jax.tree.map(
      lambda a: a[data_lib.batch_indices(s, t.batch_size, num_train, config.seed)[rows]], train_examples)
  init_batch = sharding.put_process_batch(batch_at(0), sharding.batch_sharding(mesh), t.batch_size)

  manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"), t.keep_checkpoints)
  if manager.latest_step() is not None:
    checkpoint.check_format(workdir, CHECKPOINT_FORMAT)
    check_workdir_holds_this_run(workdir, config, spec)
    shapes = jax.eval_shape(init_state, init_key, init_batch)
    check_checkpoint_holds_this_state(workdir, manager, shapes, config)
    state, _, damaged = checkpoint.restore_newest_intact(manager, checkpoint.abstract_like(shapes, state_sharding),
                                                         strict=strict_resume)
    resumed = f"resuming from the checkpoint at step {int(state.step)} in {workdir}"
    if damaged:
      for report, moved in zip(damaged.values(), checkpoint.set_aside(manager, damaged)):
        if is_chief:
          print(f"{report}: moved to {moved}", flush=True)
  else:
    state = init_state(init_key, init_batch)
    resumed = f"starting in {workdir}"
  start = int(state.step)
  if multi_process:  # every process has read the run's files before the chief rewrites them
    multihost_utils.sync_global_devices("gen_jax: workdir checked")
  if is_chief:
    _write_run_files(workdir, config, spec)
    checkpoint.write_format(workdir, CHECKPOINT_FORMAT)
    print(f"{config.model.name} on {spec.name} {spec.event_shape}: {resumed}\nconfig:\n{config}", flush=True)
  log = MetricsLog(os.path.join(workdir, "metrics.jsonl"), resume_step=start, enabled=is_chief,
                   tensorboard_dir=workdir)

  train_steps = step_lib.make_train_steps(task, t.ema_decay, mesh, state_sharding)
  evaluate_fn = jax.jit(task.evaluate, in_shardings=(sharding.replicated(mesh), sharding.batch_sharding(mesh),
                                                     sharding.replicated(mesh)),
                        out_shardings=sharding.replicated(mesh))
  sample_fn = None if task.sample is None else jax.jit(task.sample, static_argnums=2)
  stacked_batch_sharding = sharding.batch_sharding(mesh, 1)
  sample_metrics = None
  if tuple(config.eval.get("sample_metrics", ()) or ()):  # every process: they share the work
    network, convert = scoring.feature_network_for(config.eval.feature_network, spec)
    sample_metrics = training_metrics.make_sample_metrics(config.eval, network, convert, test_ds.data, sample_fn)
  metrics_key = jax.random.fold_in(key, 5)  # not from the split above: the other streams stay as they were

  step, window, window_start = start, [], time.perf_counter()
  show_bar = is_chief and sys.stderr.isatty()  # a redirected log gets one line per log step instead
  # `log` closes on leaving, also on a non-finite loss: every metric it logged reaches its files
  with log, checkpoint.TerminationFlag() as termination, tqdm.tqdm(
      total=t.num_steps, initial=start, desc=config.model.name, disable=not show_bar, dynamic_ncols=True) as bar:
    while step < t.num_steps:
      end = min((step // t.steps_per_call + 1) * t.steps_per_call, t.num_steps)
      batches = jax.tree.map(lambda *b: np.stack(b), *[batch_at(s) for s in range(step, end)])
      state, metrics = train_steps(state, sharding.put_process_batch(batches, stacked_batch_sharding,
                                                                     t.batch_size, 1), train_key)
      metrics = jax.device_get(metrics)
      bad = step_lib.first_non_finite(metrics["loss"])
      if bad is not None:
        also = sorted(k for k, v in metrics.items() if k != "loss" and not np.isfinite(v[bad]))
        raise FloatingPointError(f"non-finite loss ({metrics['loss'][bad]}) at step {step + bad + 1}"
                                 + (f" (non-finite there: {', '.join(also)})" if also else "")
                                 + ": the run is stopped; the last checkpoint holds the last finite state")
      window.append(metrics)
      bar.update(end - step)
      step = end
      bar.set_postfix(loss=f"{float(metrics['loss'][-1]):.4f}")

      if step % t.log_every == 0 or step == t.num_steps:
        now = time.perf_counter()
        steps_done = sum(len(m["loss"]) for m in window)
        train = {f"train/{k}": float(np.mean(np.concatenate([m[k] for m in window]))) for k in window[0]}
        train["train/steps_per_sec"] = steps_done / (now - window_start)
        log.write(step, train)
        if is_chief and not show_bar:
          print(f"step {step}/{t.num_steps}: train/loss={train['train/loss']:.4f}, "
                f"{train['train/steps_per_sec']:.3g} steps/s", flush=True)
        warning = None if task.check_health is None else task.check_health(
            {k[len("train/"):]: v for k, v in train.items()})
        if warning and is_chief:
          bar.write(f"step {step}: WARNING: {warning}")
          logging.warning("step %d: %s", step, warning)
        window, window_start = [], now
      if step % t.eval_every == 0 or step == t.num_steps:
        results = evaluate(task, state.eval_variables, test_ds, config.eval.batch_size, eval_key, mesh, evaluate_fn)
        log.write(step, {f"eval/{k}": v for k, v in results.items()})
        if is_chief:
          bar.write(f"step {step}: " + ", ".join(f"eval/{k}={v:.4f}" for k, v in results.items()))
      if is_chief and sample_fn is not None and (step % t.sample_every == 0 or step == t.num_steps):
        samples = np.asarray(sample_fn(_local(state.eval_variables), jax.random.fold_in(sample_key, step),
                                       config.eval.num_samples))
        write_samples(os.path.join(workdir, "samples", f"step_{step}.png"), samples, spec,
                      reference=test_ds.data if spec.kind == "vector" else None)
        if task.figures is not None:
          for name, grid in task.figures(_local(state.eval_variables), jax.random.fold_in(sample_key, step),
                                         test_ds.data[:config.eval.num_samples]).items():
            visualize.save_image(os.path.join(workdir, "samples", f"{name}_step_{step}.png"), grid,
                                 upscale=4 if spec.event_shape[0] <= 16 else 2)
      if sample_metrics is not None and (step % config.eval.sample_metrics_every == 0 or step == t.num_steps):
        scores = sample_metrics(_local(state.eval_variables), jax.random.fold_in(metrics_key, step))
        log.write(step, scores)
        if is_chief:
          bar.write(f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in scores.items()))
      terminate = across_processes.any_process(termination.requested)  # SIGTERM to any one process stops all at this step
      if step % t.save_every == 0 or step == t.num_steps or terminate:
        checkpoint.save(manager, step, state)
      if terminate:
        logging.warning("SIGTERM: saved a checkpoint at step %d and stopped", step)
        break
  manager.close()
  return state
