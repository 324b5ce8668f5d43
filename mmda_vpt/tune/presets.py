"""The preset search spaces (VPT's grids, DA-VPT's ranges) and how one changes a config."""
import logging
from typing import Any, Callable, Dict, List

from mmengine.config import Config, ConfigDict

from .config_paths import PathKey

__all__ = ['PRESETS', 'apply_preset']

_VPT_WD = [0.01, 0.001, 0.0001, 0.0]
_VPT_PROMPT_LR = [50.0, 25.0, 10.0, 5.0, 2.5, 1.0, 0.5, 0.25, 0.1]

#: The presets: their space and, for VPT's, the optimizer they switch to. VPT's learning rates
#: are base rates, scaled by the training batch size / 256 (KMnP/vpt tune_fgvc.py and
#: tune_vtab.py); the authors of DA-VPT search AdamW's lr, weight decay and beta = lambda.
PRESETS: Dict[str, dict] = {
    'vpt-prompt': dict(space={'lr': _VPT_PROMPT_LR, 'weight_decay': _VPT_WD}, sgd=True),
    'vpt-linear': dict(space={'lr': _VPT_PROMPT_LR + [0.05], 'weight_decay': _VPT_WD}, sgd=True),
    'davpt': dict(space={'lr': [1e-4, 5e-4, 1e-3, 5e-3, 1e-2],
                         'weight_decay': [0.0, 1e-4, 1e-2, 0.05],
                         'beta+lam': [0.01, 0.05, 0.1]}, sgd=False),
}


def apply_preset(cfg: Config, preset: str, replaced: List[PathKey],
                 log: Callable[[str, int], None]) -> Dict[str, Any]:
    """The space of ``preset``; a VPT preset also switches ``cfg``'s optimizer to SGD.

    Args:
        cfg (Config): The search's base config, changed in place.
        preset (str): A key of :data:`PRESETS`.
        replaced (list): Gets the config paths the preset replaces whole (``best.py`` writes
            them with ``_delete_``).
        log (callable): ``log(message, level)``.

    Returns:
        dict: Name -> list of values, the learning rates scaled to the batch size for VPT's.

    Raises:
        ValueError: On an unknown preset.
    """
    if preset not in PRESETS:
        raise ValueError(f'unknown preset {preset!r}; known: {", ".join(PRESETS)}')
    space = {k: list(v) for k, v in PRESETS[preset]['space'].items()}
    if not PRESETS[preset]['sgd']:
        log(f'preset {preset}: {space} with the config\'s '
            f'{cfg.optim_wrapper.optimizer.get("type")}', logging.INFO)
        return space
    batch = cfg.train_dataloader.batch_size
    old = cfg.optim_wrapper.optimizer
    cfg.optim_wrapper.optimizer = ConfigDict(
        type='SGD', lr=old.get('lr', 0.1), momentum=0.9,
        weight_decay=old.get('weight_decay', 0.0))
    replaced.append(('optim_wrapper', 'optimizer'))
    space['lr'] = [float(f'{v * batch / 256:.6g}') for v in space['lr']]
    log(f'preset {preset}: the optimizer {old.get("type")} becomes SGD with '
        f'momentum 0.9 (VPT\'s), lr = VPT\'s base lr x batch {batch} / 256: '
        f'{space["lr"]}; weight decay {space["weight_decay"]}', logging.WARNING)
    return space
