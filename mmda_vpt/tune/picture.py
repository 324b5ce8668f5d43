"""Draw ``trials.png``: the validation metric of each trial against each searched value."""
import os.path as osp
from typing import TYPE_CHECKING, List

if TYPE_CHECKING:
    from .search import Search

__all__ = ['draw_trials']


def draw_trials(rows: List[dict], search: 'Search', path: str) -> None:
    """Draws one panel per searched parameter: completed trials as dots, pruned as crosses.

    Args:
        rows (list[dict]): :func:`~mmda_vpt.tune.table.trial_rows`.
        search (Search): The search.
        path (str): The picture file to write.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    params = search.params
    fig, axes = plt.subplots(1, len(params), figsize=(4 * len(params), 3.4), squeeze=False)
    for ax, param in zip(axes[0], params):
        for pruned, marker, label in ((False, 'o', 'completed'), (True, 'x', 'pruned')):
            points = [(r['params'][param.name], r['metric']) for r in rows
                      if r['pruned'] == pruned and r['metric'] is not None
                      and r['state'] in ('complete', 'pruned')]
            if not points:
                continue
            xs = [x for x, _ in points]
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
                order = [repr(v) for v in (param.values if param.is_grid else sorted(set(xs)))]
                xs = [order.index(repr(x)) for x in xs]
                ax.set_xticks(range(len(order)), order, rotation=30)
            ax.scatter(xs, [y for _, y in points], marker=marker, label=label)
        numeric = [r['params'][param.name] for r in rows
                   if isinstance(r['params'].get(param.name), (int, float))]
        if (not param.is_grid and param.values.log) or (
                numeric and min(numeric) > 0 and max(numeric) / min(numeric) >= 10):
            ax.set_xscale('log')
        ax.set_xlabel(param.name)
        ax.set_ylabel(f'{search.metric} (val)')
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f'{osp.basename(search.spec.config)}: {len(rows)} trials', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
