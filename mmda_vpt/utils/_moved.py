"""Names that left the package for ``benchmarks/``: importing them raises an error naming the new
place (they served only the tests and the benchmarks, which are not installed)."""
from typing import Callable

__all__ = ['MOVED', 'moved_error', 'moved_getattr']

#: old dotted name -> new dotted name (importable from the repository root)
MOVED = {
    'mmda_vpt.utils.host_reads': 'benchmarks.host_reads',
    'mmda_vpt.utils.count_host_reads': 'benchmarks.host_reads.count_host_reads',
    'mmda_vpt.utils.class_kmeans.time_class_clustering':
    'benchmarks.class_clustering.time_class_clustering',
}


def moved_error(old: str) -> ImportError:
    """The error for an import of ``old``, a key of :data:`MOVED`.

    Args:
        old (str): The old dotted name.

    Returns:
        ImportError: Its message names the new place.
    """
    return ImportError(f'{old} has moved out of the mmda_vpt package to {MOVED[old]} '
                       '(benchmarks/ of the repository; import it from the repository root)')


def moved_getattr(module: str) -> Callable[[str], object]:
    """A module-level ``__getattr__`` raising :func:`moved_error` for the moved names.

    Args:
        module (str): The dotted name of the module the names left.

    Returns:
        callable: ``__getattr__(name)``; other unknown names raise ``AttributeError``.
    """

    def __getattr__(name: str) -> object:
        if f'{module}.{name}' in MOVED:
            raise moved_error(f'{module}.{name}')
        raise AttributeError(f'module {module!r} has no attribute {name!r}')

    return __getattr__
