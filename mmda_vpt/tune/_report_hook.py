"""Hand each validation result of a trial's training run to the search (private to the tuner).

The search registers an instance on each trial's runner (``runner.register_hook``); it is not in
the ``HOOKS`` registry, as configs never name it (as mmengine's ``mmengine/tune/_report_hook``).
"""
import logging
from typing import Callable, Dict, List, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner.loops import IterBasedTrainLoop

__all__ = ['TrialReportHook']

#: ``report(step, value, metrics)``; it may raise (e.g. ``optuna.TrialPruned``) to stop training.
ReportFn = Callable[[int, float, Dict[str, float]], None]


class TrialReportHook(Hook):
    """Record one validation metric after every validation and hand it to ``report``.

    The step of a result is the number of epochs trained so far for an epoch-based training
    loop, of iterations for an iteration-based one (``unit`` says which). The search
    (:class:`~mmda_vpt.tune.Search`) registers one on each trial's runner with a ``report``
    that passes the value to Optuna and raises ``optuna.TrialPruned`` when the trial should
    stop; the hook itself knows nothing of Optuna. An exception raised by ``report`` stops the
    run where it is.

    Args:
        metric (str, optional): The metric to record, as the evaluator names it (e.g.
            ``'accuracy/top1'``, ``'mIoU'``); the first one the evaluator returns when None.
            Defaults to None.
        report (callable, optional): Called as ``report(step, value, metrics)`` after each
            validation. Defaults to None.

    Attributes:
        history (list[dict]): ``dict(step=..., value=..., metrics=...)`` per validation.
        unit (str): ``'epoch'`` or ``'iter'``.
    """

    priority = 'LOWEST'

    def __init__(self, metric: Optional[str] = None, report: Optional[ReportFn] = None) -> None:
        self.metric = metric
        self.report = report
        self.history: List[dict] = []
        self.unit = 'epoch'

    def before_train(self, runner) -> None:
        self.unit = 'iter' if isinstance(runner.train_loop, IterBasedTrainLoop) else 'epoch'

    @property
    def last_step(self) -> Optional[int]:
        """The step of the last recorded validation, None before the first."""
        return self.history[-1]['step'] if self.history else None

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if not metrics:
            return
        if self.metric is None:
            self.metric = next(iter(metrics))
            print_log(f'TrialReportHook: recording the first metric, {self.metric!r}',
                      logger='current', level=logging.INFO)
        if self.metric not in metrics:
            raise KeyError(f'the evaluator produced no metric {self.metric!r}; it produced '
                           f'{", ".join(sorted(metrics))}')
        step = runner.epoch if self.unit == 'epoch' else runner.iter
        value = float(metrics[self.metric])
        self.history.append(
            dict(step=int(step), value=value,
                 metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))}))
        if self.report is not None:
            self.report(int(step), value, dict(metrics))
