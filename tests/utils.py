"""Helpers shared by the tests: the repository's paths, the toy data of the tool tests, the
authors' code's folder, tiny ViT weights, a CPU process group and the check that training moves
exactly a backbone's trainable parameters."""
import contextlib
import os
import os.path as osp
import socket
import subprocess
import sys
import tempfile
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple
from unittest import TestCase, mock

import numpy as np
import torch
from PIL import Image

__all__ = [
    'REPO', 'TOY_CONFIG', 'TRAIN', 'TEST', 'DIST_TRAIN', 'DIST_TEST', 'SUBPROCESS_TIMEOUT',
    'run_tool', 'free_port', 'write_toy_images', 'reference_dir', 'assert_only_trainable_change',
    'tiny_vit_weights', 'cpu_process_group', 'missing_augreg_message'
]

#: The repository root.
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: The toy classifier config the tool tests train (tests/data/configs/toy_cls.py).
TOY_CONFIG = osp.join(REPO, 'tests', 'data', 'configs', 'toy_cls.py')
TRAIN = osp.join(REPO, 'tools', 'train.py')
TEST = osp.join(REPO, 'tools', 'test.py')
DIST_TRAIN = osp.join(REPO, 'tools', 'dist_train.sh')
DIST_TEST = osp.join(REPO, 'tools', 'dist_test.sh')
#: Seconds a test's subprocess may run.
SUBPROCESS_TIMEOUT = 600


def run_tool(tool: str, args: List[str], cwd: str) -> subprocess.CompletedProcess:
    """Runs ``tools/<tool>`` on the CPU as a user does, with this checkout's ``mmda_vpt``.

    Args:
        tool (str): The script under ``tools/``, such as ``'export_checkpoint.py'``.
        args (list[str]): Its arguments.
        cwd (str): The working directory.

    Returns:
        subprocess.CompletedProcess: The finished process, stdout and stderr together as text.
    """
    environ = dict(os.environ, CUDA_VISIBLE_DEVICES='')
    environ['PYTHONPATH'] = os.pathsep.join(
        path for path in (REPO, os.environ.get('PYTHONPATH')) if path)
    return subprocess.run([sys.executable, osp.join(REPO, 'tools', tool), *args], cwd=cwd,
                          env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=SUBPROCESS_TIMEOUT)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a torchrun rendezvous)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def write_toy_images(root: str) -> None:
    """Writes the toy dataset: 32x32 images, horizontal vs vertical stripes, 8+4 per class."""
    rng = np.random.default_rng(0)
    for split, count in (('train', 8), ('val', 4)):
        for label, name in enumerate(('horizontal', 'vertical')):
            folder = osp.join(root, 'data', 'toy_cls', split, name)
            os.makedirs(folder, exist_ok=True)
            for index in range(count):
                image = rng.integers(0, 64, (32, 32, 3)).astype(np.uint8)
                if label == 0:
                    image[::4] += 160
                else:
                    image[:, ::4] += 160
                Image.fromarray(image).save(osp.join(folder, f'{index}.png'))


def reference_dir() -> Optional[str]:
    """The DA-VPT authors' released code, or None where this machine has no copy.

    The one locator of the tests: ``$MMDA_VPT_REFERENCE`` when set, else
    ``<repo>/../shared/reference/DA-VPT`` (CI clones the repository beside a copy of
    ``shared/``). A folder counts when it holds their ``train.py``.
    """
    path = os.environ.get('MMDA_VPT_REFERENCE') or osp.join(REPO, '..', 'shared', 'reference',
                                                             'DA-VPT')
    return osp.abspath(path) if osp.isfile(osp.join(path, 'train.py')) else None


def assert_only_trainable_change(test: TestCase,
                                 model: torch.nn.Module,
                                 loss_fn: Callable[[torch.nn.Module], torch.Tensor],
                                 params: Optional[Iterable[torch.nn.Parameter]] = None,
                                 steps: int = 3) -> Dict[str, torch.Tensor]:
    """Trains a backbone a few AdamW steps; only its trainable parameters may change.

    Every parameter ``model.trainable_names()`` lists must move; every other one must stay
    bit-identical and get no gradient.

    Args:
        test (TestCase): The test that asserts.
        model (nn.Module): A backbone with ``trainable_names()``; it is put in training mode.
        loss_fn (Callable): ``model`` -> a scalar loss.
        params (Iterable[Parameter], optional): What the optimizer updates (lr 1e-2, weight
            decay 0.1). Defaults to None: the model's parameters that require gradients.
        steps (int): Optimizer steps. Defaults to 3.

    Returns:
        dict: Every parameter's value before training, by name.
    """
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = set(model.trainable_names())
    if params is None:
        params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    model.train()
    for _ in range(steps):
        optim.zero_grad()
        loss_fn(model).backward()
        optim.step()
    for name, param in model.named_parameters():
        if name in trainable:
            test.assertFalse(torch.equal(param, before[name]), name)
        else:
            test.assertTrue(torch.equal(param, before[name]), name)
            test.assertIsNone(param.grad, name)
    return before


def tiny_vit_weights(seed: int, arch: dict, img_size: int,
                     patch_size: int = 8) -> Dict[str, torch.Tensor]:
    """A tiny mmpretrain ViT's weights drawn with ``seed``, as a converted base checkpoint.

    Args:
        seed (int): The seed of the draw (its initialization, then noise of std 0.02 on every
            tensor, so that norms and biases are not trivial).
        arch (dict): mmpretrain's ``arch`` (``embed_dims``, ``num_layers`` ...).
        img_size (int): The input size.
        patch_size (int): The patch size. Defaults to 8.

    Returns:
        dict: The state dict (an ``OrderedDict``).
    """
    from mmpretrain.models.backbones import VisionTransformer
    torch.manual_seed(seed)
    vit = VisionTransformer(arch=arch, img_size=img_size, patch_size=patch_size)
    with torch.no_grad():
        for param in vit.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    return vit.state_dict()


@contextlib.contextmanager
def cpu_process_group() -> Iterator[None]:
    """A one-process gloo group on a machine that reports no CUDA, as a CPU torchrun has.

    Inside, ``torch.cuda.is_available()`` is False and the default process group exists; it is
    destroyed on the way out.
    """
    with tempfile.TemporaryDirectory() as tmp, \
            mock.patch.object(torch.cuda, 'is_available', return_value=False):
        torch.distributed.init_process_group(
            'gloo', init_method=f'file://{osp.join(tmp, "store")}', rank=0, world_size=1)
        try:
            yield
        finally:
            torch.distributed.destroy_process_group()


def missing_augreg_message(path: str) -> str:
    """The error of a DAVPTViT (mmpretrain) whose ``init_cfg`` names a missing ``path`` called
    like the README's AugReg file: it names the converter command that writes the file."""
    return (f'pre-trained checkpoint {path} of DAVPTViT (init_cfg) can not be found; it is made '
            'by: python tools/model_converters/convert_vit.py model.safetensors '
            f'{path} --src-format safetensors --dst mmpretrain (see README "Pre-trained '
            'checkpoints")')


def attention_figure_shape(columns: int, heights: Tuple[int, ...] = (96, ),
                           title: bool = False) -> Tuple[int, int, int]:
    """The (H, W, 3) of a ``draw_attention`` picture: ``columns`` panels a row, rows of panels
    ``heights`` pixels high (a 96-pixel-wide panel of a square image is 96 high)."""
    from mmda_vpt.visualization.attention_figure import GAP, PANEL, TITLE_BAND, TOP_BAND
    height = (TOP_BAND if title else 0) + sum(TITLE_BAND + h + GAP for h in heights) + GAP
    return height, GAP + columns * (PANEL + GAP), 3
