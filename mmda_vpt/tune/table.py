"""Tabulate a study's trials: one row per trial and the Markdown table of ``trials.md``."""
import os.path as osp
from typing import TYPE_CHECKING, Any, List, Optional

import optuna
from optuna.trial import TrialState

if TYPE_CHECKING:
    from .search import Search

__all__ = ['format_value', 'table_markdown', 'trial_rows']


def format_value(value: Any) -> str:
    """A value as the table shows it: floats to 4 significant digits, None as ``-``."""
    if isinstance(value, float):
        return f'{value:.4g}'
    return '-' if value is None else str(value)


def trial_rows(study: optuna.Study, search: 'Search') -> List[dict]:
    """One dict per trial of ``study`` that has started (as ``trials.json`` holds them).

    Args:
        study (optuna.Study): The study.
        search (Search): The search (its parameters name the columns).

    Returns:
        list[dict]: ``trial``, ``state``, ``params``, ``metric`` (the last reported value of a
        trial without one), ``run`` (epochs or iterations trained), ``unit``, ``pruned``,
        ``device``, ``retry_of``, ``train_seeds`` and ``values`` (one per training seed).
    """
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.WAITING:
            continue
        value = trial.value
        if value is None and trial.intermediate_values:
            value = trial.intermediate_values[max(trial.intermediate_values)]
        rows.append(dict(
            trial=trial.number, state=trial.state.name.lower(),
            params={p.name: trial.params.get(p.name) for p in search.params},
            metric=value, run=trial.user_attrs.get('run'),
            unit=trial.user_attrs.get('unit', 'epoch'),
            pruned=trial.state == TrialState.PRUNED, device=trial.user_attrs.get('device'),
            retry_of=trial.user_attrs.get('retry_of'),
            train_seeds=trial.user_attrs.get('train_seeds'),
            values=trial.user_attrs.get('values')))
    return rows


def table_markdown(rows: List[dict], search: 'Search', best: Optional[dict]) -> str:
    """The Markdown table of ``trials.md``, the best trial in bold.

    Args:
        rows (list[dict]): :func:`trial_rows`.
        search (Search): The search.
        best (dict, optional): ``dict(number=..., value=..., params=...)``, or None.

    Returns:
        str: The table with its title and the line naming the best trial.
    """
    unit = rows[0]['unit'] if rows else 'epoch'
    names = [p.name for p in search.params]
    seeds = search.spec.train_seeds
    metric = search.metric or 'metric'
    head = ['trial', *names, f'{metric} (mean over seeds {", ".join(map(str, seeds))})'
            if seeds else metric, *(['per seed'] if seeds else []), f'{unit}s run', 'pruned',
            'state']
    lines = [f'# {osp.basename(search.spec.config)}: {len(rows)} trials, {search.metric} '
             f'({search.spec.direction}) on the validation split', '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for row in rows:
        mark = '**' if best is not None and row['trial'] == best['number'] else ''
        cells = [f'{mark}{row["trial"]}{mark}', *(format_value(row['params'][n]) for n in names),
                 format_value(row['metric']),
                 *([' / '.join(map(format_value, row['values'] or [])) or '-'] if seeds else []),
                 format_value(row['run']), 'yes' if row['pruned'] else 'no',
                 row['state']]
        lines.append('| ' + ' | '.join(cells) + ' |')
    if best is not None:
        lines += ['', f'Best: trial {best["number"]}, {search.metric} '
                  f'{format_value(best["value"])}, {best["params"]}.']
    return '\n'.join(lines) + '\n'
