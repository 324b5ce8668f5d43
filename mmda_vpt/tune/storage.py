"""Keep a study in a storage and recover it after a stopped search (abandoned trials)."""
import os
import socket
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence

import optuna
from optuna.trial import TrialState

__all__ = ['SAMPLER_START', 'count_trials', 'make_storage', 'recover_abandoned']

#: Study attribute: the trials the study held when this search (re)started, which seeds the
#: samplers of every worker alike (see :meth:`~mmda_vpt.tune.Search.make_sampler`).
SAMPLER_START = 'sampler_start'


def count_trials(study: optuna.Study, states: Sequence[TrialState]) -> int:
    """The number of trials of ``study`` in one of ``states``."""
    return len(study.get_trials(deepcopy=False, states=tuple(states)))


def _retry(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Queue the values of a failed (abandoned) trial again."""
    study.enqueue_trial(trial.params, user_attrs={'retry_of': trial.number})


def make_storage(url: str, heartbeat: Optional[int] = 60) -> optuna.storages.BaseStorage:
    """An Optuna storage from ``--storage``.

    Args:
        url (str): A database URL (``sqlite:///path.db``, ``postgresql://...``, ``mysql://...``:
            Optuna's RDB storage, with heartbeats), or ``journal:PATH`` / a path ending in
            ``.log`` (Optuna's journal file, e.g. on storage shared by several hosts).
        heartbeat (int, optional): Seconds between a running trial's heartbeats in an RDB
            storage; a trial without one for 3 intervals is failed and queued again by the
            next trial of any worker. None disables them. Defaults to 60.

    Returns:
        optuna.storages.BaseStorage: The storage.
    """
    if url.startswith('journal:') or url.endswith('.log'):
        from optuna.storages.journal import JournalFileBackend
        path = url[len('journal:'):] if url.startswith('journal:') else url
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    kwargs: Dict[str, Any] = {}
    if url.startswith('sqlite'):
        kwargs['engine_kwargs'] = dict(connect_args=dict(timeout=120))
    if heartbeat:
        kwargs.update(heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                      heartbeat_stale_trial_callback=_retry)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, **kwargs)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_abandoned(study: optuna.Study, log: Callable[[str], None]) -> List[int]:
    """Fail the running trials of dead processes of this host and queue their values again.

    A trial of another host is left to the heartbeats of an RDB storage.

    Args:
        study (optuna.Study): The study.
        log (callable): ``log(message)``.

    Returns:
        list[int]: The numbers of the trials failed.
    """
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, )):
        attrs = trial.user_attrs
        if attrs.get('host', host) != host:
            continue
        if 'pid' in attrs and _pid_alive(int(attrs['pid'])) and attrs['pid'] != os.getpid():
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError):
            continue  # finished meanwhile
        _retry(study, trial)
        failed.append(trial.number)
        log(f'trial {trial.number} {trial.params} was left running by a stopped search: '
            'marked failed and queued again')
    return failed
