"""The segmentation configs (SETR-PUP, ViT-L/16), their tasks' head bases and the short aliases."""
import os.path as osp

from .blocks import (HEADER, LOSS_FIXED, LOSS_INPUTS, MAP_OPTIONS, SEG_HOOKS_BASE,
                     backbone_prompt_lines, comment, hooks_base, hooks_block, method_note)
from .names import seg_heads_base_path
from .reference import REFERENCE_SEG
from .tables import SEG_BACKBONE, Method, SegTask

__all__ = [
    'SEG_PROMPT_INIT_SCALE', 'SEG_PROXY_SCALE', 'render_alias', 'render_seg',
    'render_seg_heads_base', 'render_seg_hooks_base'
]

def _seg_aux_heads(num_classes: int) -> str:
    """The three auxiliary heads, one written once, read the backbone's outputs 0, 1 and 2."""
    return ('        dict(\n'
            "            type='SETRUPHead',\n"
            '            in_channels=1024,\n'
            '            channels=256,\n'
            '            in_index=index,\n'
            f'            num_classes={num_classes},\n'
            '            dropout_ratio=0,\n'
            '            norm_cfg=norm_cfg,\n'
            "            act_cfg=dict(type='ReLU'),\n"
            '            num_convs=2,\n'
            '            kernel_size=3,\n'
            '            align_corners=False,\n'
            "            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, "
            'loss_weight=0.4))\n'
            '        for index in range(3)\n')


def _seg_backbone(task: SegTask) -> str:
    """The pre-trained ViT-L/16 of every method's config of ``task``, and its slide inference."""
    crop = task.crop
    return f"""model = dict(
    data_preprocessor=dict(size=({crop}, {crop})),
    pretrained=None,
    backbone=dict(
        embed_dims=1024,
        num_layers=24,
        num_heads=16,
        img_size=({crop}, {crop}),
        out_indices=(8, 11, 17, 23),
        with_cls_token=True,
        final_norm=False,
        patch_bias=True,  # Google / timm ViTs have a patch-embedding bias
        interpolate_mode='bilinear',
        drop_rate=0.0,
        init_cfg=dict(type='Pretrained', checkpoint={SEG_BACKBONE.checkpoint!r})),
    test_cfg=dict(
        mode='slide', crop_size=({crop}, {crop}), stride=({task.stride}, {task.stride})),
"""


def render_seg_heads_base(task: SegTask) -> str:
    """The ``_base_`` model file of one segmentation task: SETR-PUP, its ViT-L and its heads.

    The auxiliary heads are a list, which a config that inherits them can only replace whole,
    and their number of classes is the task's: hence one such file per task, which every
    method's config of the task inherits.
    """
    return ''.join([
        HEADER, '#\n',
        comment(f'mmseg\'s SETR-PUP with the heads of the paper\'s {task.title} configs '
                 f'({task.num_classes} classes), which every method\'s config of the task '
                 'inherits: the decode head reads the fourth backbone output and the three '
                 'auxiliary heads (2 convolutions each, loss weight 0.4) the first three. The '
                 'backbone is the pre-trained ViT-L/16 (its outputs: layers 9, 12, 18 and 24, '
                 '1-based) at the task\'s crop size, with slide inference; each config sets its '
                 'type (VisionTransformer or DAVPTViT) and its prompts.'),
        "_base_ = 'mmseg::_base_/models/setr_pup.py'\n\n",
        "norm_cfg = dict(type='SyncBN', requires_grad=True)\n",
        _seg_backbone(task),
        f'    decode_head=dict(num_classes={task.num_classes}, in_index=3),\n',
        '    auxiliary_head=[\n',
        _seg_aux_heads(task.num_classes),
        '    ])\n',
    ])


#: The authors' segmentation backbone (segmentation/models/vit.py): prompts xavier / 8 and
#: loss_vpt_scale_ratio 5 by default.
SEG_PROMPT_INIT_SCALE = 0.125
SEG_PROXY_SCALE = 5.0


def render_seg(method: Method, task: SegTask) -> str:
    """The text of one segmentation config."""
    guidance = task.guidance
    crop = task.crop
    ref = REFERENCE_SEG.get((task.key, method.key))
    lines = [
        HEADER, '#\n',
        comment(f'{method.title} on {task.title} ({task.num_classes} classes), SETR-PUP on '
                 f'ViT-L/16 pre-trained supervised on IN-21k; 8 GPUs x 2 images, '
                 f'{task.iters // 1000}k iterations, {crop}x{crop} crops, slide inference '
                 f'(stride {task.stride}). As mmseg\'s setr_vit-l_pup_8xb2-160k_ade20k-512x512.py, '
                 'except that the decode head and the three auxiliary heads read layers 24, 9, 12 '
                 'and 18 (1-based), as the paper.'),
        method_note(method, guidance, 24),
    ]
    if method.hooks:
        lines.append(comment(
            "Where the paper is silent, the authors' segmentation code: prompts initialized "
            'xavier / 8, proxy scale 5, the map\'s LayerNorm-normalized cosine k-means with '
            'random initialization (1 run, 20 iterations).'))
    if ref is not None:
        lines.append(comment(f'Paper (mIoU %, single-scale / multi-scale): {ref[0]} / {ref[1]}'))
    lines += [
        comment('mIoU-MS: test with the TTA model (tta_model with tta_pipeline: scales 0.5 to '
                 '1.75 and horizontal flip).'),
        '_base_ = [\n',
        f"    '../_base_/models/{osp.basename(seg_heads_base_path(task))}',\n",
        f'    {task.dataset_base!r},\n',
        f'    {task.schedule_base!r},\n',
        "    '../_base_/default_runtime_seg.py',\n",
    ]
    if method.hooks:
        lines.append(f"    '../_base_/{osp.basename(SEG_HOOKS_BASE)}',\n")
    backbone_type = 'VisionTransformer' if method.full else 'DAVPTViT'
    lines.append(f"""]

model = dict(
    backbone=dict(
        type={backbone_type!r},
""")
    if not method.full:
        lines += [line + '\n' for line in backbone_prompt_lines(method, guidance, ' ' * 8)]
    if method.hooks:
        lines += ["        prompt_init='xavier_stacked',\n",
                  f'        prompt_init_scale={SEG_PROMPT_INIT_SCALE!r},\n']
    lines[-1] = lines[-1].rstrip(',\n') + '))\n\n'  # the backbone's last key closes it
    lines += [
        '# 8 GPUs x 2 images = 16 per iteration, as SETR.\n',
        'train_dataloader = dict(batch_size=2)\n',
        'val_dataloader = dict(batch_size=1)\n',
        'test_dataloader = val_dataloader\n',
    ]
    if method.hooks:
        lines += [
            '\n', f'# The class-to-prompt map is updated every {task.mapping_interval} '
            'iterations (one pass over the training set).\n',
            hooks_block((('interval', task.mapping_interval), ),
                        (('beta', guidance.beta), ('lam', guidance.lam)))
        ]
    return ''.join(lines)


def render_alias(alias: str, target: str) -> str:
    """A short-named config that inherits the long-named one."""
    rel = osp.relpath(target, osp.dirname(alias))
    if not rel.startswith('.'):
        rel = './' + rel
    return (f'{HEADER}#\n# Short name of {osp.basename(target)}.\n'
            f"_base_ = '{rel}'\n")



def render_seg_hooks_base() -> str:
    """The ``_base_`` of the DA-VPT segmentation configs' hooks: the keys every row shares."""
    return hooks_base('segmentation', (('samples_per_class', 10), ) + MAP_OPTIONS,
                      (('proxy_scale', SEG_PROXY_SCALE), ) + LOSS_INPUTS['paper'] + LOSS_FIXED)
