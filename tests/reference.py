"""The reference packages' own functions, read from their installed source without importing them.

pytorch-fid and torch-fidelity import torchvision at module level (for their data pipelines), and
torchvision does not import beside the CPU torch used here. Their metric functions need only numpy,
scipy and torch, so the tests take each function's source from the installed file (found through the
distribution's metadata, not by importing the package), and execute just that function with the
names it uses. The code that runs is the reference's, unmodified.
"""
import ast
import importlib.metadata
import os


def reference_file(distribution, relative_path):
  """Path of `relative_path` inside an installed distribution (e.g. 'pytorch-fid', 'pytorch_fid/fid_score.py')."""
  path = str(importlib.metadata.distribution(distribution).locate_file(relative_path))
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{relative_path} is not in the installed {distribution}: {path}")
  return path


def reference_functions(distribution, relative_path, names, namespace):
  """Returns {name: function} for the top-level functions `names` of an installed module's source.

  `namespace` holds what those functions reference (e.g. {'np': numpy, 'linalg': scipy.linalg}).
  """
  path = reference_file(distribution, relative_path)
  with open(path) as f:
    tree = ast.parse(f.read(), filename=path)
  wanted = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in names]
  missing = set(names) - {node.name for node in wanted}
  if missing:
    raise LookupError(f"{path} does not define {sorted(missing)}")
  scope = dict(namespace)
  exec(compile(ast.Module(body=wanted, type_ignores=[]), path, "exec"), scope)
  return {name: scope[name] for name in names}
