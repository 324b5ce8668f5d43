"""Run a search end to end (:func:`run_search`) and write what it leaves (:func:`write_report`)."""
import json
import logging
import os.path as osp
import pickle
from typing import Any, Mapping, Optional, Sequence, Union

import optuna
from optuna.trial import TrialState

from .best_config import write_best_config
from .picture import draw_trials
from .search import Search, search_logger
from .spec import SearchResult, make_spec, spec_to_plain
from .storage import SAMPLER_START, count_trials, recover_abandoned
from .table import format_value, table_markdown, trial_rows
from .workers import launch_workers

__all__ = ['run_search', 'write_report']


def write_report(search: Search, study: optuna.Study) -> SearchResult:
    """Writes the table (``trials.md``, ``trials.json``), the picture and ``best.py``.

    Args:
        search (Search): The search.
        study (optuna.Study): Its study.

    Returns:
        SearchResult: The rows, the best completed trial and the files written.
    """
    rows = trial_rows(study, search)
    finished = [r for r in rows if r['state'] in ('complete', 'pruned')]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, ))
    best = None
    if complete:
        pick = max if search.spec.direction == 'maximize' else min
        trial = pick(complete, key=lambda t: t.value)
        best = dict(number=trial.number, value=trial.value, params=dict(trial.params),
                    finished=len(finished))
    metric = search.metric or next((t.user_attrs.get('metric') for t in complete), None)
    search.metric = metric
    work_dir = search.spec.work_dir
    files = dict(table_md=osp.join(work_dir, 'trials.md'),
                 table_json=osp.join(work_dir, 'trials.json'),
                 picture=osp.join(work_dir, 'trials.png'))
    with open(files['table_md'], 'w') as f:
        f.write(table_markdown(rows, search, best))
    with open(files['table_json'], 'w') as f:
        json.dump(dict(config=search.spec.config, metric=metric,
                       direction=search.spec.direction, study=search.spec.study_name,
                       storage=search.spec.storage, rows=rows, best=best), f, indent=1)
    draw_trials(rows, search, files['picture'])
    if best is not None:
        files['best_config'] = osp.join(work_dir, 'best.py')
        write_best_config(search, best, files['best_config'])
        search.log(f'best: trial {best["number"]}, {metric} {format_value(best["value"])}, '
                   f'{best["params"]}; config {files["best_config"]}')
    else:
        search.log('no trial completed: no best.py', logging.WARNING)
    search.log(f'{len(rows)} trials ({len(finished)} finished): {files["table_md"]}')
    return SearchResult(work_dir, metric, search.spec.direction, rows, best, files)


def _check_resumed(search: Search, study: optuna.Study) -> None:
    """Stores the search's signature in a new study; refuses a stored one that differs."""
    stored = study.user_attrs.get('search')
    signature = search.signature()
    if stored is None:
        study.set_user_attr('search', signature)
    elif stored != signature:
        changed = ', '.join(k for k in dict(stored, **signature)
                            if stored.get(k) != signature.get(k))
        raise ValueError(f'study {search.spec.study_name!r} in {search.spec.storage} is a search '
                         f'with another {changed}; resume it unchanged, or give another '
                         '--work-dir or --study-name')


def run_search(config: str,
               space: Union[Sequence[str], Mapping[str, Any], None] = None,
               *,
               gpus: Optional[Sequence[Union[int, str]]] = None,
               **options) -> SearchResult:
    """Searches hyperparameters of ``config`` on its validation split (resumable).

    Every bad input (unknown key, bad range, unknown metric, no validation split, unknown
    preset or pruner) raises a one-line ``ValueError`` before any trial starts. Running it again
    on the same work directory (storage and study) resumes the search.

    Args:
        config (str): The config file.
        space (Sequence[str] | Mapping, optional): The searched keys and their values, as
            :func:`~mmda_vpt.tune.make_spec` takes them. Defaults to None.
        gpus (Sequence, optional): One worker process per GPU id, each seeing only its GPU;
            None runs the trials one at a time in this process. Defaults to None.
        **options: The rest of the search, keyword arguments of
            :func:`~mmda_vpt.tune.make_spec`: ``preset``, ``work_dir``, ``trials``, ``metric``,
            ``direction``, ``sampler``, ``pruner``, ``pruner_options``, ``storage``,
            ``study_name``, ``cfg_options``, ``val_cfg_options``, ``seed``,
            ``keep_checkpoints``, ``heartbeat``, ``train_seeds``.

    Returns:
        SearchResult: The table rows, the best trial and the files written.
    """
    spec = make_spec(config, space, **options)
    work_dir = spec.work_dir
    search = Search(spec)  # every check, before anything is written
    search.set_logger(search_logger(work_dir))
    search.log(f'search of {config}: {len(search.params)} keys '
               f'({", ".join(p.name for p in search.params)}), {search.sampler_name} sampler, '
               f'pruner {spec.pruner}, {search.trials} trials, metric '
               f'{search.metric or "(the first the evaluator returns)"} ({spec.direction}), '
               f'storage {spec.storage}')
    study = search.open_study()
    _check_resumed(search, study)
    done = count_trials(study, (TrialState.COMPLETE, TrialState.PRUNED))
    if done:
        search.log(f'resuming: {done} trials already finished')
    recover_abandoned(study, search.log)
    study.set_user_attr(SAMPLER_START, len(study.get_trials(deepcopy=False)))
    if gpus:
        gpus = [str(g) for g in gpus]
        spec_file = osp.join(work_dir, 'search_spec.pkl')
        with open(spec_file, 'wb') as f:
            pickle.dump(spec_to_plain(spec), f)
        search.log(f'{len(gpus)} workers, CUDA_VISIBLE_DEVICES {", ".join(gpus)}; their '
                   f'output: {osp.join(work_dir, "worker_<gpu>.log")}')
        codes = launch_workers(spec_file, gpus, work_dir)
        if any(codes):
            search.log(f'workers exited with {codes}', logging.ERROR)
    else:
        search.optimize()
    return write_report(search, search.open_study())
