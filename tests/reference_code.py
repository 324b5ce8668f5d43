"""The authors' released DA-VPT code, for tests that run pieces of it beside ours.

It is found by :func:`tests.utils.reference_dir` (``$MMDA_VPT_REFERENCE``, else
``<repo>/../shared/reference/DA-VPT``, as CI clones it); tests that need it are skipped without
it. Only the pieces a test needs are loaded, so the authors' other dependencies need not be
installed.
"""
import ast
import importlib.util
import os.path as osp
import sys
from types import ModuleType
from typing import Callable, Dict, Optional
from unittest import mock

import pytest

from tests.utils import reference_dir

__all__ = ['REFERENCE', 'requires_reference', 'reference_function', 'reference_module',
           'read_yaml']

#: The authors' code (a folder holding ``train.py``, ``model_creator.py``, ``Dataset/`` ...), or
#: None where this machine has no copy.
REFERENCE = reference_dir()

#: Marks a test (or class) that runs the authors' code: skipped without it.
requires_reference = pytest.mark.skipif(
    REFERENCE is None,
    reason="the authors' code is not at <repo>/../shared/reference/DA-VPT "
    '(set MMDA_VPT_REFERENCE to its folder)')


def reference_function(path: str, name: str, namespace: Optional[Dict] = None) -> Callable:
    """One top-level function of a file of the authors' code, without importing the file.

    Its ``def`` (decorators included) is executed alone in ``namespace``, which must provide
    the names it uses (``torch``, ``F`` ...).

    Args:
        path (str): The file, relative to :data:`REFERENCE` (``'model_creator.py'``).
        name (str): The function.
        namespace (dict, optional): Its globals. Defaults to None (empty).

    Returns:
        Callable: The function.
    """
    file = osp.join(REFERENCE, path)
    with open(file) as f:
        tree = ast.parse(f.read(), filename=file)
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    if not nodes:
        raise LookupError(f'{file} defines no function {name}')
    scope = dict(namespace or {})
    exec(compile(ast.Module(body=nodes[-1:], type_ignores=[]), file, 'exec'), scope)
    return scope[name]


def reference_module(path: str, stubs: Optional[Dict[str, ModuleType]] = None) -> ModuleType:
    """Import one file of the authors' code as a module, with ``stubs`` for missing modules.

    Args:
        path (str): The file, relative to :data:`REFERENCE` (``'Dataset/class_sampler.py'``).
        stubs (dict, optional): Module name -> stand-in, present in ``sys.modules`` only while
            the file is executed. Defaults to None.

    Returns:
        ModuleType: The executed module (not added to ``sys.modules``).
    """
    file = osp.join(REFERENCE, path)
    module_name = 'davpt_reference_' + osp.splitext(path)[0].replace('/', '_')
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(sys.modules, stubs or {}):
        spec.loader.exec_module(module)
    return module


def read_yaml(path: str) -> Dict[str, str]:
    """A released config file as written: ``key: value`` lines, quotes stripped.

    The files are read line by line as the authors' ``params.py`` reads them (it splits each
    line at its first colon), not by a YAML parser.

    Args:
        path (str): The ``.yaml`` file.

    Returns:
        dict: Key -> value, both strings.
    """
    values = {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('#') or ':' not in line:
                continue
            key, value = line.split(':', 1)
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values
