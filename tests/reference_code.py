"""The authors' released DA-VPT code, for tests that run pieces of it beside ours.

It lives beside the repository (``<repo>/../shared/reference/DA-VPT``, as CI clones it) or where
the environment variable ``MMDA_VPT_REFERENCE`` points; tests that need it are skipped without
it. Only the pieces a test needs are loaded, so the authors' other dependencies need not be
installed.
"""
import ast
import importlib.util
import os
import os.path as osp
import sys
from types import ModuleType
from typing import Callable, Dict, Optional
from unittest import mock

import pytest

from tests.utils import REPO

__all__ = ['REFERENCE', 'requires_reference', 'reference_function', 'reference_module']

#: The authors' code (a folder holding ``train.py``, ``model_creator.py``, ``Dataset/`` ...).
REFERENCE = os.environ.get('MMDA_VPT_REFERENCE') or osp.join(REPO, '..', 'shared', 'reference',
                                                             'DA-VPT')

#: Marks a test (or class) that runs the authors' code: skipped without it.
requires_reference = pytest.mark.skipif(
    not osp.isfile(osp.join(REFERENCE, 'train.py')),
    reason=f"the authors' code is not at {REFERENCE} (set MMDA_VPT_REFERENCE)")


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
