"""Build the model of a config and load a trained checkpoint into it strictly."""
import copy
import importlib
from typing import Any, Dict, Optional, Union

import torch.nn as nn
from mmengine.config import Config
from mmengine.model.utils import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model

from mmda_vpt.checkpoints.base_weights import is_base_weights_key
from .runner import library_of, register_library

__all__ = ['build_model', 'load_checkpoint_strictly', 'load_model', 'without_init_cfg']


def without_init_cfg(cfg: Any) -> Any:
    """A copy of a model config with every ``init_cfg`` and ``pretrained`` set to None.

    Args:
        cfg (Any): A model config (dicts, lists and tuples are walked).

    Returns:
        Any: The copy.
    """
    if isinstance(cfg, dict):
        out = type(cfg)()
        for key, value in cfg.items():
            out[key] = None if key in ('init_cfg', 'pretrained') else without_init_cfg(value)
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(without_init_cfg(v) for v in cfg)
    return cfg


def build_model(cfg: Config, init_cfg: bool = True) -> nn.Module:
    """The model of ``cfg`` on the CPU, in eval mode, built by its library's registry.

    Args:
        cfg (Config): A loaded config.
        init_cfg (bool): Keep the ``init_cfg`` entries (nothing is loaded until
            ``init_weights``). Defaults to True.

    Returns:
        nn.Module: The model, weights as initialized at construction, SyncBN reverted to BN.
    """
    library = library_of(cfg)
    register_library(cfg)
    models = importlib.import_module(f'{library}.registry').MODELS
    model_cfg = copy.deepcopy(cfg.model) if init_cfg else without_init_cfg(cfg.model)
    if library == 'mmseg':
        model_cfg.train_cfg = None
    with DefaultScope.overwrite_default_scope(library):
        model = models.build(model_cfg)
    return revert_sync_batchnorm(model).eval()


def load_checkpoint_strictly(model: nn.Module, checkpoint: str) -> Dict[str, Any]:
    """Load a full, trainable-only or exported checkpoint into ``model``, every key checked.

    A trainable-only checkpoint brings its frozen weights from the base checkpoint its
    ``_base_weights`` entry names (see :mod:`mmda_vpt.checkpoints.base_weights`); one written
    before the checkpoints named their base weights gets those of the model's ``init_cfg``.

    Args:
        model (nn.Module): A model built by :func:`build_model` (``init_cfg`` kept for the
            oldest trainable-only checkpoints).
        checkpoint (str): The checkpoint file.

    Returns:
        dict: The checkpoint as read (``state_dict``, ``meta`` ...).

    Raises:
        RuntimeError: If a key is missing or unexpected (mmengine's strict loading).
    """
    loaded = _load_checkpoint(checkpoint, map_location='cpu')
    state = loaded.get('state_dict', loaded)
    own = {k for k in model.state_dict() if not is_base_weights_key(k)}
    if not any(is_base_weights_key(k) for k in state) and own - set(state):
        model.init_weights()
    _load_checkpoint_to_model(model, loaded, strict=True)
    return loaded


def load_model(config: Union[str, Config], checkpoint: str, device: str = 'cpu',
               cfg_options: Optional[dict] = None) -> nn.Module:
    """The trained model of ``config`` and ``checkpoint``, in eval mode on ``device``.

    Unlike the host libraries' ``get_model`` / ``init_model``, the checkpoint must fit the
    model exactly (:func:`load_checkpoint_strictly`). The model gets ``cfg`` (the merged
    config) and, where the checkpoint's ``meta`` has one, ``dataset_meta``.

    Args:
        config (str | Config): The config file or a loaded config.
        checkpoint (str): A full, trainable-only or exported checkpoint of that config.
        device (str): The device. Defaults to ``'cpu'``.
        cfg_options (dict, optional): Overrides merged into the config. Defaults to None.

    Returns:
        nn.Module: The model.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = build_model(cfg)
    loaded = load_checkpoint_strictly(model, checkpoint)
    dataset_meta = (loaded.get('meta') or {}).get('dataset_meta')
    if dataset_meta is not None:
        model.dataset_meta = dataset_meta
    model.cfg = cfg
    return model.to(device).eval()
