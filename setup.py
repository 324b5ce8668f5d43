"""Installer of mmda_vpt. Use ``tools/setup_env.sh`` (``make setup``) for the whole stack."""
import os.path as osp

from setuptools import find_packages, setup


def read_version() -> str:
    namespace: dict = {}
    with open(osp.join(osp.dirname(__file__), 'mmda_vpt', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def read_requirements(name: str) -> list:
    path = osp.join(osp.dirname(__file__), 'requirements', name)
    with open(path) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


setup(
    name='mmda_vpt',
    version=read_version(),
    description='DA-VPT (Distribution-Aware Visual Prompt Tuning) for mmpretrain and '
    'mmsegmentation',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'benchmarks', 'benchmarks.*', 'configs', 'tools')),
    python_requires='>=3.9',
    # Ranges tested: torch 2.14.1, mmcv 2.1.0 (with ops), mmengine 0.10.7, mmpretrain 1.2.0,
    # mmsegmentation 1.2.2. mmcv is built by tools/setup_env.sh, so it is not listed here.
    install_requires=[
        'torch>=2.1',
        'torchvision>=0.16',
        'mmengine>=0.10.7,<0.11',
        'mmpretrain>=1.2.0,<1.3',
        'mmsegmentation>=1.2.2,<1.3',
        'scikit-learn>=1.3',
        'ftfy',
        'regex',
        'matplotlib>=3.7',
    ],
    extras_require={
        'tests': read_requirements('tests.txt'),
        'demo': read_requirements('demo.txt'),
    },
    license='Apache-2.0',
    zip_safe=False,
)
