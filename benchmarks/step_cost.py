#!/usr/bin/env python
"""Cost of DA-VPT against VPT-Deep, full fine-tuning and a linear probe (issue 8).

Measures, in one process, with the variants interleaved step by step and repeated (medians):

* the training step (data preprocessing, forward, loss, backward, optimizer step) time and peak
  memory of ``linear_probe``, ``vpt_deep``, ``davpt`` (both metric losses on two guided layers),
  ``davpt_plus`` (``davpt`` + K/V bias tuning) and ``full_ft``, for

  - ``cls``: an mmpretrain ``ImageClassifier`` (``DAVPTViT`` ViT-B/16 at 224 + ``LinearClsHead``,
    200 classes as CUB), AdamW;
  - ``seg``: an mmsegmentation ``EncoderDecoder`` built from mmseg's own
    ``setr_vit-l_pup_8xb2-160k_ade20k-512x512.py`` (ViT-L/16 at 512, SETR-PUP decode head and its
    three auxiliary heads, 150 classes), SGD with momentum as that config; plus ``vpt_deep_cp``
    and ``davpt_cp``, the same with the backbone's ``with_cp`` activation checkpointing;

* the inference latency per image (eval mode, ``mode='tensor'``) of VPT-Deep, DA-VPT and
  DA-VPT+ (and the prompt-free ViT as a reference);
* the class-to-prompt k-means time (initial fit and warm-started update) for 200, 555 and 1000
  classes of 768- and 1024-dim class features into 10 to 60 groups.

Every training step goes through the stock ``model.train_step(data, optim_wrapper)`` that
mmengine's loops call; DA-VPT's metric losses are added by ``PromptMetricLossHook`` exactly as in
training (through the model's loss callback), and so is the per-step feature accumulation of
``ClassPromptMappingHook``. Times are recorded as wall clock and process CPU time; targets are
judged on the CPU time on the CPU (a shared machine's other jobs enter the wall clock) and on the
wall clock on CUDA. An A/A control (a second VPT-Deep model) gives the noise floor of the
inference ratios, and the operator traces of the variants' inference are compared. Before
timing, one instrumented step per variant checks that no frozen parameter received a gradient,
counts the forward and backward matmul / conv / attention FLOPs (``torch.utils.flop_counter``),
so the absence of weight gradients is visible as a backward/forward FLOP ratio near 1 (near 2
for full fine-tuning), and counts the step's host reads (synchronizations on a GPU).

Peak training memory of a variant = its persistent bytes (its parameters, buffers and optimizer
state) + the peak of the bytes allocated during one training step above what was allocated at
the step's start. On CUDA the step peak is ``torch.cuda.max_memory_allocated()`` minus
``torch.cuda.memory_allocated()`` at the start (after ``reset_peak_memory_stats``). On the CPU,
where torch has no allocator statistics, it is read from ``torch.profiler`` with
``profile_memory=True``: every allocation event of PyTorch's CPU allocator during the step carries
the running total of the bytes allocated (and not yet freed) since profiling began, and the peak
is the maximum of that total. The saved-for-backward activation bytes (unique storages other
than parameters, counted with ``torch.autograd.graph.saved_tensors_hooks``) are reported as
well, as a cross-check that explains where the memory goes.

Usage (from the repository root)::

    python -m benchmarks.step_cost --out benchmarks/results/cpu            # CPU, full sizes
    python -m benchmarks.step_cost --quick --out /tmp/smoke                # tiny sizes, seconds
    python -m benchmarks.step_cost --device cuda --repeats 20 --out benchmarks/results/cuda

Run it under ``nice`` on a shared machine; timing drifts by +-15% over tens of seconds, which is
why variants are interleaved and ratios are medians of per-round paired ratios.
"""
import argparse
import copy
import datetime
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn


__all__ = [
    'SIZES', 'TARGETS', 'BenchSize', 'Variant', 'build_variants', 'attach_davpt_hooks',
    'check_frozen_grads', 'count_step_flops', 'count_step_host_reads', 'step_peak_bytes',
    'saved_activation_bytes', 'persistent_bytes', 'carried_bytes', 'interleaved_times',
    'paired_ratio', 'bench_task', 'bench_kmeans', 'compute_ratios', 'markdown_report', 'main'
]

SETR_CONFIG = 'mmseg::setr/setr_vit-l_pup_8xb2-160k_ade20k-512x512.py'
MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]


# ---------------------------------------------------------------------------- sizes
@dataclass
class BenchSize:
    """One benchmark configuration of a task.

    Attributes:
        task: ``'cls'`` or ``'seg'``.
        arch: mmpretrain arch name or dict (cls) / ``dict(embed_dims, num_layers, num_heads,
            mlp_ratio)`` for the seg backbone.
        img_size: Input side.
        patch_size: Patch side.
        num_classes: Classes of the head.
        num_prompts: Prompts per layer for the prompted variants.
        guided_layers: The two guided layers of DA-VPT.
        batch: Training batch.
        seg_channels: SETR-PUP head channels (seg only).
        out_indices: Backbone outputs fed to the heads (seg only).
    """
    task: str
    arch: object
    img_size: int
    patch_size: int
    num_classes: int
    num_prompts: int
    guided_layers: Tuple[int, ...]
    batch: int
    seg_channels: int = 256
    out_indices: Tuple[int, ...] = (9, 14, 19, 23)


SIZES = {
    'cls': BenchSize('cls', 'b', 224, 16, 200, 10, (10, 11), batch=2),
    'seg': BenchSize('seg', dict(embed_dims=1024, num_layers=24, num_heads=16), 512, 16, 150,
                     10, (22, 23), batch=1),
}
QUICK_SIZES = {
    'cls': BenchSize('cls', dict(embed_dims=64, num_layers=4, num_heads=4,
                                 feedforward_channels=128), 32, 8, 20, 4, (2, 3), batch=2),
    'seg': BenchSize('seg', dict(embed_dims=64, num_layers=4, num_heads=4), 64, 16, 10, 4,
                     (2, 3), batch=1, seg_channels=16, out_indices=(0, 1, 2, 3)),
}

#: Name of the A/A control in the inference timing: a second VPT-Deep model.
AA_CONTROL = 'vpt_deep_copy'

#: Training batches on CUDA (the CPU uses ``BenchSize.batch``): VPT's 32 and mmseg's 2 per GPU.
CUDA_BATCH = dict(cls=32, seg=2)

#: Variants per task; the ``_cp`` ones only where activation checkpointing is the point.
TASK_VARIANTS = {
    'cls': ('linear_probe', 'vpt_deep', 'davpt', 'davpt_plus', 'full_ft'),
    'seg': ('linear_probe', 'vpt_deep', 'davpt', 'davpt_plus', 'full_ft', 'vpt_deep_cp',
            'davpt_cp'),
}
#: Variants whose inference latency is measured (the prompt-free ViT as a reference).
INFER_VARIANTS = ('vpt_deep', 'davpt', 'davpt_plus', 'full_ft')

#: (name, numerator, denominator, metric, target or None): target means ratio <= target.
TARGETS = [
    ('DA-VPT / VPT-Deep train step', 'davpt', 'vpt_deep', 'train_s', 1.05),
    ('DA-VPT+ / VPT-Deep train step', 'davpt_plus', 'vpt_deep', 'train_s', None),
    ('VPT-Deep / full FT train step', 'vpt_deep', 'full_ft', 'train_s', 0.75),
    ('linear probe / full FT train step', 'linear_probe', 'full_ft', 'train_s', None),
    ('DA-VPT / VPT-Deep train step FLOPs', 'davpt', 'vpt_deep', 'step_flops', None),
    ('VPT-Deep / full FT train step FLOPs', 'vpt_deep', 'full_ft', 'step_flops', None),
    ('DA-VPT / VPT-Deep inference', 'davpt', 'vpt_deep', 'infer_s', 1.01),
    ('VPT-Deep copy / VPT-Deep inference (A/A noise floor)', 'vpt_deep_copy', 'vpt_deep',
     'infer_s', None),
    ('DA-VPT+ / VPT-Deep inference', 'davpt_plus', 'vpt_deep', 'infer_s', None),
    ('VPT-Deep / plain ViT inference', 'vpt_deep', 'full_ft', 'infer_s', None),
    ('DA-VPT / VPT-Deep peak train memory', 'davpt', 'vpt_deep', 'peak_bytes', 1.05),
    ('DA-VPT+ / VPT-Deep peak train memory', 'davpt_plus', 'vpt_deep', 'peak_bytes', None),
    ('VPT-Deep / full FT peak train memory', 'vpt_deep', 'full_ft', 'peak_bytes', None),
    ('DA-VPT / VPT-Deep step memory (activations+grads)', 'davpt', 'vpt_deep', 'step_bytes',
     None),
    ('VPT-Deep with_cp / without: peak memory', 'vpt_deep_cp', 'vpt_deep', 'peak_bytes', None),
    ('DA-VPT with_cp / without: peak memory', 'davpt_cp', 'davpt', 'peak_bytes', None),
    ('DA-VPT with_cp / without: step memory', 'davpt_cp', 'davpt', 'step_bytes', None),
    ('DA-VPT with_cp / without: train step', 'davpt_cp', 'davpt', 'train_s', None),
    ('DA-VPT with_cp / VPT-Deep with_cp: peak memory', 'davpt_cp', 'vpt_deep_cp', 'peak_bytes',
     1.05),
]
KMEANS_TARGET_S = 0.050


# ---------------------------------------------------------------------------- models
def variant_backbone_args(name: str, size: BenchSize) -> Dict:
    """Backbone arguments of a variant (the host ViT's own arguments come separately)."""
    base = name[:-3] if name.endswith('_cp') else name
    prompted = base in ('vpt_deep', 'davpt', 'davpt_plus')
    guided = base in ('davpt', 'davpt_plus')
    return dict(
        num_prompts=size.num_prompts if prompted else 0,
        guided_layers=size.guided_layers if guided else (),
        bias_tune='kv' if base == 'davpt_plus' else None,
        with_cp=name.endswith('_cp'))


def cls_model_cfg(size: BenchSize, backbone_args: Dict) -> Dict:
    """An mmpretrain ``ImageClassifier`` config: ``DAVPTViT`` + ``LinearClsHead``."""
    from mmpretrain.models.backbones import VisionTransformer
    arch = size.arch
    dims = (VisionTransformer.arch_zoo[arch]['embed_dims'] if isinstance(arch, str) else
            arch['embed_dims'])
    return dict(
        type='ImageClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=size.num_classes,
                               mean=MEAN, std=STD, to_rgb=True),
        backbone=dict(type='DAVPTViT', arch=arch, img_size=size.img_size,
                      patch_size=size.patch_size, out_type='cls_token', final_norm=True,
                      **backbone_args),
        neck=None,
        head=dict(type='LinearClsHead', num_classes=size.num_classes, in_channels=dims,
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))


def seg_model_cfg(size: BenchSize, backbone_args: Dict) -> Dict:
    """mmseg's SETR-PUP ViT-L ADE20K model config with ``DAVPTViT`` as the backbone.

    Taken from ``mmseg::setr/setr_vit-l_pup_8xb2-160k_ade20k-512x512.py``; SyncBN becomes BN
    (one process), the pre-trained checkpoint is dropped (random weights cost the same), and
    the sizes come from ``size``.
    """
    from mmengine.hub import get_config
    cfg = get_config(SETR_CONFIG)
    model = copy.deepcopy(cfg.model.to_dict())
    model.pop('pretrained', None)
    dims = size.arch['embed_dims']
    crop = (size.img_size, size.img_size)
    model['data_preprocessor']['size'] = crop
    backbone = model['backbone']
    backbone.pop('init_cfg', None)
    backbone.update(type='DAVPTViT', img_size=crop, patch_size=size.patch_size,
                    embed_dims=dims, num_layers=size.arch['num_layers'],
                    num_heads=size.arch['num_heads'], mlp_ratio=4,
                    out_indices=size.out_indices, drop_rate=0.0, **backbone_args)
    heads = [model['decode_head']] + list(model['auxiliary_head'])
    for head in heads:
        head.update(in_channels=dims, channels=size.seg_channels,
                    num_classes=size.num_classes, norm_cfg=dict(type='BN', requires_grad=True))
    model['test_cfg'] = dict(mode='whole')
    return model


def build_model(size: BenchSize, name: str) -> nn.Module:
    """Build one variant's model through the host registry, frozen as the variant trains."""
    import mmda_vpt  # noqa: F401  (registers DAVPTViT, the loss and the hooks)
    from mmengine.registry import DefaultScope
    args = variant_backbone_args(name, size)
    if size.task == 'cls':
        from mmpretrain.registry import MODELS
        cfg, scope = cls_model_cfg(size, args), 'mmpretrain'
    else:
        from mmseg.registry import MODELS
        cfg, scope = seg_model_cfg(size, args), 'mmseg'
    with DefaultScope.overwrite_default_scope(scope), warnings.catch_warnings():
        # mmseg warns about its own config defaults (build_loss, avg_non_ignore) at every build.
        warnings.simplefilter('ignore', UserWarning)
        model = MODELS.build(cfg)
    if name == 'full_ft':
        for param in model.parameters():
            param.requires_grad = True
    return model


def make_data(size: BenchSize, batch: int, seed: int = 0) -> Dict:
    """A batch as a dataloader gives it: uint8 images and data samples with labels."""
    gen = torch.Generator().manual_seed(seed)
    side = size.img_size
    images = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, size.num_classes, (batch, ), generator=gen)
    if size.task == 'cls':
        from mmpretrain.structures import DataSample
        samples = [DataSample().set_gt_label(int(label)) for label in labels]
        return dict(inputs=images, data_samples=samples)
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    cell = max(side // 8, 1)
    for _ in range(batch):
        # Blocky label maps: a few classes per image, some ignored pixels, like real masks.
        coarse = torch.randint(0, size.num_classes, (1, 8, 8), generator=gen)
        coarse[:, 0, :2] = 255
        seg = coarse.repeat_interleave(cell, 1).repeat_interleave(cell, 2)[:, :side, :side]
        sample = SegDataSample(metainfo=dict(img_shape=(side, side), ori_shape=(side, side)))
        sample.gt_sem_seg = PixelData(data=seg.long())
        samples.append(sample)
    return dict(inputs=list(images), data_samples=samples)


@dataclass
class Variant:
    """One trainable variant: its model, optimizer wrapper, batch and DA-VPT hooks."""
    name: str
    model: nn.Module
    optim_wrapper: object
    data: Dict
    hooks: Optional[Tuple[object, object]] = None
    info: Dict = field(default_factory=dict)

    def train_step(self) -> None:
        """One stock mmengine training step."""
        self.model.train_step(self.data, self.optim_wrapper)

    def forward_loss(self) -> torch.Tensor:
        """Preprocess, forward and parse the losses as ``train_step`` does, without updating."""
        with self.optim_wrapper.optim_context(self.model):
            data = self.model.data_preprocessor(self.data, True)
            losses = self.model._run_forward(data, mode='loss')
        loss, _ = self.model.parse_losses(losses)
        return loss

    def inference_inputs(self) -> torch.Tensor:
        return self.model.data_preprocessor(self.data, False)['inputs']


def share_frozen_weights(model: nn.Module, reference: nn.Module) -> None:
    """Point ``model``'s frozen parameters at ``reference``'s (same values, one copy in RAM).

    Frozen weights never change, so the variants of one process can hold them once; each
    variant's memory is still accounted with its own full parameter set.
    """
    ref = dict(reference.named_parameters())
    for name, param in model.named_parameters():
        other = ref.get(name)
        if (not param.requires_grad and other is not None and not other.requires_grad
                and other.shape == param.shape):
            param.data = other.data


def make_optim_wrapper(model: nn.Module, task: str, device: torch.device):
    """AdamW for classification (VPT / DA-VPT), SGD with momentum for SETR (mmseg's config)."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    params = [p for p in model.parameters() if p.requires_grad]
    if task == 'cls':
        optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
    else:
        optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=0.0)
    if device.type == 'cuda':
        return AmpOptimWrapper(optimizer=optimizer, dtype='bfloat16')
    return OptimWrapper(optimizer=optimizer)


def attach_davpt_hooks(model: nn.Module, size: BenchSize, beta: float = 0.05,
                       lam: float = 0.05) -> Tuple[object, object]:
    """Attach DA-VPT's two hooks to a model as a runner would, minus the runner.

    Each hook's ``attach`` does what its ``before_train`` does to the model, without a runner:
    ``PromptMetricLossHook`` adds the metric losses to the model's loss.
    ``ClassPromptMappingHook``'s ``before_train`` also needs a dataloader for its initial pass,
    so it is attached with a map of its own: a fixed balanced map (as the k-means gives: every
    prompt holds classes) and an empty window; its per-iteration work, the accumulation of the
    final features per class (its loss callback), then runs in every training step. Its
    per-epoch k-means is timed apart (``bench_kmeans``).

    Returns:
        tuple: (metric-loss hook, mapping hook).
    """
    from mmda_vpt.engine.hooks import ClassPromptMappingHook, PromptMetricLossHook
    from mmda_vpt.mapping import ClassPromptMap
    backbone = model.backbone
    gen = torch.Generator().manual_seed(1)
    order = torch.randperm(size.num_classes, generator=gen)
    mapping = torch.empty(size.num_classes, dtype=torch.long)
    mapping[order] = torch.arange(size.num_classes) % size.num_prompts
    dim = int(backbone.embed_dims_)
    class_map = ClassPromptMap(size.num_classes, size.num_prompts, dim)
    class_map.set_state(mapping, torch.zeros(size.num_prompts, dim),
                        torch.zeros(size.num_classes, dim),
                        torch.ones(size.num_classes, dtype=torch.bool))
    mapper = ClassPromptMappingHook()
    mapper.attach(model, class_map)
    hook = PromptMetricLossHook(beta=beta, lam=lam)
    hook.attach(model)
    return hook, mapper


def build_variants(size: BenchSize, names: Sequence[str], device: torch.device,
                   batch: Optional[int] = None) -> Dict[str, Variant]:
    """Build every variant of a task on ``device``, frozen weights shared between them."""
    batch = batch or size.batch
    variants: Dict[str, Variant] = {}
    reference = None
    for name in names:
        torch.manual_seed(0)
        model = build_model(size, name).to(device)
        if reference is None and name != 'full_ft':
            reference = model
        elif reference is not None:
            share_frozen_weights(model, reference)
        base = name[:-3] if name.endswith('_cp') else name
        hooks = attach_davpt_hooks(model, size) if base in ('davpt', 'davpt_plus') else None
        model.train()
        variants[name] = Variant(name, model, make_optim_wrapper(model, size.task, device),
                                 make_data(size, batch), hooks)
    return variants


# ---------------------------------------------------------------------------- measurements
def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def check_frozen_grads(model: nn.Module) -> Dict[str, int]:
    """After a backward: raise if any frozen parameter has a gradient; count what has one.

    Returns:
        dict: ``trainable`` (elements of trainable parameters), ``with_grad`` (elements that
        received a gradient) and ``frozen`` (elements of frozen parameters, all without one).
    """
    frozen_with_grad = [n for n, p in model.named_parameters()
                        if not p.requires_grad and p.grad is not None]
    if frozen_with_grad:
        raise AssertionError(f'frozen parameters received gradients: {frozen_with_grad[:5]}'
                             f'{" ..." if len(frozen_with_grad) > 5 else ""}')
    params = list(model.parameters())
    return dict(
        trainable=sum(p.numel() for p in params if p.requires_grad),
        with_grad=sum(p.numel() for p in params if p.requires_grad and p.grad is not None),
        frozen=sum(p.numel() for p in params if not p.requires_grad))


def _attention_flop_mapping() -> Dict:
    """FLOP formulas for the fused CPU attention kernels, which ``FlopCounterMode`` lacks.

    The same counts as torch's own formulas for the CUDA kernels (two matmuls forward; the
    score recomputation and four matmuls backward).
    """
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    def forward(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_backward_flop_count(grad_out, query, key, value)

    aten = torch.ops.aten
    mapping = {}
    for name, formula in (('_scaled_dot_product_flash_attention_for_cpu', forward),
                          ('_scaled_dot_product_flash_attention_for_cpu_backward', backward)):
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = formula
    return mapping


def count_step_flops(variant: Variant) -> Dict[str, object]:
    """One full training step with the frozen-gradient check and its matmul/conv/attention FLOPs.

    The forward (with the losses) and the backward are counted apart, so that a backward that
    computes no weight gradients shows about as many FLOPs as the forward (full fine-tuning
    about twice as many, less the attention, which has no weights). The fused attention
    kernels are counted (on the CPU with the formulas of :func:`_attention_flop_mapping`).
    """
    from torch.utils.flop_counter import FlopCounterMode
    wrapper = variant.optim_wrapper
    wrapper.zero_grad()
    mapping = _attention_flop_mapping()
    with FlopCounterMode(display=False, custom_mapping=mapping) as forward_counter:
        loss = variant.forward_loss()
    with FlopCounterMode(display=False, custom_mapping=mapping) as backward_counter:
        wrapper.backward(loss)
    grads = check_frozen_grads(variant.model)
    wrapper.step()
    wrapper.zero_grad()
    fwd = forward_counter.get_total_flops()
    bwd = backward_counter.get_total_flops()
    return dict(fwd_flops=int(fwd), bwd_flops=int(bwd), step_flops=int(fwd + bwd),
                bwd_fwd_flops=bwd / max(fwd, 1),
                **{f'params_{k}': v for k, v in grads.items()})


def count_step_host_reads(variant: Variant) -> int:
    """Host reads of tensor values in one training step (host-device synchronizations on an
    accelerator), counted with :func:`benchmarks.host_reads.count_host_reads`."""
    from benchmarks.host_reads import count_host_reads
    with count_host_reads() as reads:
        variant.train_step()
    return reads.total


def persistent_bytes(variant: Variant) -> int:
    """Bytes a variant holds between steps: parameters, buffers and optimizer state."""
    seen = set()
    total = 0

    def add(tensor):
        nonlocal total
        if isinstance(tensor, torch.Tensor) and id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()

    for tensor in list(variant.model.parameters()) + list(variant.model.buffers()):
        add(tensor)
    for state in variant.optim_wrapper.optimizer.state.values():
        for value in state.values():
            add(value)
    return total


def carried_bytes(variant: Variant) -> int:
    """Bytes the backbone's taps keep alive between steps (storages other than parameters).

    The taps of a training forward stay on the backbone until the next forward replaces them.
    They are live when a step starts, so neither the step peak nor the persistent bytes count
    them; this reports them apart.
    """
    taps = getattr(getattr(variant.model, 'backbone', None), 'taps', None)
    if taps is None:
        return 0
    params = {p.untyped_storage().data_ptr() for p in variant.model.parameters()}
    storages = {}
    for value in vars(taps).values():
        for tensor in (value if isinstance(value, (list, tuple)) else [value]):
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                if storage.data_ptr() not in params:
                    storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _cpu_profiled_peak(fn: Callable[[], None]) -> int:
    """Peak of the bytes PyTorch's CPU allocator handed out (and not freed) during ``fn``."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    allocations = []
    while stack:
        event = stack.pop()
        stack.extend(event.children)
        if event.tag == _EventType.Allocation:
            extra = event.extra_fields
            if extra.device.type == 'cpu':
                allocations.append((event.start_time_ns, extra.total_allocated,
                                    extra.alloc_size))
    if not allocations:
        return 0
    allocations.sort(key=lambda item: item[0])
    # The running total may carry an offset from earlier profiling sessions: start from the
    # total before the first event.
    start = allocations[0][1] - allocations[0][2]
    return max(total for _, total, _ in allocations) - start


def step_peak_bytes(fn: Callable[[], None], device: torch.device) -> int:
    """Peak bytes allocated during ``fn`` above what was allocated when it started."""
    if device.type == 'cuda':
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    return _cpu_profiled_peak(fn)


def saved_activation_bytes(variant: Variant) -> int:
    """Bytes of the unique storages autograd saves for backward, parameters excluded.

    Under autocast the low-precision copies of the weights that a backward needs are saved
    too; they are weights, not activations, and are left out as well (a saved tensor of a
    parameter's shape, or its transpose, in another dtype than the parameters').
    """
    parameters = list(variant.model.parameters())
    params = {p.untyped_storage().data_ptr() for p in parameters}
    weight_shapes = {tuple(p.shape) for p in parameters}
    weight_shapes |= {tuple(p.shape[::-1]) for p in parameters if p.dim() == 2}
    weight_dtypes = {p.dtype for p in parameters}
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        # A cast of a frozen weight has no grad_fn; of a trainable one, ToCopyBackward0.
        weight_cast = (tensor.dtype not in weight_dtypes and tuple(tensor.shape) in weight_shapes
                       and (tensor.grad_fn is None
                            or type(tensor.grad_fn).__name__ == 'ToCopyBackward0'))
        if ptr not in params and not weight_cast:
            storages[ptr] = storage.nbytes()
        # A detached alias: packing the tensor itself would tie a saved output to its own
        # grad_fn, a reference cycle that keeps the whole graph alive after the pass.
        return tensor.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = variant.forward_loss()
    del loss
    variant.optim_wrapper.zero_grad()
    return sum(storages.values())


def paired_ratio(times: Dict[str, List[float]], num: str, den: str) -> Optional[float]:
    """Median over rounds of ``num / den`` measured in the same round (drift cancels)."""
    if num not in times or den not in times:
        return None
    pairs = [a / b for a, b in zip(times[num], times[den]) if b > 0]
    return statistics.median(pairs) if pairs else None


def interleaved_times(fns: Dict[str, Callable[[], None]], repeats: int, warmup: int,
                      device: torch.device, per: int = 1,
                      progress: Optional[Callable[[str], None]] = None
                      ) -> Tuple[Dict[str, List[float]], Dict[str, List[float]]]:
    """Time each function once per round, all in every round, rotating the order by round.

    Returns:
        tuple[dict, dict]: wall-clock and process CPU seconds, name -> seconds per call divided
        by ``per`` (e.g. the batch size), one entry per timed round (warm-up rounds dropped).
    """
    names = list(fns)
    wall: Dict[str, List[float]] = {name: [] for name in names}
    cpu: Dict[str, List[float]] = {name: [] for name in names}
    for round_index in range(warmup + repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            fns[name]()
            sync(device)
            elapsed = (time.perf_counter() - start) / per
            elapsed_cpu = (time.process_time() - start_cpu) / per
            if round_index >= warmup:
                wall[name].append(elapsed)
                cpu[name].append(elapsed_cpu)
        if progress is not None and round_index >= warmup:
            progress(f'round {round_index + 1 - warmup}/{repeats}: ' + ', '.join(
                f'{n} {wall[n][-1]:.3f}s (cpu {cpu[n][-1]:.3f}s)' for n in names))
    return wall, cpu


def op_trace(fn: Callable[[], None]) -> Dict[str, int]:
    """The operators one call runs, with their input shapes, and how often (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    return {f'{e.key} {e.input_shapes}': e.count
            for e in prof.key_averages(group_by_input_shape=True)}


def trace_diff(ref: Dict[str, int], other: Dict[str, int], limit: int = 10) -> List[str]:
    """Operators (with shapes) whose call count differs between two traces."""
    keys = sorted(set(ref) | set(other))
    diff = [f'{k}: {ref.get(k, 0)} -> {other.get(k, 0)}' for k in keys
            if ref.get(k, 0) != other.get(k, 0)]
    return diff[:limit] + ([f'... {len(diff) - limit} more'] if len(diff) > limit else [])


def bench_task(size: BenchSize, device: torch.device, repeats: int, infer_repeats: int,
               warmup: int = 0, variants: Optional[Sequence[str]] = None,
               measure_memory: bool = True, batch: Optional[int] = None,
               infer_batch: Optional[int] = None,
               progress: Optional[Callable[[str], None]] = None) -> Dict:
    """Everything for one task: checks, memory, interleaved training and inference timing."""
    names = tuple(variants or TASK_VARIANTS[size.task])
    say = progress or (lambda msg: None)
    started = time.perf_counter()
    built = build_variants(size, names, device, batch)
    say(f'{size.task}: built {", ".join(names)} in {time.perf_counter() - started:.1f}s')
    result = dict(size=dict(size.__dict__), batch=batch or size.batch, variants={})
    for name, variant in built.items():
        # The instrumented step also warms the variant up (optimizer state, allocator).
        entry = count_step_flops(variant)
        entry['host_reads'] = count_step_host_reads(variant)
        if measure_memory:
            entry['saved_activation_bytes'] = saved_activation_bytes(variant)
            entry['step_bytes'] = step_peak_bytes(variant.train_step, device)
            entry['persistent_bytes'] = persistent_bytes(variant)
            entry['carried_bytes'] = carried_bytes(variant)
            entry['peak_bytes'] = entry['persistent_bytes'] + entry['step_bytes']
        result['variants'][name] = entry
        say(f'{size.task}/{name}: checked (bwd/fwd FLOPs {entry["bwd_fwd_flops"]:.2f}'
            + (f', peak {entry["peak_bytes"] / 2**20:.0f} MiB' if measure_memory else '') + ')')
    train, train_cpu = interleaved_times(
        {n: v.train_step for n, v in built.items()}, repeats, warmup, device,
        progress=lambda m: say(f'{size.task} train {m}'))
    infer_models = {n: built[n].model for n in INFER_VARIANTS if n in built}
    if 'vpt_deep' in infer_models:
        # An A/A control: a second, identical VPT-Deep model timed like the others; its ratio
        # to VPT-Deep is the noise floor of the inference ratios.
        control = build_model(size, 'vpt_deep').to(device)
        control.load_state_dict(infer_models['vpt_deep'].state_dict())
        share_frozen_weights(control, infer_models['vpt_deep'])
        infer_models[AA_CONTROL] = control
    infer_fns = {}
    infer_per = infer_batch or batch or size.batch
    data = make_data(size, infer_per, seed=1)
    traces = {}
    for name, model in infer_models.items():
        model.eval()
        with torch.no_grad():
            inputs = model.data_preprocessor(copy.deepcopy(data), False)['inputs']

        def infer(model=model, inputs=inputs):
            ctx = (torch.autocast('cuda', dtype=torch.bfloat16) if device.type == 'cuda' else
                   nullcontext())
            with torch.inference_mode(), ctx:
                model(inputs, mode='tensor')

        infer_fns[name] = infer
        if name in ('vpt_deep', 'davpt', 'davpt_plus'):
            traces[name] = op_trace(infer)
    if 'vpt_deep' in traces:
        result['infer_same_ops_as_vpt_deep'] = {
            name: trace == traces['vpt_deep'] for name, trace in traces.items()
            if name != 'vpt_deep'}
        result['infer_op_diff_vs_vpt_deep'] = {
            name: trace_diff(traces['vpt_deep'], trace) for name, trace in traces.items()
            if name != 'vpt_deep'}
    infer, infer_cpu = interleaved_times(
        infer_fns, infer_repeats, 1, device, per=infer_per,
        progress=lambda m: say(f'{size.task} infer {m}'))
    for name, entry in result['variants'].items():
        entry['train_s'] = statistics.median(train[name])
        entry['train_cpu_s'] = statistics.median(train_cpu[name])
        if name in infer:
            entry['infer_s'] = statistics.median(infer[name])
            entry['infer_cpu_s'] = statistics.median(infer_cpu[name])
    result['infer_batch'] = infer_per
    result['rounds'] = dict(train_s=train, train_cpu_s=train_cpu, infer_s=infer,
                            infer_cpu_s=infer_cpu)
    result['primary_time'] = 'wall' if device.type == 'cuda' else 'cpu'
    result['ratios'] = compute_ratios(result)
    result['wall_s'] = time.perf_counter() - started
    return result


def compute_ratios(result: Dict) -> List[Dict]:
    """The target ratios a task's result allows.

    Timing ratios are medians of per-round paired ratios, for the wall clock (``ratio``) and
    the process CPU time (``ratio_cpu``). A target is judged on ``result['primary_time']``:
    the wall clock on CUDA, the process CPU time on the CPU (other jobs' load on a shared
    machine enters the wall clock, not this process's CPU time).
    """
    rows = []
    variants = result['variants']
    rounds = result['rounds']
    for label, num, den, metric, target in TARGETS:
        timed = metric in ('train_s', 'infer_s')
        pool = rounds[metric] if timed else variants
        if num not in pool or den not in pool:
            continue
        ratio_cpu = None
        if timed:
            ratio = paired_ratio(rounds[metric], num, den)
            ratio_cpu = paired_ratio(rounds[metric.replace('_s', '_cpu_s')], num, den)
            judged = ratio_cpu if result.get('primary_time') == 'cpu' else ratio
        elif metric in variants[num] and metric in variants[den]:
            ratio = judged = variants[num][metric] / max(variants[den][metric], 1)
        else:
            continue
        if ratio is None:
            continue
        flop_ratio = None
        if metric == 'train_s' and 'step_flops' in variants.get(num, {}) \
                and 'step_flops' in variants.get(den, {}):
            flop_ratio = variants[num]['step_flops'] / max(variants[den]['step_flops'], 1)
        rows.append(dict(label=label, num=num, den=den, metric=metric, ratio=ratio,
                         ratio_cpu=ratio_cpu, target=target, flop_ratio=flop_ratio,
                         met=None if target is None or judged is None else judged <= target))
    return rows


# ---------------------------------------------------------------------------- k-means
def class_features(num_classes: int, dims: int, groups: int, seed: int) -> np.ndarray:
    """Per-class mean features with a group structure, as a pre-trained ViT gives them.

    Classes scatter around ``groups`` random directions (noise of the same scale as the spread
    of the directions, so the clusters overlap as fine-grained classes do).
    """
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((groups, dims)).astype(np.float32)
    assign = rng.integers(0, groups, num_classes)
    noise = rng.standard_normal((num_classes, dims)).astype(np.float32)
    return (centers[assign] + noise).astype(np.float32)


def kmeans_functions(n_init: int = 10):
    """(initial fit, warm-started update, description) as the mapping hook runs them.

    ``mmda_vpt.mapping.class_kmeans``'s ``initial_class_map`` (scikit-learn ``KMeans``,
    k-means++ with a fixed seed, ``n_init`` runs) and ``update_class_map`` (Lloyd iterations
    warm-started from the previous centroids, one run), with ``ClassPromptMappingHook``'s
    defaults.
    """
    from mmda_vpt.mapping.class_kmeans import initial_class_map, update_class_map

    def initial(features, groups):
        result = initial_class_map(features, groups, seed=0, n_init=n_init)
        return result, result.n_iter

    def update(features, previous):
        result = update_class_map(features, previous.class_to_prompt, previous.centroids)
        return result, result.n_iter

    return (initial, update,
            f'mmda_vpt.mapping.class_kmeans: initial_class_map(n_init={n_init}), update_class_map')


def bench_kmeans(class_counts: Sequence[int], dims: Sequence[int], groups: Sequence[int],
                 repeats: int, n_init: Sequence[int] = (10, 1),
                 progress: Optional[Callable[[str], None]] = None) -> Dict:
    """Time the initial k-means and a warm-started update (features drifted as by an epoch).

    The initial map is timed for each ``n_init`` (the hook's default 10 first); the update is
    what recurs every epoch (or every N iterations).
    """
    fns = {k: kmeans_functions(k) for k in n_init}
    rows = []
    for num_classes in class_counts:
        for dim in dims:
            for group in groups:
                if group > num_classes:
                    continue
                feats = class_features(num_classes, dim, group, seed=num_classes + dim)
                rng = np.random.default_rng(7)
                drifted = (feats + 0.1 * rng.standard_normal(feats.shape)).astype(np.float32)
                row = dict(classes=num_classes, dims=dim, groups=group)
                for k, (initial, update, _) in fns.items():
                    times = dict(init=[], init_cpu=[], update=[], update_cpu=[])
                    for _ in range(repeats):
                        start, start_cpu = time.perf_counter(), time.process_time()
                        first, init_iters = initial(feats, group)
                        times['init'].append(time.perf_counter() - start)
                        times['init_cpu'].append(time.process_time() - start_cpu)
                        if k == n_init[0]:
                            start, start_cpu = time.perf_counter(), time.process_time()
                            _, update_iters = update(drifted, first)
                            times['update'].append(time.perf_counter() - start)
                            times['update_cpu'].append(time.process_time() - start_cpu)
                    row[f'initial_n{k}_s'] = statistics.median(times['init'])
                    row[f'initial_n{k}_cpu_s'] = statistics.median(times['init_cpu'])
                    row[f'initial_n{k}_iters'] = int(init_iters)
                    if times['update']:
                        row['update_s'] = statistics.median(times['update'])
                        row['update_cpu_s'] = statistics.median(times['update_cpu'])
                        row['update_iters'] = int(update_iters)
                rows.append(row)
                if progress is not None:
                    progress(f'kmeans C={num_classes} D={dim} k={group}: ' + ', '.join(
                        f'initial n_init={k} {row[f"initial_n{k}_s"] * 1e3:.1f} ms '
                        f'(cpu {row[f"initial_n{k}_cpu_s"] * 1e3:.1f})' for k in fns)
                        + f', update {row["update_s"] * 1e3:.1f} ms '
                        f'(cpu {row["update_cpu_s"] * 1e3:.1f}, {row["update_iters"]} it)')
    largest = [r for r in rows if r['classes'] == max(class_counts)]
    keys = ['update'] + [f'initial_n{k}' for k in n_init]
    worst = {key: max((r[f'{key}_s'] for r in largest), default=None) for key in keys}
    worst_cpu = {key: max((r[f'{key}_cpu_s'] for r in largest), default=None) for key in keys}
    return dict(source=fns[n_init[0]][2], n_init=list(n_init), rows=rows,
                worst_largest=worst, worst_largest_cpu=worst_cpu, target_s=KMEANS_TARGET_S,
                target_on='update')


# ---------------------------------------------------------------------------- report
def _mib(value: Optional[float], digits: int = 0) -> str:
    return '-' if value is None else f'{value / 2**20:,.{digits}f}'


def _ms(value: Optional[float]) -> str:
    return '-' if value is None else f'{value * 1e3:,.1f}'


def markdown_report(report: Dict) -> str:
    """The markdown tables of a run."""
    env = report['env']
    lines = [f'Device: {env["device"]} ({env["device_name"]}), torch {env["torch"]}, '
             f'{env["threads"]} threads; {env["date"]}.', '']
    for task, result in report['tasks'].items():
        size = result['size']
        primary = 'process CPU time' if result['primary_time'] == 'cpu' else 'wall clock'
        lines += [f'### {task}: arch={size["arch"]} img={size["img_size"]} '
                  f'batch={result["batch"]} (inference batch {result["infer_batch"]}), '
                  f'{len(result["rounds"]["train_s"][next(iter(result["variants"]))])} '
                  'interleaved rounds', '',
                  '| variant | train step wall (ms) | train step CPU (ms) | infer wall (ms/img) '
                  '| infer CPU (ms/img) | peak train mem (MiB) | step mem (MiB) | '
                  'saved act. (MiB) | taps kept (MiB) | bwd/fwd FLOPs | host reads | '
                  'trainable params |',
                  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
        for name, entry in result['variants'].items():
            lines.append(
                f'| {name} | {_ms(entry.get("train_s"))} | {_ms(entry.get("train_cpu_s"))} | '
                f'{_ms(entry.get("infer_s"))} | {_ms(entry.get("infer_cpu_s"))} | '
                f'{_mib(entry.get("peak_bytes"))} | {_mib(entry.get("step_bytes"))} | '
                f'{_mib(entry.get("saved_activation_bytes"))} | '
                f'{_mib(entry.get("carried_bytes"), 1)} | {entry["bwd_fwd_flops"]:.2f} | '
                f'{entry.get("host_reads", "-")} | {entry["params_trainable"]:,} |')
        same = result.get('infer_same_ops_as_vpt_deep', {})
        if same:
            lines += ['', 'Inference operator trace (ops with input shapes, torch.profiler) '
                      'compared with VPT-Deep: ' + '; '.join(
                          f'{name} ' + ('identical' if equal else 'differs: ' + ', '.join(
                              result['infer_op_diff_vs_vpt_deep'][name][:4]))
                          for name, equal in same.items()) + '.']
        lines += ['', f'| ratio | wall clock | CPU time | target (judged on {primary}) |',
                  '|---|---:|---:|---|']
        for row in result['ratios']:
            target = ('' if row['target'] is None else
                      f'<= {row["target"]:.2f} ({"met" if row["met"] else "MISSED"})')
            flops = row.get('flop_ratio')
            if row['target'] is not None and not row['met'] and flops is not None:
                # What the arithmetic of the two steps allows, next to the missed time ratio.
                target += f'; FLOP ratio {flops:.3f}'
            cpu = '' if row['ratio_cpu'] is None else f'{row["ratio_cpu"]:.3f}'
            lines.append(f'| {row["label"]} | {row["ratio"]:.3f} | {cpu} | {target} |')
        lines.append('')
    if report.get('kmeans'):
        km = report['kmeans']
        keys = [f'initial_n{k}' for k in km['n_init']] + ['update']
        heads = [f'initial n_init={k}' for k in km['n_init']] + ['warm update']
        lines += [f'### class-to-prompt k-means ({km["source"]})', '',
                  'Times in ms: wall clock / process CPU time (single-threaded BLAS).', '',
                  '| classes | dims | groups | ' + ' | '.join(f'{h} | iters' for h in heads)
                  + ' |', '|---:|---:|---:|' + '---:|---:|' * len(keys)]
        for row in km['rows']:
            cells = [f'{_ms(row[f"{key}_s"])} / {_ms(row[f"{key}_cpu_s"])} | '
                     f'{row[f"{key}_iters"]}' for key in keys]
            lines.append(f'| {row["classes"]} | {row["dims"]} | {row["groups"]} | '
                         + ' | '.join(cells) + ' |')
        lines += ['', f'Slowest at {max(r["classes"] for r in km["rows"])} classes, wall / CPU '
                  f'(target <= {km["target_s"] * 1e3:.0f} ms on the recurring warm update): '
                  + '; '.join(f'{key} {km["worst_largest"][key] * 1e3:.1f} / '
                              f'{km["worst_largest_cpu"][key] * 1e3:.1f} ms'
                              for key in ['update'] + keys[:-1]) + '.']
        judged = (km['worst_largest_cpu'] if km.get('primary_time') == 'cpu' else
                  km['worst_largest'])[km['target_on']]
        lines += [f'Target on the {km["target_on"]} (judged on '
                  f'{"CPU time" if km.get("primary_time") == "cpu" else "the wall clock"}): '
                  f'{judged * 1e3:.1f} ms, {"met" if judged <= km["target_s"] else "MISSED"}.',
                  '']
    lines.append(f'Command: `{report["command"]}`; wall time {report["wall_s"]:.0f} s.')
    return '\n'.join(lines) + '\n'


def ratio_table(report: Dict) -> str:
    """The plain-text ratio table printed at the end."""
    out = [f'{"task":4s} {"ratio":<52s} {"wall":>7s} {"CPU":>7s}  target']
    for task, result in report['tasks'].items():
        for row in result['ratios']:
            target = '' if row['target'] is None else (
                f'<= {row["target"]:.2f} {"ok" if row["met"] else "MISSED"}')
            cpu = '' if row['ratio_cpu'] is None else f'{row["ratio_cpu"]:.3f}'
            out.append(f'{task:4s} {row["label"]:<52s} {row["ratio"]:7.3f} {cpu:>7s}  {target}')
    km = report.get('kmeans')
    if km:
        classes = max(r['classes'] for r in km['rows'])
        primary = km['worst_largest_cpu'] if km.get('primary_time') == 'cpu' else \
            km['worst_largest']
        for key, value in km['worst_largest'].items():
            judged = primary[key]
            target = (f'<= {km["target_s"] * 1e3:.0f} ms '
                      f'{"ok" if judged <= km["target_s"] else "MISSED"}'
                      if key == km['target_on'] else '(once per training)')
            out.append(f'kmeans {key} slowest at {classes} classes: {value * 1e3:.1f} ms wall, '
                       f'{km["worst_largest_cpu"][key] * 1e3:.1f} ms CPU  {target}')
    return '\n'.join(out)


# ---------------------------------------------------------------------------- main
def _env(device: torch.device) -> Dict:
    name = platform.processor() or platform.machine()
    if device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
    elif osp.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    name = line.split(':', 1)[1].strip()
                    break
    return dict(device=device.type, device_name=name, torch=torch.__version__,
                threads=torch.get_num_threads(), cpus=os.cpu_count(),
                date=datetime.datetime.now().isoformat(timespec='seconds'),
                python=platform.python_version())


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'),
                        help='auto: CUDA when present, else the CPU')
    parser.add_argument('--quick', action='store_true', help='tiny sizes (CI smoke run)')
    parser.add_argument('--tasks', nargs='+', default=['cls', 'seg', 'kmeans'],
                        choices=('cls', 'seg', 'kmeans'))
    parser.add_argument('--repeats', type=int, default=None,
                        help='timed training rounds per task (default: CPU cls 7, seg 3; '
                        'CUDA cls 20, seg 10; quick 2)')
    parser.add_argument('--infer-repeats', type=int, default=None,
                        help='timed inference rounds (default: CPU cls 30, seg 3; CUDA cls 50, '
                        'seg 20; quick 2)')
    parser.add_argument('--warmup', type=int, default=0,
                        help='untimed training rounds besides the two instrumented steps')
    parser.add_argument('--cls-batch', type=int, default=None,
                        help='ViT-B training batch (default: 2 on the CPU, 32 on CUDA)')
    parser.add_argument('--seg-batch', type=int, default=None,
                        help='ViT-L training batch (default: 1 on the CPU, 2 on CUDA)')
    parser.add_argument('--infer-batch', type=int, default=None,
                        help='inference batch (default: the training batch)')
    parser.add_argument('--variants', nargs='+', default=None,
                        help='subset of variants (default: all of each task)')
    parser.add_argument('--kmeans-repeats', type=int, default=5)
    parser.add_argument('--no-memory', action='store_true', help='skip the memory passes')
    parser.add_argument('--profile', nargs=2, metavar=('TASK', 'VARIANT'), action='append',
                        default=[], help='also write a torch.profiler table of one training '
                        'step of VARIANT (after the benchmark), e.g. --profile cls davpt')
    parser.add_argument('--out', default=None,
                        help='path prefix of the JSON and markdown results, e.g. '
                        'benchmarks/results/cpu (writes cpu.json and cpu.md)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: torch\'s own choice); 1 is '
                        'steadier on a machine shared with other jobs')
    parser.add_argument('--quiet', action='store_true', help='no progress lines')
    return parser.parse_args(argv)


def profile_step(variant: Variant, device: torch.device, rows: int = 25) -> str:
    """A torch.profiler table (by self time) of one training step of a variant."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    variant.train_step()
    with profile(activities=activities, record_shapes=True) as prof:
        variant.train_step()
        sync(device)
    key = 'self_cuda_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    if args.device == 'auto':
        device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    else:
        device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda given but CUDA is not available')
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = QUICK_SIZES if args.quick else SIZES
    env = _env(device)
    say(f'Device {device.type} ({env["device_name"]}); torch {env["torch"]} with '
        f'{env["threads"]} threads (torch.get_num_threads()) on {env["cpus"]} CPUs'
        + ('' if device.type == 'cuda' else
           '; CPU numbers: float32, small batches; compare ratios, not absolute times') + '.')
    started = time.perf_counter()
    report = dict(env=env, command='python ' + ' '.join(
        [osp.relpath(__file__)] + list(sys.argv[1:] if argv is None else argv)), tasks={})
    if device.type == 'cuda':
        defaults = dict(cls=(20, 50), seg=(10, 20))
        batches = dict(cls=args.cls_batch or CUDA_BATCH['cls'],
                       seg=args.seg_batch or CUDA_BATCH['seg'])
    else:
        defaults = dict(cls=(7, 30), seg=(3, 3))
        batches = dict(cls=args.cls_batch, seg=args.seg_batch)
    for task in ('cls', 'seg'):
        if task not in args.tasks:
            continue
        repeats, infer_repeats = (2, 2) if args.quick else defaults[task]
        names = None
        if args.variants:
            names = [n for n in TASK_VARIANTS[task] if n in args.variants]
        report['tasks'][task] = bench_task(
            sizes[task], device, args.repeats or repeats, args.infer_repeats or infer_repeats,
            warmup=args.warmup, variants=names, measure_memory=not args.no_memory,
            batch=batches[task], infer_batch=args.infer_batch, progress=say)
    if 'kmeans' in args.tasks:
        if args.quick:
            grid = dict(class_counts=(20, 50), dims=(32, ), groups=(4, 10))
        else:
            grid = dict(class_counts=(200, 555, 1000), dims=(768, 1024), groups=(10, 30, 60))
        report['kmeans'] = bench_kmeans(repeats=args.kmeans_repeats, progress=say, **grid)
        report['kmeans']['primary_time'] = 'wall' if device.type == 'cuda' else 'cpu'
    profiles = {}
    for task, name in args.profile:
        variant = build_variants(sizes[task], [name], device, batches[task])[name]
        profiles[f'{task}/{name}'] = profile_step(variant, device)
    report['wall_s'] = time.perf_counter() - started
    say('\nRatios (medians of per-round paired ratios; memory: persistent + step peak; targets '
        'judged on the wall clock on CUDA, on the process CPU time on the CPU):')
    say(ratio_table(report))
    if args.out:
        prefix = args.out[:-5] if args.out.endswith('.json') else args.out
        os.makedirs(osp.dirname(osp.abspath(prefix)), exist_ok=True)
        with open(prefix + '.json', 'w') as f:
            json.dump(report, f, indent=1, default=str)
        with open(prefix + '.md', 'w') as f:
            f.write(markdown_report(report))
        for key, table in profiles.items():
            with open(f'{prefix}.profile-{key.replace("/", "-")}.txt', 'w') as f:
                f.write(table)
        say(f'wrote {prefix}.json and {prefix}.md')
    elif profiles:
        for key, table in profiles.items():
            say(f'\nprofile {key}\n{table}')
    return report


if __name__ == '__main__':
    main()
