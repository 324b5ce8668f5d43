"""Helpers shared by the tests: the repository's paths and its scripts imported as modules."""
import importlib.util
import os.path as osp
from types import ModuleType
from typing import Optional

__all__ = ['REPO', 'load_script', 'load_tool']

#: The repository root.
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_script(path: str, name: Optional[str] = None) -> ModuleType:
    """Import a script that is not in a package (``tools/``) as a module.

    Args:
        path (str): The script's path, absolute or relative to the repository root.
        name (str, optional): The module's name. Defaults to the file name without ``.py``.

    Returns:
        ModuleType: The executed module (not added to ``sys.modules``).
    """
    path = osp.join(REPO, path)  # an absolute path stays as it is
    name = name or osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_tool(name: str, module_name: Optional[str] = None) -> ModuleType:
    """Import ``tools/<name>.py`` as a module.

    Args:
        name (str): The tool, such as ``'gen_configs'`` or ``'model_converters/convert_vit'``.
        module_name (str, optional): The module's name. Defaults to the file name.

    Returns:
        ModuleType: The executed module.
    """
    return load_script(osp.join('tools', f'{name}.py'), module_name)
