"""A family's configuration section, validated against the keyword options of its pure task function.

`section_options(config, "gan", gan_task)` returns `dict(config.gan)` after checking that every key is a
keyword parameter of `gan_task`: a misspelt key is an error that names the known ones, raised when the
task is built. Defaults live in one place, the task function's signature; a section may be absent
(every option then takes its default).
"""
from __future__ import annotations

import inspect
from typing import Callable, Iterable

import ml_collections


def known_options(fn: Callable, skip: Iterable[str] = ()) -> tuple[str, ...]:
  """The names of `fn`'s parameters that have defaults, less `skip`: the options a config may set."""
  skip = set(skip)
  return tuple(name for name, parameter in inspect.signature(fn).parameters.items()
               if parameter.default is not inspect.Parameter.empty and name not in skip)


def section_options(config: ml_collections.ConfigDict, name: str, fn: Callable,
                    skip: Iterable[str] = ()) -> dict:
  """config[name] as keyword arguments of `fn`; an unknown key raises ValueError naming the known ones.
  `skip` names defaulted parameters that the builder passes itself (not settable from the section)."""
  section = config.get(name, None)
  if section is None:
    return {}
  known = known_options(fn, skip)
  unknown = sorted(set(section.keys()) - set(known))
  if unknown:
    raise ValueError(f"unknown config.{name} key(s) {unknown}: {fn.__name__} takes {sorted(known)}")
  return {key: (value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value)
          for key, value in section.items()}


def refuse_moved(config: ml_collections.ConfigDict, moved: dict[str, str]) -> None:
  """Raises for a field an older config set where it no longer acts: `moved` {"loss.beta": "vae.beta"}."""
  for old, new in moved.items():
    section, _, key = old.partition(".")
    if section in config and (not key or key in config[section]):
      raise ValueError(f"config.{old} no longer acts: set config.{new} (a family's options live in its section)")
