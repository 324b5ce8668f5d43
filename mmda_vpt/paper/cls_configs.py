"""The classification configs: DA-VPT / DA-VPT+ (paper and authors'-code rows) and baselines.

- **paper rows** (``{method}_{backbone}_1xb32-100e_{task}-224.py``) follow the paper where it
  speaks (K and V biases for DA-VPT+, VTAB resized directly to 224x224, batch 32, cosine to
  1e-8, the paper's loss inputs) and the authors' code where it is silent (pre-trained weights,
  prompt initialization, the class-to-prompt map's normalization, timing, unseen classes and
  initial clustering, class-slot batches, the cosine's shape, gradient clipping by value 10,
  fp16, weight decay of the CLS token, head initialization, MAE pooling, PIL bicubic resizing);
- **authors'-code rows** (the same name with ``_authors-code``, and the authors' batch size)
  follow the authors' code everywhere: their loss inputs (raw prompts, per-image mean of the
  block-input patches, positive term over every prompt), their per-file bias set and CLS token,
  VTAB short-side resize and centre crop, batch and images per class as the file states, their
  minimum lr. A DA-VPT (no plus) sibling is their code with every bias flag off.

Every DA-VPT / DA-VPT+ config carries its row of the authors' table
(:func:`mmda_vpt.paper.authors.calibrations`).
"""
import os.path as osp

from .authors import PARSER_DROPPED, Calibration, calibrations
from .blocks import (CLS_HOOKS_BASE, CLS_MAP_TIMING, HEADER, LOSS_FIXED, LOSS_INPUTS,
                     MAP_OPTIONS, PAPER_MIN_LR, backbone_prompt_lines, comment, fmt_arg,
                     fmt_value, hooks_base, hooks_block, method_note)
from .reference import REFERENCE_FGVC
from .tables import Guidance, Method, PretrainedBackbone, Task

__all__ = ['render_baseline_cls', 'render_cls', 'render_cls_hooks_base', 'render_davpt_cls']

def _row_note(cal: Calibration) -> str:
    """The origin of a DA-VPT classification config's per-task values."""
    origin = (f"The authors' setting for this task and backbone (row {cal.config} of "
              'mmda_vpt/paper/authors_hyperparameters.csv)' if cal.config else
              "No authors' config for this task and backbone "
              '(mmda_vpt/paper/authors_hyperparameters.csv)')
    guidance = cal.guidance
    note = (f'{origin}: guided layers {fmt_value(guidance.guided_layers)} (0-based) with '
            f'{guidance.num_guided_prompts} prompts, {guidance.num_prompts} prompts in the other '
            f'layers, beta {guidance.beta}, lambda {guidance.lam}, proxy scale '
            f'{cal.proxy_scale}, frozen-backbone drop-path {cal.drop_path}, lr {cal.lr}, weight '
            f'decay {cal.weight_decay} (head weight: {cal.head_weight_decay}; biases and 1-D '
            'parameters: none), prompts initialized xavier x '
            f'{cal.prompt_init_scale}' +
            (', L2-normalized' if cal.prompt_norm == 'l2' else '') +
            (', attending to the patches only' if cal.prompt_attn_mask else '') +
            ', class-to-prompt map re-clustered ' +
            (f'at the end of epoch {cal.first_update} and every epoch after'
             if cal.first_update else 'never') +
            f', batches of {cal.samples_per_class} images per class slot.')
    if cal.notes:
        note += ' Gap rules: ' + '; '.join(cal.notes) + '.'
    if cal.config in PARSER_DROPPED:
        note += (" As released, the authors' parser drops keys of this file and runs: "
                 f'{PARSER_DROPPED[cal.config]}.')
    return comment(note)


def _family_note(method: Method, backbone: PretrainedBackbone, task: Task, family: str,
                 cal: Calibration) -> str:
    if family == 'paper':
        text = ('Paper row: the paper where it speaks (' +
                ('the K and V biases train, ' if method.bias_tune else '') +
                ('images resized directly to 224x224, ' if task.benchmark == 'vtab' else '') +
                'batch 32, cosine to 1e-8, the paper\'s loss inputs), the authors\' code where it '
                'is silent (weights, prompt init, the map\'s LayerNorm / timing / unseen classes '
                '/ initial clustering, class-slot batches, the cosine over all 100 epochs, '
                'gradient clipping by value 10, fp16, CLS-token weight decay, head init, ' +
                ('pooling over prompts and patches, ' if backbone.key == 'mae' else '') +
                'PIL bicubic resizing).')
    else:
        if method.bias_tune:
            trained = ('their bias set: ' + ', '.join(cal.bias_parts) +
                       (' and the CLS token' if cal.learnable_cls_token else ''))
        else:
            trained = ("every bias flag off (DA-VPT has no bias tuning; each of the authors' "
                       'files is DA-VPT+)')
        text = ("Authors'-code row: the authors' code everywhere: their loss inputs (raw "
                'prompts, per-image mean of the block-input patches, positive term over every '
                f'prompt), {trained}, ' +
                ('short-side resize and centre crop, ' if task.benchmark == 'vtab' else '') +
                f'batch {cal.batch_size} with {cal.samples_per_class} images per class, cosine '
                f'to {cal.min_lr:g}.')
    return comment(text)


def _multiplier(base: float, target: float) -> float:
    """The shortest decimal ``m`` with ``base * m == target`` exactly (as mmengine computes)."""
    if target == 0:
        return 0.0
    exact = target / base
    for digits in range(1, 18):
        mult = float(f'{exact:.{digits}g}')
        if base * mult == target:
            return mult
    raise ValueError(f'no multiplier gives weight decay {target!r} exactly on base {base!r}')


def _optim_block(cal: Calibration) -> str:
    """The optimizer with the authors' per-group weight decays, exactly.

    mmengine's custom keys scale the base weight decay (``decay_mult``): the base is the
    prompts' decay (the head's where the prompts get none), and each group's multiplier gives
    its decay exactly. The CLS token decays as the prompts (the authors decay every trained
    weight of more than one dimension); biases (every parameter named ``*bias*``, the tuned
    parts included), norms and 1-D parameters get none: that part of ``paramwise_cfg``, and the
    prompts' and CLS token's multiplier 1.0, is the schedule base's
    (``adamw_fp16_100e_warmup10_timm-cosine.py``), whose dicts the leaf's merge into; a leaf
    states the prompts' and CLS token's keys only where their multiplier is not 1.0.
    """
    base = cal.weight_decay if cal.weight_decay else cal.head_weight_decay
    keys = {'backbone.prompts': _multiplier(base, cal.weight_decay),
            'backbone.cls_token': _multiplier(base, cal.weight_decay),
            'head.fc.weight': _multiplier(base, cal.head_weight_decay)}
    lines = [
        comment(f'Weight decay: prompts and CLS token {cal.weight_decay}, head weight '
                f'{cal.head_weight_decay}; biases, norms and 1-D parameters: none (the base\'s).'),
        'optim_wrapper = dict(\n',
        f'    optimizer=dict(lr={cal.lr!r}, weight_decay={base!r}),\n',
        '    paramwise_cfg=dict(\n',
        '        custom_keys={\n',
    ]
    # The base decays the prompts and the CLS token at the base rate (multiplier 1.0).
    lines += [f'            {key!r}: dict(decay_mult={mult!r}),\n' for key, mult in keys.items()
              if key == 'head.fc.weight' or mult != 1.0]
    lines.append('        }))\n')
    return ''.join(lines)


def _schedule_block(warmup_lr: float, min_lr: float) -> str:
    """The base's timm-style cosine with the row's warm-up start and floor."""
    return ('# The base\'s timm cosine (the authors\'), from this warm-up start to this floor.\n'
            'param_scheduler = [\n'
            '    dict(\n'
            '        _base_.param_scheduler[0],\n'
            f'        warmup_start_lr={warmup_lr!r},\n'
            f'        eta_min={min_lr!r}),\n'
            ']\n')


def _reference_note(method: Method, backbone: PretrainedBackbone, task: Task) -> str:
    ref = REFERENCE_FGVC.get((backbone.key, method.key), {}).get(task.key)
    if ref is None:
        return ''
    return comment(f'Paper (top-1 %, mean of 3 seeds): {ref}')


def _dataset_args(task: Task) -> str:
    if task.benchmark == 'fgvc':
        return (f'data_root={task.data_root!r}, num_classes={task.num_classes}, '
                f'image_dir={task.image_dir!r}')
    return f'data_root={task.data_root!r}, num_classes={task.num_classes}'


def _bench_title(task: Task) -> str:
    return 'FGVC' if task.benchmark == 'fgvc' else f'VTAB-1k {task.group}'


def render_davpt_cls(method: Method, backbone: PretrainedBackbone, task: Task,
                     family: str) -> str:
    """The text of one DA-VPT / DA-VPT+ classification config of a family."""
    cal = calibrations()[(backbone.key, task.key)]
    guidance = cal.guidance
    authors = family == 'authors'
    batch = cal.batch_size if authors else 32
    if task.benchmark == 'vtab' and authors:
        data_base = 'vtab_bs32_224_resize-crop.py'
    else:
        data_base = 'fgvc_bs32_224.py' if task.benchmark == 'fgvc' else 'vtab_bs32_224.py'
    lines = [
        HEADER, '#\n',
        comment(f'{method.title} on {task.title} ({_bench_title(task)}), ViT-B/16 pre-trained '
                 f'{backbone.title}; 1 GPU x {batch} images, 100 epochs, 224x224.'),
        _family_note(method, backbone, task, family, cal),
        _row_note(cal),
        _reference_note(method, backbone, task) if not authors else '',
        '_base_ = [\n',
        "    '../../_base_/models/davpt_vit-b16_xavier-stacked.py',\n",
        f"    '../../_base_/datasets/{data_base}',\n",
        "    '../../_base_/schedules/adamw_fp16_100e_warmup10_timm-cosine.py',\n",
        "    '../../_base_/default_runtime_cls.py',\n",
        f"    '../../_base_/{osp.basename(CLS_HOOKS_BASE)}',\n",
        ']\n\n',
        'model = dict(\n',
        '    backbone=dict(\n',
        f'        num_prompts={guidance.num_prompts},\n',
        fmt_arg(' ' * 8, 'guided_layers', guidance.guided_layers),
        f'        num_guided_prompts={guidance.num_guided_prompts},\n',
    ]
    if not authors:
        lines.append(fmt_arg(' ' * 8, 'bias_tune', method.bias_tune))
    elif method.bias_tune:
        lines.append(fmt_arg(' ' * 8, 'bias_tune', cal.bias_parts))
        lines.append(f'        learnable_cls_token={cal.learnable_cls_token!r},\n')
    else:
        lines.append('        bias_tune=None,\n')
    lines += [
        f'        prompt_init_scale={cal.prompt_init_scale!r},\n',
        f'        frozen_drop_path_rate={cal.drop_path!r},\n',
    ]
    if cal.prompt_norm is not None:
        lines.append(f'        prompt_norm={cal.prompt_norm!r},\n')
    if cal.prompt_attn_mask is not None:
        lines.append(f'        prompt_attn_mask={cal.prompt_attn_mask!r},\n')
    if backbone.davpt_out_type != 'cls_token':
        lines.append(f'        out_type={backbone.davpt_out_type!r},\n')
    lines += [
        f"        init_cfg=dict(type='Pretrained', checkpoint={backbone.checkpoint!r})),\n",
        f'    data_preprocessor=dict(num_classes={task.num_classes}),\n',
        f'    head=dict(num_classes={task.num_classes}))\n\n',
    ]
    dataset = _dataset_args(task)
    if not cal.class_balanced:
        raise ValueError(f'{backbone.key} {task.key}: every authors\' file samples by class')
    lines += [
        'train_dataloader = dict(\n',
        f'    batch_size={batch},\n',
        '    sampler=dict(\n',
        "        type='ClassBalancedSampler', mode='class_slots', "
        f'batch_size={batch}, samples_per_class={cal.samples_per_class}),\n',
        f'    dataset=dict({dataset}))\n',
        f'val_dataloader = dict(dataset=dict({dataset}))\n',
        f'test_dataloader = dict(dataset=dict({dataset}))\n',
    ]
    if batch != 32:
        lines.append(f'auto_scale_lr = dict(base_batch_size={batch})\n')
    lines.append('\n')
    lines += [_optim_block(cal), _schedule_block(cal.warmup_lr,
                                                 cal.min_lr if authors else PAPER_MIN_LR), '\n']
    beta, lam = guidance.beta, guidance.lam
    if authors and cal.zero_scale:
        lines.append(comment("The file's proxy scale 0 makes both metric terms constant: "
                             'beta = lambda = 0 trains the same.'))
        beta = lam = 0.0
    lines.append(hooks_block((('first_update', cal.first_update), ),
                             (('beta', beta), ('lam', lam),
                              ('proxy_scale', cal.proxy_scale)) + LOSS_INPUTS[family]))
    return ''.join(lines)


def render_baseline_cls(method: Method, backbone: PretrainedBackbone, task: Task) -> str:
    """The text of one baseline classification config (VPT-Deep, linear probe, full FT)."""
    cal = calibrations()[(backbone.key, task.key)]
    guidance = Guidance(num_prompts=task.vpt_deep_prompts)
    note = method_note(method, guidance, 12)
    lr = method.lr
    if method.key == 'vpt-deep':
        if cal.config:
            lr = cal.lr
            note += comment(f"lr {lr}: the authors' DA-VPT lr for this task and backbone "
                             f'({cal.config}), so that the comparison is like for like.')
        else:
            note += comment(f"lr {lr}: VPT-Deep's default (no authors' config for this task "
                             'and backbone).')
    model_base = 'vit-b16_full-ft.py' if method.full else 'davpt_vit-b16.py'
    data_base = 'fgvc_bs32_224.py' if task.benchmark == 'fgvc' else 'vtab_bs32_224.py'
    lines = [
        HEADER, '#\n',
        comment(f'{method.title} on {task.title} ({_bench_title(task)}), ViT-B/16 pre-trained '
                 f'{backbone.title}; 1 GPU x 32 images, 100 epochs, 224x224.'),
        note,
        _reference_note(method, backbone, task),
        '_base_ = [\n',
        f"    '../../_base_/models/{model_base}',\n",
        f"    '../../_base_/datasets/{data_base}',\n",
        "    '../../_base_/schedules/adamw_bs32_100e_warmup10_cosine.py',\n",
        "    '../../_base_/default_runtime_cls.py',\n",
        ']\n\n',
        'model = dict(\n',
        '    backbone=dict(\n',
    ]
    if not method.full:
        lines += [line + '\n' for line in backbone_prompt_lines(method, guidance, ' ' * 8)]
    dataset = _dataset_args(task)
    lines += [
        f"        init_cfg=dict(type='Pretrained', checkpoint={backbone.checkpoint!r})),\n",
        f'    data_preprocessor=dict(num_classes={task.num_classes}),\n',
        f'    head=dict(num_classes={task.num_classes}))\n\n',
    ]
    lines += [f'{loader}_dataloader = dict(dataset=dict({dataset}))\n'
              for loader in ('train', 'val', 'test')]
    lines.append('\n')
    lines.append(f'optim_wrapper = dict(optimizer=dict(lr={lr!r}, '
                 f'weight_decay={method.weight_decay!r}))\n')
    return ''.join(lines)


def render_cls(method: Method, backbone: PretrainedBackbone, task: Task,
               family: str = 'paper') -> str:
    """The text of one classification config."""
    if method.hooks:
        return render_davpt_cls(method, backbone, task, family)
    if family != 'paper':
        raise ValueError(f"{method.key} has no authors'-code rows")
    return render_baseline_cls(method, backbone, task)


def render_cls_hooks_base() -> str:
    """The ``_base_`` of the DA-VPT classification configs' hooks: the keys every row shares."""
    return hooks_base('classification',
                      (('samples_per_class', 10), ('interval', None)) + CLS_MAP_TIMING +
                      MAP_OPTIONS, LOSS_FIXED)
