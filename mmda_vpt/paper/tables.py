"""The paper's tasks, pre-trained backbones and methods: the tables the configs are written from.

Classification: 5 FGVC and 19 VTAB-1k tasks, three ViT-B/16 backbones, five methods (DA-VPT and
DA-VPT+ in two families: paper rows and authors'-code rows). Segmentation: SETR-PUP on ViT-L/16,
ADE20K and PASCAL Context, four methods. The authors' per-task settings are in
:mod:`mmda_vpt.paper.authors`, the paper's numbers in :mod:`mmda_vpt.paper.reference`.
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

__all__ = [
    'AUTHORS_SUFFIX', 'BACKBONES', 'CLS_METHODS', 'DAVPT_METHODS', 'FAMILIES', 'FGVC_TASKS',
    'Guidance', 'Method', 'PretrainedBackbone', 'SEG_BACKBONE', 'SEG_METHODS', 'SEG_TASKS',
    'SegTask', 'TASKS', 'Task', 'VTAB_GROUPS', 'VTAB_TASKS'
]

FAMILIES = ('paper', 'authors')
#: Suffix of the authors'-code rows' file names.
AUTHORS_SUFFIX = '_authors-code'


# ----------------------------------------------------------------------------- the tables
@dataclass(frozen=True)
class Guidance:
    """DA-VPT's prompt and metric-loss settings for one segmentation task.

    Attributes:
        guided_layers: 0-based layers with metric guidance.
        num_guided_prompts: Prompts in the guided layers (the paper's M).
        num_prompts: Prompts in every other layer (and in every layer for VPT-Deep).
        beta: Weight of L_ML(x, p).
        lam: Weight of L_ML(p, x_cls).
        source: ``'authors'`` (their released config), ``'filled'`` (a task without one: see
            :func:`calibrations`) or ``'default'``.
    """
    guided_layers: Tuple[int, ...] = (10, 11)
    num_guided_prompts: int = 10
    num_prompts: int = 10
    beta: float = 0.05
    lam: float = 0.05
    source: str = 'default'


@dataclass(frozen=True)
class Task:
    """One classification task.

    Attributes:
        key: Token in the file names (``cub``, ``vtab-cifar100``).
        title: Name in the tables.
        benchmark: ``'fgvc'`` or ``'vtab'``.
        group: ``'FGVC'`` or the VTAB group (``'Natural'``, ``'Specialized'``, ``'Structured'``).
        data_root: Relative data root.
        num_classes: Number of classes.
        image_dir: FGVC image folder relative to the data root (VPT's layout).
        vpt_deep_prompts: VPT-Deep's prompts per layer (its own recipe: the authors' P where
            reference-numbers.md gives it, else 10). DA-VPT's settings are in the authors' table.
    """
    key: str
    title: str
    benchmark: str
    group: str
    data_root: str
    num_classes: int
    image_dir: str = ''
    vpt_deep_prompts: int = 10


FGVC_TASKS: List[Task] = [
    Task('cub', 'CUB-200-2011', 'fgvc', 'FGVC', 'data/cub', 200, 'images'),
    Task('nabirds', 'NABirds', 'fgvc', 'FGVC', 'data/nabirds', 555, 'images', 5),
    Task('flowers', 'Oxford Flowers', 'fgvc', 'FGVC', 'data/flowers', 102, ''),
    Task('dogs', 'Stanford Dogs', 'fgvc', 'FGVC', 'data/dogs', 120, 'Images'),
    Task('cars', 'Stanford Cars', 'fgvc', 'FGVC', 'data/cars', 196, '', 80),
]

# (key, title, group, folder of the common VTAB-1k archive, number of classes)
_VTAB = [
    ('cifar100', 'CIFAR-100', 'Natural', 'cifar', 100),
    ('caltech101', 'Caltech101', 'Natural', 'caltech101', 102),
    ('dtd', 'DTD', 'Natural', 'dtd', 47),
    ('flowers102', 'Flowers102', 'Natural', 'oxford_flowers102', 102),
    ('pets', 'Pets', 'Natural', 'oxford_iiit_pet', 37),
    ('svhn', 'SVHN', 'Natural', 'svhn', 10),
    ('sun397', 'Sun397', 'Natural', 'sun397', 397),
    ('camelyon', 'Patch Camelyon', 'Specialized', 'patch_camelyon', 2),
    ('eurosat', 'EuroSAT', 'Specialized', 'eurosat', 10),
    ('resisc45', 'Resisc45', 'Specialized', 'resisc45', 45),
    ('retinopathy', 'Retinopathy', 'Specialized', 'diabetic_retinopathy', 5),
    ('clevr-count', 'Clevr/count', 'Structured', 'clevr_count', 8),
    ('clevr-dist', 'Clevr/distance', 'Structured', 'clevr_dist', 6),
    ('dmlab', 'DMLab', 'Structured', 'dmlab', 6),
    ('kitti', 'KITTI/distance', 'Structured', 'kitti', 4),
    ('dsprites-loc', 'dSprites/location', 'Structured', 'dsprites_loc', 16),
    ('dsprites-ori', 'dSprites/orientation', 'Structured', 'dsprites_ori', 16),
    ('smallnorb-azi', 'SmallNORB/azimuth', 'Structured', 'smallnorb_azi', 18),
    ('smallnorb-ele', 'SmallNORB/elevation', 'Structured', 'smallnorb_ele', 9),
]
_VPT_DEEP_PROMPTS = {'cifar100': 20}
VTAB_TASKS: List[Task] = [
    Task(f'vtab-{key}', title, 'vtab', group, f'data/vtab-1k/{folder}', classes, '',
         _VPT_DEEP_PROMPTS.get(key, 10))
    for key, title, group, folder, classes in _VTAB
]
TASKS: List[Task] = FGVC_TASKS + VTAB_TASKS
VTAB_GROUPS = ('Natural', 'Specialized', 'Structured')


@dataclass(frozen=True)
class PretrainedBackbone:
    """A pre-trained ViT and where its converted (mmpretrain- or mmseg-format) checkpoint goes.

    Attributes:
        key: Key of the tables.
        token: Token in the file names.
        title: Name in the tables.
        checkpoint: Relative path of the converted checkpoint (the README names the file each
            one is converted from).
        davpt_out_type: What the head reads in the DA-VPT configs: ``'cls_token'``, or
            ``'avg_prompts_patches'`` (the mean of the final-norm prompt and patch tokens, the
            authors' global pooling of MAE).
    """
    key: str
    token: str
    title: str
    checkpoint: str
    davpt_out_type: str = 'cls_token'


# The authors' weights (their Dataset/names.py): timm's vit_base_patch16_224.augreg_in21k and
# vit_base_patch16_224.mae, MoCo v3's vit-b-300ep; SETR's jx_vit_large_p16_384 for ViT-L.
BACKBONES: List[PretrainedBackbone] = [
    PretrainedBackbone('in21k', 'vit-b16-in21k', 'supervised IN-21k',
                       'checkpoints/vit-b16_in21k-augreg.pth'),
    PretrainedBackbone('mae', 'vit-b16-mae', 'MAE', 'checkpoints/vit-b16_mae.pth',
                       'avg_prompts_patches'),
    PretrainedBackbone('mocov3', 'vit-b16-mocov3', 'MoCo v3', 'checkpoints/vit-b16_mocov3.pth'),
]
SEG_BACKBONE = PretrainedBackbone('in21k', 'setr-pup-vit-l16-in21k', 'ViT-L/16 IN-21k + SETR-PUP',
                                  'checkpoints/vit-l16_jx384_mmseg.pth')


@dataclass(frozen=True)
class Method:
    """A method of the tables.

    Attributes:
        key: Token in the file names.
        title: Name in the tables.
        folder: ``'da_vpt'`` or ``'baselines'``.
        prompts: Whether the backbone carries prompts.
        hooks: Whether the metric-loss and mapping hooks run.
        bias_tune: DA-VPT+ bias tuning.
        full: Whether every weight trains (stock ViT).
        lr: Default learning rate (classification).
        weight_decay: Default weight decay (classification).
    """
    key: str
    title: str
    folder: str
    prompts: bool
    hooks: bool
    bias_tune: Optional[str]
    full: bool
    lr: float
    weight_decay: float


_DAVPT = Method('davpt', 'DA-VPT', 'da_vpt', True, True, None, False, 1e-3, 1e-4)
_DAVPT_PLUS = Method('davpt-plus', 'DA-VPT+', 'da_vpt', True, True, 'kv', False, 1e-3, 1e-4)
_VPT_DEEP = Method('vpt-deep', 'VPT-Deep', 'baselines', True, False, None, False, 1e-3, 1e-4)
_LINEAR = Method('linear', 'Linear probe', 'baselines', False, False, None, False, 1e-3, 1e-4)
_FULL_FT = Method('full-ft', 'Full fine-tuning', 'baselines', False, False, None, True, 5e-5,
                  0.05)
CLS_METHODS: List[Method] = [_DAVPT, _DAVPT_PLUS, _VPT_DEEP, _LINEAR, _FULL_FT]
#: The methods with both config families.
DAVPT_METHODS: List[Method] = [_DAVPT, _DAVPT_PLUS]
SEG_METHODS: List[Method] = [_DAVPT, _DAVPT_PLUS, _VPT_DEEP, _FULL_FT]


@dataclass(frozen=True)
class SegTask:
    """A segmentation benchmark (SETR-PUP, ViT-L/16).

    Attributes:
        key: Token in the file names.
        title: Name in the tables.
        short: Token of the short config names (``setr_pup_vitl_{short}.py``).
        num_classes: Number of classes.
        crop: Crop size.
        stride: Slide-inference stride.
        iters: Training iterations.
        dataset_base: Base config of the dataset.
        schedule_base: Base config of the schedule.
        mapping_interval: Iterations between class-to-prompt updates: one pass over the training
            set at the total batch of 16.
        guidance: DA-VPT settings.
    """
    key: str
    title: str
    short: str
    num_classes: int
    crop: int
    stride: int
    iters: int
    dataset_base: str
    schedule_base: str
    mapping_interval: int
    guidance: Guidance = Guidance((22, 23), 10, 10, 0.05, 0.05, 'default')


SEG_TASKS: List[SegTask] = [
    SegTask('ade20k', 'ADE20K', 'ade20k', 150, 512, 341, 160000,
            'mmseg::_base_/datasets/ade20k.py', '../_base_/schedules/setr_sgd_160k.py',
            1264),  # 20210 training images / 16
    SegTask('pascal-context-60', 'PASCAL Context', 'pascal_context', 60, 480, 320, 80000,
            '../_base_/datasets/pascal_context_60_480x480.py',
            '../_base_/schedules/setr_sgd_80k.py', 313),  # 4996 training images / 16
]
