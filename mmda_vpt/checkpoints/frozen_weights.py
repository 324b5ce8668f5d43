"""A DA-VPT backbone's frozen weights: strict pre-trained loading and trainable-only completion.

A :class:`~mmda_vpt.models.backbones.PromptedViTMixin` backbone owns one :class:`FrozenWeights`
(its ``frozen_weights``). It knows where the frozen weights come from (the pointer of
:mod:`mmda_vpt.checkpoints.base_weights`), loads a pre-trained checkpoint strictly
(:meth:`FrozenWeights.load_pretrained`), fingerprints what the backbone holds
(:meth:`FrozenWeights.fingerprint`) and, as the backbone's first load-state-dict pre-hook,
completes a state dict that holds only the trained parameters from the base checkpoint it names
(:meth:`FrozenWeights.complete_state_dict`). A model never goes on with randomly initialized or
other frozen weights: a load that cannot be completed raises, naming the fix.

What it needs of the backbone is public: ``trainable_names()``, ``adapt_pretrained()``,
``check_loaded_keys()``, ``state_dict()``, ``load_state_dict()`` and its modules.
"""
import logging
import os.path as osp
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from .base_weights import (BASE_WEIGHTS_KEY, FINGERPRINT, decode_base_weights,
                           find_base_weights, is_local_checkpoint, resolve_base_weights,
                           same_base_weights, weights_fingerprint)
from .trainable_state import check_trainable_fit
from .vit_checkpoint import KNOWN_CONVERSIONS, converter_command

__all__ = ['FrozenWeights']


class FrozenWeights:
    """Where a backbone's frozen weights come from, and the loads that keep them right.

    Args:
        backbone (nn.Module): The DA-VPT backbone whose frozen weights these are.
        base_weights (dict, optional): ``{'path', 'prefix'}`` of the pre-trained checkpoint of
            its ``init_cfg`` (:func:`~.base_weights.base_weights_from_init_cfg`). Defaults to
            None.

    Attributes:
        base_weights (dict | None): The base checkpoint, the one ``init_cfg`` names or the one a
            loaded state dict names; written into every state dict of the backbone.
        source (dict | None): What the frozen weights hold now: None for the host's
            initialization, the pointer of a loaded base checkpoint, or ``{}`` after a full
            state dict without one.
    """

    def __init__(self, backbone: nn.Module, base_weights: Optional[dict] = None) -> None:
        self.backbone = backbone
        self.base_weights = base_weights
        self.source: Optional[dict] = None
        self._fingerprint: Optional[str] = None  # None: not computed since the last change
        self._loading_base = False
        self._internal_state = False

    @property
    def owner(self) -> str:
        """The backbone's class name, for messages."""
        return type(self.backbone).__name__

    def changed(self) -> None:
        """Forget the cached fingerprint: the frozen weights were (re-)initialized."""
        self._fingerprint = None

    # ------------------------------------------------------------------ fingerprints
    def tensors(self) -> Dict[str, torch.Tensor]:
        """The state-dict entries of the frozen weights (parameters and persistent buffers)."""
        tensors = {}
        for name, module in self.backbone.named_modules():
            scope = f'{name}.' if name else ''
            for key, param in module._parameters.items():
                if param is not None and not param.requires_grad:
                    tensors[scope + key] = param
            for key, buffer in module._buffers.items():
                if buffer is not None and key not in module._non_persistent_buffers_set:
                    tensors[scope + key] = buffer
        return tensors

    def fingerprint(self) -> Optional[str]:
        """:func:`~mmda_vpt.checkpoints.base_weights.weights_fingerprint` of the frozen weights.

        What a trainable-only checkpoint records of the base weights it leaves out; computed
        once after the frozen weights change. None inside the backbone's own state-dict reads.
        """
        if self._internal_state:
            return None
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self.tensors())
        return self._fingerprint

    def _own_state(self) -> Dict[str, torch.Tensor]:
        """The state dict (tensors as they are, no base-weights entry), for the load hooks."""
        self._internal_state = True
        try:
            own = self.backbone.state_dict(keep_vars=True)
        finally:
            self._internal_state = False
        own.pop(BASE_WEIGHTS_KEY, None)
        return own

    def converter_hint(self, path: str) -> str:
        """Which converter command writes the pre-trained checkpoint ``path`` for this host."""
        host = 'mmseg' if any(c.__module__.startswith('mmseg.')
                              for c in type(self.backbone).__mro__) else 'mmpretrain'
        command = converter_command(path, host,
                                    getattr(self.backbone, 'final_norm', True) is False)
        known = osp.basename(path) in KNOWN_CONVERSIONS
        return (('it is made by: ' if known else 'convert a downloaded ViT checkpoint to it '
                 'with: ') + f'{command} (see README "Pre-trained checkpoints")')

    # ------------------------------------------------------------------ loading
    def complete_state_dict(self, state_dict: dict, prefix: str, *args: Any,
                            **kwargs: Any) -> None:
        """Load pre-hook: complete a state dict that holds only the trained parameters.

        A state dict with every frozen tensor loads as it is. One without them (a checkpoint of
        ``TrainableCheckpointHook``) must fit the trained parameters exactly; the frozen tensors
        then come from the base checkpoint its ``_base_weights`` entry names: the first place
        whose weights have the entry's fingerprint (unless the backbone holds them already),
        or, for an entry without a fingerprint, the first file found (with a warning); or from
        the backbone when it holds loaded weights and the state dict names none. Otherwise the
        load fails.

        Args:
            state_dict (dict): The state dict being loaded; completed in place.
            prefix (str): The backbone's prefix in it.
        """
        entry = state_dict.pop(prefix + BASE_WEIGHTS_KEY, None)
        if self._loading_base:  # load_pretrained checks the base checkpoint itself
            return
        pointer = None
        if entry is not None:
            pointer = decode_base_weights(entry)
            self.base_weights = {k: v for k, v in pointer.items() if k in ('path', 'prefix')}
        given = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not given and entry is None:
            return
        own = self._own_state()
        trainable = set(self.backbone.trainable_names())
        frozen_missing = [k for k in own if k not in trainable and k not in given]
        if not frozen_missing:
            self.source = self.base_weights if pointer is not None else {}
            self._fingerprint = None  # the frozen weights are replaced by this load
            return
        check_trainable_fit(given, own, trainable, self.owner, prefix)
        if pointer is not None and pointer.get(FINGERPRINT) is not None:
            self._load_matching_base(pointer)
        elif pointer is not None:
            if not same_base_weights(pointer, self.source):
                filename = resolve_base_weights(pointer, self.converter_hint(pointer['path']))
                self.load_pretrained(filename, pointer.get('prefix'))
                self.source = self.base_weights
            print_log(
                f'{self.owner}: this trainable-only checkpoint records no fingerprint of its '
                f'base weights {pointer["path"]!r} (written before mmda_vpt recorded one), so '
                'nothing checks that the frozen weights are the ones it was trained on',
                logger='current', level=logging.WARNING)
        elif self.source is None:
            raise RuntimeError(
                f'this state dict holds {len(given)} of the {len(own)} tensors of '
                f'{self.owner} ({prefix or "no prefix"}) and names no base weights to '
                'complete it (a trainable-only checkpoint of a model without init_cfg '
                "type='Pretrained'): load the base weights first or use a full checkpoint")
        own = self._own_state()
        for key in frozen_missing:
            state_dict[prefix + key] = own[key].detach()

    def _load_matching_base(self, pointer: dict) -> None:
        """Load the first base checkpoint whose weights have the pointer's fingerprint."""
        if self.source is not None and self.fingerprint() == pointer[FINGERPRINT]:
            self.source = self.base_weights
            return

        def probe(filename: str) -> Tuple[Optional[str], None]:
            self.load_pretrained(filename, pointer.get('prefix'))
            return self.fingerprint(), None

        find_base_weights(pointer, probe, self.converter_hint(pointer['path']))
        self.source = self.base_weights

    def load_pretrained(self, filename: str, prefix: Optional[str] = None) -> None:
        """Load a pre-trained host checkpoint into the backbone, strictly.

        Args:
            filename (str): The checkpoint (a path or anything mmengine's loaders read).
            prefix (str, optional): Only the keys under this prefix, without it. Defaults to
                None (all keys).

        Raises:
            FileNotFoundError: A local file that does not exist (naming the converter).
            KeyError: No key under ``prefix``, or keys that do not fit the backbone.
        """
        from mmengine.runner.checkpoint import CheckpointLoader
        if is_local_checkpoint(filename) and not osp.isfile(osp.expanduser(filename)):
            raise FileNotFoundError(
                f'pre-trained checkpoint {filename} of {self.owner} (init_cfg) can not be '
                f'found; {self.converter_hint(filename)}')
        source = dict(path=filename, prefix=prefix)
        checkpoint = CheckpointLoader.load_checkpoint(filename, map_location='cpu')
        state_dict = checkpoint
        for key in ('state_dict', 'model', 'module'):
            if isinstance(state_dict, dict) and key in state_dict \
                    and isinstance(state_dict[key], dict):
                state_dict = state_dict[key]
                break
        if prefix:
            if not prefix.endswith('.'):
                prefix += '.'
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items()
                          if k.startswith(prefix)}
            if not state_dict:
                raise KeyError(f'checkpoint {filename} has no key starting with {prefix!r}')
        state_dict = self.backbone.adapt_pretrained(dict(state_dict))
        # Whatever happens below, the frozen weights are no longer what they were.
        self.source, self._fingerprint = None, None
        self._loading_base = True
        try:
            missing, unexpected = self.backbone.load_state_dict(state_dict, strict=False)
        finally:
            self._loading_base = False
        self.backbone.check_loaded_keys(missing, unexpected, filename)
        self.source = source
        print_log(f'{self.owner}: loaded pre-trained weights from {filename}', logger='current')
