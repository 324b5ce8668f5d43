"""Linear warm-up inside one cosine period, as timm's ``CosineLRScheduler`` schedules it."""
import math
from numbers import Real
from typing import List, Optional, Union

from mmengine.optim import BaseOptimWrapper, _ParamScheduler
from mmengine.optim.scheduler.param_scheduler import INF
from mmengine.registry import PARAM_SCHEDULERS
from torch.optim import Optimizer

__all__ = ['WarmupCosineLR']


@PARAM_SCHEDULERS.register_module()
class WarmupCosineLR(_ParamScheduler):
    r"""Cosine decay over ``T_max`` steps counted from ``begin``, the warm-up included.

    The learning rate of a parameter group with base rate :math:`\eta_{base}` at step
    :math:`t` (0 at ``begin``) is

    .. math::
        \eta_t = \begin{cases}
            \eta_{w} + \frac{t}{T_w}(\eta_{base} - \eta_{w}), & t < T_w \\
            \eta_{min} + \frac{1}{2}(\eta_{base} - \eta_{min})
                \left(1 + \cos\frac{\pi t}{T_{max}}\right), & T_w \le t < T_{max} \\
            \eta_{min}, & t \ge T_{max}
        \end{cases}

    with :math:`T_w` = ``warmup_epochs``, :math:`\eta_w` = ``warmup_start_lr`` and
    :math:`\eta_{min}` = ``eta_min``, both absolute rates (the same for every parameter group).
    This is timm's ``CosineLRScheduler`` with ``warmup_prefix=False``, one cycle
    (``cycle_limit=1``), no noise and ``k_decay=1``, as the DA-VPT authors build it
    (``timm.scheduler.create_scheduler``): the cosine runs over the whole schedule, warm-up
    included, so it has fallen to 0.976 of the peak when the warm-up ends (``T_w / T_max =
    0.1``) and to one half at ``T_max / 2``. Unlike mmengine's ``LinearLR`` followed by
    ``CosineAnnealingLR``, the warm-up starts from an absolute rate and the cosine does not
    restart at its end.

    With ``by_epoch=True`` the rate changes once per epoch (timm's ``t_in_epochs=True``); with
    ``convert_to_iter_based=True`` in the config, ``T_max``, ``warmup_epochs``, ``begin`` and
    ``end`` are multiplied by the epoch length and the rate changes every iteration (timm's
    ``t_in_epochs=False``, the authors' ``sched_on_updates: true``), reaching the values above at
    the first iteration of each epoch.

    The rate is computed in closed form from the step and the group's initial rate and set
    outright, so this scheduler is meant to be the only learning-rate scheduler over its range
    (it replaces the warm-up scheduler too). Its state is mmengine's (``last_step``, the base
    rates), so a resumed run continues the schedule.

    Args:
        optimizer (Optimizer or BaseOptimWrapper): The wrapped optimizer.
        T_max (int or float, optional): Length of the cosine period in steps (epochs when
            ``by_epoch=True``), counted from ``begin`` and including the warm-up. Defaults to
            None: ``end - begin``.
        warmup_epochs (int or float): Steps of linear warm-up (epochs when ``by_epoch=True``);
            0 for none. Defaults to 10 (the paper's).
        warmup_start_lr (float): Absolute learning rate at step 0 of the warm-up. Defaults to
            1e-8 (the authors').
        eta_min (float): Absolute learning rate the cosine ends at. Defaults to 1e-8 (the
            paper's).
        begin (int): Step at which the schedule starts. Defaults to 0.
        end (int): Step at which the scheduler stops updating the rate. Defaults to INF.
        last_step (int): The index of the last step, for resuming without a state dict.
            Defaults to -1.
        by_epoch (bool): Whether the steps are epochs. Defaults to True.
        verbose (bool): Whether to log the rate at each update. Defaults to False.
    """

    def __init__(self,
                 optimizer: Union[Optimizer, BaseOptimWrapper],
                 T_max: Optional[Real] = None,
                 warmup_epochs: Real = 10,
                 warmup_start_lr: float = 1e-8,
                 eta_min: float = 1e-8,
                 begin: int = 0,
                 end: int = INF,
                 last_step: int = -1,
                 by_epoch: bool = True,
                 verbose: bool = False) -> None:
        if T_max is None:
            if end == INF:
                raise ValueError('WarmupCosineLR needs T_max, or a finite end to take '
                                 'T_max = end - begin from')
            T_max = end - begin
        if not T_max > 0:
            raise ValueError(f'WarmupCosineLR: T_max must be positive, got {T_max!r}')
        if not 0 <= warmup_epochs < T_max:
            raise ValueError('WarmupCosineLR: warmup_epochs must be in [0, T_max) = '
                             f'[0, {T_max!r}), got {warmup_epochs!r}')
        for name, value in (('warmup_start_lr', warmup_start_lr), ('eta_min', eta_min)):
            if not value >= 0:
                raise ValueError(f'WarmupCosineLR: {name} must be >= 0, got {value!r}')
        self.T_max = T_max
        self.warmup_epochs = warmup_epochs
        self.warmup_start_lr = warmup_start_lr
        self.eta_min = eta_min
        super().__init__(
            optimizer,
            param_name='lr',
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose)

    @classmethod
    def build_iter_from_epoch(cls,
                              *args,
                              T_max: Optional[Real] = None,
                              warmup_epochs: Real = 10,
                              begin: int = 0,
                              end: int = INF,
                              by_epoch: bool = True,
                              epoch_length: Optional[int] = None,
                              **kwargs) -> 'WarmupCosineLR':
        """Builds the iteration-based scheduler of an epoch-based config.

        Called by mmengine's ``PARAM_SCHEDULERS`` build for ``convert_to_iter_based=True``.

        Args:
            *args: Passed on (the optimizer).
            T_max (int or float, optional): Cosine period in epochs. Defaults to None.
            warmup_epochs (int or float): Warm-up in epochs. Defaults to 10.
            begin (int): First epoch. Defaults to 0.
            end (int): Last epoch (exclusive). Defaults to INF.
            by_epoch (bool): Must be True. Defaults to True.
            epoch_length (int, optional): Iterations per epoch. Defaults to None.
            **kwargs: Passed on (``warmup_start_lr``, ``eta_min``...).

        Returns:
            WarmupCosineLR: The scheduler, stepping per iteration.
        """
        if not by_epoch:
            raise ValueError('WarmupCosineLR: only an epoch-based config (by_epoch=True) can '
                             'be converted to iterations')
        if epoch_length is None or epoch_length <= 0:
            raise ValueError('WarmupCosineLR: epoch_length must be a positive integer, got '
                             f'{epoch_length!r}')
        if T_max is not None:
            T_max = T_max * epoch_length
        begin = int(begin * epoch_length)
        if end != INF:
            end = int(end * epoch_length)
        return cls(*args, T_max=T_max, warmup_epochs=warmup_epochs * epoch_length, begin=begin,
                   end=end, by_epoch=False, **kwargs)

    def lr_at(self, step: Real, base_lr: float) -> float:
        """The learning rate at a step of this schedule.

        Args:
            step (int or float): Steps since ``begin``.
            base_lr (float): The group's initial (peak) learning rate.

        Returns:
            float: The learning rate.
        """
        if step < self.warmup_epochs:
            return (self.warmup_start_lr +
                    step * (base_lr - self.warmup_start_lr) / self.warmup_epochs)
        if step < self.T_max:
            return self.eta_min + 0.5 * (base_lr - self.eta_min) * (
                1 + math.cos(math.pi * step / self.T_max))
        return self.eta_min

    def _get_value(self) -> List[float]:
        """The learning rate of every parameter group at ``last_step``."""
        return [self.lr_at(self.last_step, base) for base in self.base_values]
