"""Run a search in worker processes, one per GPU, each seeing only its own GPU."""
import os
import os.path as osp
import pickle
import subprocess
import sys
from typing import List, Mapping, Optional, Sequence

from .search import Search, search_logger
from .spec import spec_from_plain

__all__ = ['WORKER_MODULE', 'launch_workers', 'run_worker', 'worker_envs']

#: The module a worker process runs (``python -m``), on the pickled search.
WORKER_MODULE = 'mmda_vpt.tune._worker'


def worker_envs(gpus: Sequence[str], base: Optional[Mapping[str, str]] = None) -> List[dict]:
    """The environment of each worker process: the caller's, seeing only its own GPU.

    Args:
        gpus (Sequence[str]): GPU ids, one worker per id.
        base (Mapping, optional): The environment to start from; the process's when None.
            Defaults to None.

    Returns:
        list[dict]: One environment per worker.
    """
    base = dict(os.environ if base is None else base)
    return [dict(base, CUDA_VISIBLE_DEVICES=str(gpu)) for gpu in gpus]


def launch_workers(spec_file: str, gpus: Sequence[str], work_dir: str) -> List[int]:
    """Runs one worker process per GPU on the pickled search and waits for them.

    Each runs ``python -m mmda_vpt.tune._worker SPEC_FILE --index I`` (:func:`run_worker`).

    Args:
        spec_file (str): The pickled :class:`~mmda_vpt.tune.SearchSpec`
            (:func:`~mmda_vpt.tune.spec.spec_to_plain`).
        gpus (Sequence[str]): GPU ids.
        work_dir (str): Where each worker's output goes (``worker_<gpu>.log``).

    Returns:
        list[int]: The exit codes of the workers.
    """
    procs = []
    for index, (gpu, env) in enumerate(zip(gpus, worker_envs(gpus))):
        out = open(osp.join(work_dir, f'worker_{gpu}.log'), 'a')
        procs.append((subprocess.Popen(
            [sys.executable, '-m', WORKER_MODULE, spec_file, '--index', str(index)],
            env=env, stdout=out, stderr=subprocess.STDOUT), out))
    codes = []
    for proc, out in procs:
        codes.append(proc.wait())
        out.close()
    return codes


def run_worker(spec_file: str, index: int = 0) -> None:
    """The body of a worker process: trials of the pickled search until its budget is spent.

    Args:
        spec_file (str): The pickled :class:`~mmda_vpt.tune.SearchSpec`.
        index (int): The worker's index (seeds a sampled search). Defaults to 0.
    """
    with open(spec_file, 'rb') as f:
        spec = spec_from_plain(pickle.load(f))
    search = Search(spec)
    search.set_logger(search_logger(spec.work_dir))
    search.optimize(worker=index)
