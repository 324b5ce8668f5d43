"""One-line errors for checkpoint files that cannot be read, and for a failed ``--resume``.

``torch.load`` on a truncated, empty or foreign file answers with whatever its reader trips on:
``OSError: [Errno 22] Invalid argument``, "PytorchStreamReader failed reading zip archive", or
``weights_only`` advice that does not apply. :func:`install_checkpoint_errors` wraps mmengine's
local checkpoint loader (``CheckpointLoader``'s ``''`` scheme, through which
``load_checkpoint``, ``_load_checkpoint``, the runner's ``load_from`` / ``--resume``,
``tools/test.py`` and the inferencers read local files) so that such a file raises
:class:`UnreadableCheckpointError`: one line naming the file, its size, what is wrong with it and
what a checkpoint is. A file that is a whole torch checkpoint keeps torch's own error (its
content is the problem, e.g. an object that ``weights_only`` refuses).

It also wraps :meth:`mmengine.runner.Runner.resume`: when the checkpoint to resume from is
missing or unreadable (``--resume PATH``, or the one that ``last_checkpoint`` in the work
directory names, that file itself possibly truncated or garbage), the error also lists the
other checkpoints in the work directory that do load, newest first.
"""
import functools
import os
import os.path as osp
import zipfile
from typing import Any, Callable, List, Optional

import torch

__all__ = [
    'UnreadableCheckpointError', 'unreadable_reason', 'checkpoint_loads',
    'loadable_checkpoints', 'install_checkpoint_errors'
]

# Set on every function this module installs (looked for along ``__wrapped__``).
_INSTALLED = '_mmda_vpt_checkpoint_errors'
#: What a readable checkpoint is, for the messages.
EXPECTED = ('expected a checkpoint written by torch.save (mmengine\'s save_checkpoint, '
            'tools/train.py): a zip archive, or the legacy pickle format')
# The first bytes of the legacy torch.save format: pickle protocol 2, then a long (the magic
# number 0x1950a86a20f9469cfc6c).
_LEGACY_MAGIC = b'\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19'
_ZIP_MAGIC = b'PK\x03\x04'


class UnreadableCheckpointError(RuntimeError):
    """A checkpoint file that is not a readable torch checkpoint.

    Args:
        filename (str): The file.
        message (str): The one-line message.
    """

    def __init__(self, filename: str, message: str) -> None:
        super().__init__(message)
        self.filename = filename


def _size(filename: str) -> str:
    size = osp.getsize(filename)
    if size < 2**20:
        return f'{size:,} bytes'
    return f'{size / 2**20:.1f} MiB'


def unreadable_reason(filename: str, error: Optional[BaseException] = None) -> Optional[str]:
    """Why ``filename`` is not a readable torch checkpoint, or None when it looks like one.

    Only the file's layout is judged (empty; a zip archive cut short or damaged; a legacy file
    cut short; neither format), so a whole checkpoint whose content ``torch.load`` refuses
    gives None.

    Args:
        filename (str): An existing file.
        error (BaseException, optional): What ``torch.load`` raised on it. Defaults to None.

    Returns:
        str, optional: The reason, a clause without a final full stop.
    """
    with open(filename, 'rb') as file:
        head = file.read(len(_LEGACY_MAGIC))
    if not head:
        return 'the file is empty'
    if head.startswith(_ZIP_MAGIC):
        if not zipfile.is_zipfile(filename):
            return ('it is the beginning of a zip archive whose end is missing (truncated: an '
                    'interrupted save or copy?)')
        try:
            with zipfile.ZipFile(filename) as archive:
                names, damaged = archive.namelist(), archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as bad:
            return f'its zip archive is damaged ({bad})'
        if damaged is not None:
            return f'its zip archive is damaged (bad CRC of {damaged})'
        if not any(name.endswith('data.pkl') for name in names):
            return 'it is a zip archive without data.pkl, not one written by torch.save'
        return None
    if head.startswith(_LEGACY_MAGIC):
        said = str(error).lower()
        if isinstance(error, EOFError) or any(w in said for w in ('eof', 'truncated', 'corrupt')):
            return 'it is a legacy torch.save file that ends early (truncated?)'
        return None
    if head.startswith(b'\x80'):
        return None  # a plain pickle: torch's error (e.g. weights_only) says more
    return f'it starts with {head[:8]!r}, which is neither a zip archive nor a pickle'


def checkpoint_loads(filename: str) -> bool:
    """Whether ``torch.load`` reads ``filename`` (tensor data memory-mapped where it can)."""
    try:
        mmap = zipfile.is_zipfile(filename)
        torch.load(filename, map_location='cpu', mmap=mmap)
    except Exception:  # noqa: BLE001  (any failure means: does not load)
        return False
    return True


def loadable_checkpoints(folder: str, exclude: Optional[str] = None) -> List[str]:
    """The ``*.pth`` files directly in ``folder`` that load, newest first.

    Args:
        folder (str): A work directory.
        exclude (str, optional): A file to leave out. Defaults to None.

    Returns:
        list[str]: Paths under ``folder``.
    """
    if not osp.isdir(folder):
        return []
    skip = osp.realpath(exclude) if exclude and osp.isfile(exclude) else None
    files = [osp.join(folder, name) for name in os.listdir(folder) if name.endswith('.pth')]
    files = [f for f in files if osp.isfile(f) and osp.realpath(f) != skip]
    files.sort(key=lambda f: (osp.getmtime(f), f), reverse=True)
    return [f for f in files if checkpoint_loads(f)]


def _installed(function: Any) -> bool:
    while function is not None:
        if getattr(function, _INSTALLED, False):
            return True
        function = getattr(function, '__wrapped__', None)
    return False


def _diagnosing_loader(load: Callable) -> Callable:
    """Wrap a local checkpoint loader: unreadable files raise UnreadableCheckpointError."""

    @functools.wraps(load, updated=())
    def load_from_local(filename: str, map_location: Any = None) -> Any:
        try:
            return load(filename, map_location)
        except Exception as error:  # noqa: BLE001  (judged below, re-raised when not ours)
            path = osp.expanduser(filename)
            if not osp.isfile(path):
                raise
            reason = unreadable_reason(path, error)
            if reason is None:
                raise
            raise UnreadableCheckpointError(
                path, f'checkpoint {filename} ({_size(path)}) cannot be read: {reason}; '
                f'{EXPECTED}') from None

    setattr(load_from_local, _INSTALLED, True)
    return load_from_local


def _latest_checkpoint(path: str) -> Optional[str]:
    """``find_latest_checkpoint`` that reads a damaged ``last_checkpoint`` without failing."""
    save_file = osp.join(path, 'last_checkpoint')
    if not osp.exists(save_file):
        from mmengine.logging import print_log
        print_log('Did not find last_checkpoint to be resumed.')
        return None
    with open(save_file, 'rb') as file:
        return file.read().decode('utf-8', errors='replace').strip()


def _alternatives(runner: Any, filename: str) -> str:
    found = loadable_checkpoints(runner.work_dir, exclude=filename)
    if not found:
        return f'; no other checkpoint in {runner.work_dir} loads'
    return (f'; checkpoints in {runner.work_dir} that load, newest first: {", ".join(found)} '
            '(resume from one with --resume PATH)')


def _resume_naming_alternatives(resume: Callable) -> Callable:
    """Wrap ``Runner.resume``: a missing or unreadable checkpoint lists those that load."""

    @functools.wraps(resume, updated=())
    def wrapper(self, filename: str, *args, **kwargs) -> Any:
        from mmengine.runner.checkpoint import CheckpointLoader
        auto = self._load_from is None
        what = (f'the latest checkpoint {filename!r}, named by '
                f'{osp.join(self.work_dir, "last_checkpoint")},' if auto else
                f'the checkpoint {filename!r} to resume from')
        loader = CheckpointLoader._get_checkpoint_loader(filename)
        local = loader is None or loader.__name__ == 'load_from_local'
        if local and not osp.isfile(osp.expanduser(filename)):
            raise FileNotFoundError(f'cannot resume: {what} does not exist'
                                    + _alternatives(self, osp.expanduser(filename)))
        try:
            return resume(self, filename, *args, **kwargs)
        except UnreadableCheckpointError as error:
            if error.filename != osp.expanduser(filename):
                raise
            raise UnreadableCheckpointError(
                error.filename, f'cannot resume: {error}' + _alternatives(self, error.filename)
            ) from None

    setattr(wrapper, _INSTALLED, True)
    return wrapper


def install_checkpoint_errors() -> None:
    """Install the one-line errors (idempotent): the local loader and ``Runner.resume``."""
    import mmengine.runner.runner as runner_module
    from mmengine.runner import Runner
    from mmengine.runner.checkpoint import CheckpointLoader
    current = CheckpointLoader._schemes.get('')
    if current is not None and not _installed(current):
        CheckpointLoader.register_scheme(prefixes='', loader=_diagnosing_loader(current),
                                         force=True)
    if not _installed(Runner.resume):
        Runner.resume = _resume_naming_alternatives(Runner.resume)
    if not _installed(runner_module.find_latest_checkpoint):
        setattr(_latest_checkpoint, _INSTALLED, True)
        _latest_checkpoint.__wrapped__ = runner_module.find_latest_checkpoint
        runner_module.find_latest_checkpoint = _latest_checkpoint
