"""The DA-VPT metric guidance as a hook on stock classifiers and segmentors."""
from typing import Dict, Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from mmda_vpt.datasets.class_list import apply_run_classes, trained_classes
from mmda_vpt.models.losses import PromptProxyAnchorLoss
from mmda_vpt.mapping.labels import image_labels, is_segmentation_batch, patch_labels
from mmda_vpt.checkpoints.trainable_state import log_trainable_params
from mmda_vpt.utils.model_access import (add_loss_callback, get_class_prompt_map,
                                         get_davpt_backbone, model_ignore_index,
                                         model_num_classes, remove_loss_callback)

__all__ = ['PromptMetricLossHook']

CALLBACK_NAME = 'prompt_metric_loss'

PROMPT_TAPS = ('query', 'raw')
PATCH_TAPS = ('attn', 'input_mean')


@HOOKS.register_module()
class PromptMetricLossHook(Hook):
    """Adds the DA-VPT losses ``beta * L_ML(x, p)`` and ``lam * L_ML(p, x_cls)`` to training.

    Listed in ``custom_hooks``, it attaches to the model the runner trains (a stock
    ``ImageClassifier`` or ``EncoderDecoder``, wrapped for distributed training or not) and adds
    ``loss_ml_patch`` and ``loss_ml_cls`` (already weighted) to its loss dict. A head loss
    named plainly ``loss`` (mmpretrain's classification heads) becomes ``loss_cls`` while the
    hook is attached: mmengine logs the optimized total as ``loss``, which a head's own
    ``loss`` would overwrite in the logs and in ``train_step``'s outputs. So during training
    ``model.loss(...)`` has ``loss_cls`` instead of ``loss``, and a run resumed from a
    checkpoint written without the hook has the cross-entropy, then the total, in its
    ``train/loss`` history. Validation and testing are untouched. The class-to-prompt map
    comes from a ``ClassPromptMappingHook`` in the same runner, through the model
    (:func:`~mmda_vpt.utils.model_access.get_class_prompt_map`); without one, class c goes to
    prompt c mod M (with a warning). Before training (and testing) the splits that label by
    class folders get one class list
    (:func:`~mmda_vpt.datasets.class_list.apply_run_classes`).

    Args:
        beta (float): Weight of the patch term L_ML(x, p). Defaults to 0.05.
        lam (float): Weight of the CLS term L_ML(p, x_cls). Defaults to 0.05.
        margin (float): Proxy-Anchor margin delta. Defaults to 0.1.
        alpha (float): Proxy-Anchor scale 1 / tau. Defaults to 32.
        pos_reduction (str): ``'with_positives'`` (paper) or ``'all'`` (authors' code).
            Defaults to ``'with_positives'``.
        prompt_tap (str): Proxies: ``'query'``, the prompts' query projection as attention
            computes it, ``LN(p) W_Q + b_Q`` (paper), or ``'raw'``, the prompt parameters
            (authors' code). Defaults to ``'query'``.
        patch_tap (str): Patch samples: ``'attn'``, the post-attention patch representations,
            one sample per patch (paper), or ``'input_mean'``, the per-image mean of the
            block-input patch tokens (authors' code). Defaults to ``'attn'``.
        patch_topk (int, optional): Keep only the k patches per image with the largest
            post-attention norm. Defaults to None (all patches).
        proxy_scale (float): The authors' ``loss_vpt_scale_ratio``: the normalized proxies are
            multiplied by it, so the effective Proxy-Anchor scale is ``alpha * proxy_scale``
            and the effective margin ``margin / proxy_scale``. Defaults to 1.0 (Eq. 4).
        log_grad_norms (int, optional): Every ``log_grad_norms`` iterations, log the norm of
            the gradient of each loss term (``ce``: the model's own losses; ``ml_patch``;
            ``ml_cls``, weighted as optimized) on the prompts of each guided layer
            (``train/grad_norm/<term>/layer<i>``) and of the cross-entropy on the head's
            trainable parameters (``train/grad_norm/ce/head``). mmengine's log processor
            sends them, with the losses, to the visualizer's backends (TensorBoard, ...), beside
            :class:`PromptVisualizationHook`'s ``prompt_map/*`` scalars. Each logged step costs
            one extra backward per term. Defaults to None (off).
    """

    priority = 'NORMAL'

    def __init__(self,
                 beta: float = 0.05,
                 lam: float = 0.05,
                 margin: float = 0.1,
                 alpha: float = 32.0,
                 pos_reduction: str = 'with_positives',
                 prompt_tap: str = 'query',
                 patch_tap: str = 'attn',
                 patch_topk: Optional[int] = None,
                 proxy_scale: float = 1.0,
                 log_grad_norms: Optional[int] = None) -> None:
        if prompt_tap not in PROMPT_TAPS:
            raise ValueError(f'prompt_tap must be one of {PROMPT_TAPS}, got {prompt_tap!r}')
        if patch_tap not in PATCH_TAPS:
            raise ValueError(f'patch_tap must be one of {PATCH_TAPS}, got {patch_tap!r}')
        if patch_topk is not None and patch_topk < 1:
            raise ValueError(f'patch_topk must be None or >= 1, got {patch_topk}')
        if log_grad_norms is not None and (isinstance(log_grad_norms, bool)
                                           or not isinstance(log_grad_norms, int)
                                           or log_grad_norms < 1):
            raise ValueError(f'log_grad_norms must be None or an int >= 1, got {log_grad_norms!r}')
        if beta < 0 or lam < 0:
            raise ValueError(f'beta and lam must be >= 0, got {beta} and {lam}')
        self.beta = float(beta)
        self.lam = float(lam)
        self.prompt_tap = prompt_tap
        self.patch_tap = patch_tap
        self.patch_topk = patch_topk
        self.loss = PromptProxyAnchorLoss(margin=margin, alpha=alpha,
                                          pos_reduction=pos_reduction, proxy_scale=proxy_scale)
        self.log_grad_norms = log_grad_norms
        #: The gradient norms of the last logged step: {'ce/layer4': ..., 'ce/head': ...}.
        self.grad_norms: Dict[str, float] = {}
        self._message_hub = None
        self._iter = 0
        self.num_classes = 0
        self.ignore_index = 255
        self._warned_fallback = False
        self._trained_classes = None  # the classes of the loaded checkpoint's training run
        # (the last map used, as checked on the CPU; device; M; the map on the device)
        self._device_map: Optional[tuple] = None

    # ------------------------------------------------------------------ hook points
    def before_run(self, runner) -> None:
        apply_run_classes(runner)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._trained_classes = trained_classes(checkpoint)

    def before_val(self, runner) -> None:
        # runner.val() alone calls before_run before it loads the checkpoint: label the val
        # split here, through the classes the checkpoint was trained with.
        apply_run_classes(runner, self._trained_classes)

    def before_test(self, runner) -> None:
        apply_run_classes(runner, self._trained_classes)

    def attach(self, model) -> None:
        """Add the metric losses to every ``model.loss`` from now on.

        ``before_train`` calls it; a caller without a runner (the benchmark) can call it.

        Args:
            model (nn.Module): A classifier or segmentor with a DA-VPT backbone, wrapped or not.
        """
        backbone = get_davpt_backbone(model, 'PromptMetricLossHook')
        if not backbone.guided_layers:
            raise ValueError('PromptMetricLossHook needs guided layers: the backbone has '
                             'guided_layers=()')
        self.num_classes = model_num_classes(model)
        self.ignore_index = model_ignore_index(model)
        add_loss_callback(model, CALLBACK_NAME, self._add_losses)

    def detach(self, model) -> None:
        """Stop adding the metric losses to ``model.loss``."""
        remove_loss_callback(model, CALLBACK_NAME)

    def before_train(self, runner) -> None:
        self.attach(runner.model)
        self._message_hub = getattr(runner, 'message_hub', None)
        log_trainable_params(runner.model)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._iter = runner.iter

    def after_train(self, runner) -> None:
        self.detach(runner.model)

    # ------------------------------------------------------------------ the losses
    def class_to_prompt(self, num_prompts: int, device: torch.device,
                        class_map: Optional[object] = None) -> torch.Tensor:
        """(C,) prompt of every class: the mapping hook's, or c mod M.

        The mapping hook's map (a small CPU tensor, replaced at every update) is checked and
        copied to ``device`` once per map, not once per step: a step only compares it with the
        copy it last checked, on the host.

        Args:
            num_prompts (int): M, the prompts of the guided layers.
            device (torch.device): Where the map is needed.
            class_map (ClassPromptMap, optional): The model's class-to-prompt map
                (:func:`~mmda_vpt.utils.model_access.get_class_prompt_map`). Defaults to None
                (c mod M).

        Returns:
            Tensor: (C,) LongTensor on ``device``.
        """
        mapping = getattr(class_map, 'class_to_prompt', None)
        if mapping is not None:
            cached = self._device_map
            if (cached is not None and cached[1:3] == (device, num_prompts)
                    and mapping.device.type == 'cpu' and torch.equal(mapping, cached[0])):
                return cached[-1]
            self._check_map(mapping, num_prompts)
            self._device_map = (mapping.detach().cpu().clone(), device, num_prompts,
                                mapping.to(device))
            return self._device_map[-1]
        if not self._warned_fallback:
            print_log('PromptMetricLossHook: no ClassPromptMappingHook map available; class c '
                      f'goes to prompt c mod {num_prompts}', logger='current', level=30)
            self._warned_fallback = True
        return torch.arange(self.num_classes, device=device) % num_prompts

    def _check_map(self, mapping: torch.Tensor, num_prompts: int) -> None:
        if mapping.numel() != self.num_classes:
            raise ValueError(f'the class-to-prompt map has {mapping.numel()} entries for '
                             f'{self.num_classes} classes')
        low, high = (int(v) for v in torch.stack(torch.aminmax(mapping)).tolist())
        if low < 0 or high >= num_prompts:
            raise ValueError(f'the class-to-prompt map names prompts {low} to {high} but the '
                             f'guided layers have {num_prompts} prompts')

    @staticmethod
    def _to_prompts(labels: torch.Tensor, class_to_prompt: torch.Tensor) -> torch.Tensor:
        """The prompt of each class label; -1 (an unlabelled image or patch) stays -1.

        Class labels are range-checked and the map validated before: no host read here.
        """
        return torch.where(labels >= 0, class_to_prompt[labels.clamp(min=0)], -1)

    def _patch_samples(self, taps, layer: int, prompts: torch.Tensor,
                       patch_prompts: Optional[torch.Tensor]):
        """Samples (n, D) and their prompt labels (n,) for the patch term of one layer."""
        if self.patch_tap == 'input_mean':
            return taps.patch_input[layer].mean(dim=1), prompts
        feats = taps.patch_attn[layer]  # (B, N, D)
        if self.patch_topk is not None and self.patch_topk < feats.shape[1]:
            top = feats.detach().norm(dim=-1).topk(self.patch_topk, dim=1).indices
            feats = feats.gather(1, top[..., None].expand(-1, -1, feats.shape[-1]))
            patch_prompts = patch_prompts.gather(1, top)
        return feats.flatten(0, 1), patch_prompts.flatten()

    def compute(self, backbone, data_samples,
                class_map: Optional[object] = None) -> Dict[str, torch.Tensor]:
        """``loss_ml_patch`` and ``loss_ml_cls`` from the taps of the last training forward.

        Args:
            backbone (PromptedBackbone): The backbone that ran the forward.
            data_samples (list): The forward's data samples (their labels).
            class_map (ClassPromptMap, optional): The class-to-prompt map
                (:meth:`class_to_prompt`). Defaults to None (c mod M).

        Returns:
            dict[str, Tensor]: The two weighted losses.
        """
        taps = backbone.taps
        if taps is None:
            raise RuntimeError('the backbone recorded no taps: it must run in training mode '
                               'with record_taps=True')
        proxies_all = taps.prompt_query if self.prompt_tap == 'query' else taps.prompt_raw
        num_prompts = proxies_all[0].shape[0]
        device = proxies_all[0].device
        mapping = self.class_to_prompt(num_prompts, device, class_map)
        labels = image_labels(data_samples, self.num_classes, self.ignore_index).to(device)
        # Class labels become prompt labels once per step, for every guided layer.
        prompts = self._to_prompts(labels, mapping)
        patch_prompts = None
        if self.beta > 0 and self.patch_tap != 'input_mean':
            if is_segmentation_batch(data_samples):
                # The pixel labels were checked by image_labels above.
                per_patch = patch_labels(data_samples, taps.patch_resolution, self.num_classes,
                                         self.ignore_index, check=False).to(device)
                patch_prompts = self._to_prompts(per_patch, mapping)
            else:
                patch_prompts = prompts[:, None].expand(-1, taps.patch_attn[0].shape[1])
        patch_losses, cls_losses = [], []
        for layer, proxies in enumerate(proxies_all):
            if self.beta > 0:
                samples, sample_prompts = self._patch_samples(taps, layer, prompts,
                                                              patch_prompts)
                patch_losses.append(
                    self.loss(proxies, samples, sample_prompts, check_labels=False))
            if self.lam > 0 and taps.cls_query:
                cls_losses.append(
                    self.loss(proxies, taps.cls_query[layer], prompts, check_labels=False))
        zero = proxies_all[0].sum() * 0.0
        loss_patch = torch.stack(patch_losses).mean() if patch_losses else zero
        loss_cls = torch.stack(cls_losses).mean() if cls_losses else zero
        return dict(loss_ml_patch=self.beta * loss_patch, loss_ml_cls=self.lam * loss_cls)

    def _add_losses(self, model, inputs, data_samples, losses: dict) -> None:
        if 'loss' in losses and 'loss_cls' not in losses:
            # mmengine's parse_losses logs the sum of all terms as 'loss', then a term named
            # 'loss' overwrites it in the log (not in the optimized sum).
            losses['loss_cls'] = losses.pop('loss')
        losses.update(self.compute(model.backbone, data_samples, get_class_prompt_map(model)))
        if self.log_grad_norms and (self._iter + 1) % self.log_grad_norms == 0:
            self._log_grad_norms(model, losses)

    def _log_grad_norms(self, model, losses: dict) -> None:
        """Norms of each term's gradient on the guided prompts and of the CE's on the head."""
        backbone = model.backbone
        prompts = [backbone.prompts[str(layer)] for layer in backbone.guided_layers]
        head = getattr(model, 'head', None) or getattr(model, 'decode_head', None)
        head_params = [p for p in head.parameters() if p.requires_grad] if head else []
        ce = [v for k, v in losses.items() if 'loss' in k and not k.startswith('loss_ml_')
              and isinstance(v, torch.Tensor) and v.requires_grad]
        terms = dict(ce=sum(v.sum() for v in ce) if ce else None,
                     ml_patch=losses['loss_ml_patch'], ml_cls=losses['loss_ml_cls'])
        norms = {}
        for name, term in terms.items():
            if term is None or not term.requires_grad:
                continue
            targets = prompts + (head_params if name == 'ce' else [])
            grads = torch.autograd.grad(term, targets, retain_graph=True, allow_unused=True)
            for layer, grad in zip(backbone.guided_layers, grads):
                norms[f'{name}/layer{layer}'] = 0.0 if grad is None else float(grad.norm())
            if name == 'ce' and head_params:
                head_grads = [g for g in grads[len(prompts):] if g is not None]
                norms['ce/head'] = float(torch.stack([g.norm() for g in head_grads]).norm()) \
                    if head_grads else 0.0
        self.grad_norms = norms
        if self._message_hub is not None:
            for key, value in norms.items():
                self._message_hub.update_scalar(f'train/grad_norm/{key}', value)
