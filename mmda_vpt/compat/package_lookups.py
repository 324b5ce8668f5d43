"""Package look-ups without ``pkg_resources``: mmengine's ``mmpretrain::`` config paths resolved.

setuptools >= 81 dropped ``pkg_resources``, which mmengine uses to resolve
``_base_ = 'mmpretrain::...'`` and ``mmseg::`` config paths ("No module named
'pkg_resources'"). When it is missing, :func:`patch_package_lookups` replaces mmengine's
``is_installed``, ``get_installed_path`` and ``package2module`` with ``importlib.metadata``
equivalents; when it is there nothing changes.
"""
import importlib
import importlib.metadata
import importlib.util
import os.path as osp
from typing import Optional

__all__ = ['patch_package_lookups']


def _package2module(package: str) -> str:
    """The top-level module of an installed distribution (``mmcv-full`` -> ``mmcv``).

    Args:
        package (str): Distribution name.

    Returns:
        str: The first module of the distribution's ``top_level.txt``.

    Raises:
        ValueError: If the distribution does not list its top-level modules.
    """
    top_level = importlib.metadata.distribution(package).read_text('top_level.txt')
    if not top_level or not top_level.strip():
        raise ValueError(f'can not infer the module name of {package}')
    return top_level.split()[0]


def _module_dir(module: str) -> Optional[str]:
    """The directory of an importable (non-namespace) package, or None."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return osp.dirname(spec.origin)


def _is_installed(package: str) -> bool:
    """mmengine's ``is_installed`` on ``importlib.metadata``: a distribution or a module.

    Args:
        package (str): Distribution or module name.

    Returns:
        bool: Whether it is installed.
    """
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        return _module_dir(package) is not None


def _get_installed_path(package: str) -> str:
    """mmengine's ``get_installed_path`` on ``importlib.metadata``.

    Args:
        package (str): Distribution or module name (``mmpretrain``, ``mmcv-full``).

    Returns:
        str: The directory of the installed package (its sources for an editable install).

    Raises:
        RuntimeError: If ``package`` is a namespace package.
        importlib.metadata.PackageNotFoundError: If nothing of that name is installed.
    """
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        path = _module_dir(package)
        if path is not None:
            return path
        if importlib.util.find_spec(package) is not None:
            raise RuntimeError(f'{package} is a namespace package, which is invalid for '
                               '`get_install_path`')
        raise
    for module in (package, _package2module(package)):
        path = _module_dir(module)
        if path is not None:
            return path
    return osp.join(str(dist.locate_file('')), _package2module(package))


def patch_package_lookups() -> None:
    """Replaces mmengine's ``pkg_resources`` look-ups when ``pkg_resources`` is missing.

    The functions are bound by name in several mmengine modules (``from mmengine.utils import
    is_installed``), so each binding of the original function is replaced.
    """
    if importlib.util.find_spec('pkg_resources') is not None:
        return
    from mmengine.utils import package_utils
    replacements = {
        'is_installed': _is_installed,
        'get_installed_path': _get_installed_path,
        'package2module': _package2module,
    }
    originals = {name: getattr(package_utils, name, None) for name in replacements}
    for module_name in ('mmengine.utils.package_utils', 'mmengine.utils', 'mmengine.config.config',
                        'mmengine.hub.hub'):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name, replacement in replacements.items():
            current = getattr(module, name, None)
            if current is not None and current is originals[name]:
                setattr(module, name, replacement)
