"""Installer of mmda_vpt. Use ``tools/setup_env.sh`` (``make setup``) for the whole stack.

As in OpenMMLab's own projects, ``configs/``, ``tools/`` and ``model-index.yml`` ship inside the
package as ``mmda_vpt/.mim/`` so that ``mim train mmda_vpt CONFIG`` and ``mim test`` find them:
a wheel or sdist build copies them there, an editable install (``pip install -e .``) links them.
"""
import os
import os.path as osp
import shutil
import sys
import warnings

from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))

#: What ``mmda_vpt/.mim`` holds: mim looks up configs and ``tools/{train,test}.py`` there.
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def read_version() -> str:
    """The version in ``mmda_vpt/version.py``."""
    namespace: dict = {}
    with open(osp.join(ROOT, 'mmda_vpt', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def read_requirements(name: str) -> list:
    """The requirement lines of ``requirements/<name>``, without comments."""
    with open(osp.join(ROOT, 'requirements', name)) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


def read_readme() -> str:
    """The README, the package's long description."""
    path = osp.join(ROOT, 'README.md')
    if not osp.exists(path):
        return ''
    with open(path, encoding='utf-8') as f:
        return f.read()


def add_mim_extension() -> None:
    """Puts ``configs/``, ``tools/`` and ``model-index.yml`` into ``mmda_vpt/.mim``.

    Links them for an editable install (``develop`` / ``editable_wheel``), copies them for a
    wheel or sdist build, and does nothing for other commands. A missing source (an sdist has
    only the copies, and ``model-index.yml`` may not exist yet) is skipped, leaving whatever
    ``.mim`` already holds.
    """
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'copy' if os.name == 'nt' else 'symlink'
    elif 'sdist' in sys.argv or 'bdist_wheel' in sys.argv:
        mode = 'copy'
    else:
        return
    mim_path = osp.join(ROOT, 'mmda_vpt', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in MIM_FILES:
        src_path = osp.join(ROOT, name)
        if not osp.exists(src_path):
            continue
        tar_path = osp.join(mim_path, name)
        if osp.islink(tar_path) or osp.isfile(tar_path):
            os.remove(tar_path)
        elif osp.isdir(tar_path):
            shutil.rmtree(tar_path)
        if mode == 'symlink':
            os.symlink(osp.relpath(src_path, mim_path), tar_path)
        elif osp.isfile(src_path):
            shutil.copyfile(src_path, tar_path)
        elif osp.isdir(src_path):
            shutil.copytree(
                src_path, tar_path, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            warnings.warn(f'cannot copy {src_path} into {mim_path}')


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmda_vpt',
        version=read_version(),
        description='DA-VPT (Distribution-Aware Visual Prompt Tuning) for mmpretrain and '
        'mmsegmentation',
        long_description=read_readme(),
        long_description_content_type='text/markdown',
        packages=find_packages(exclude=('configs', 'configs.*', 'tools', 'tools.*', 'demo',
                                        'demo.*', 'benchmarks', 'benchmarks.*', 'tests',
                                        'tests.*')),
        # Data files of the package and the mim extension (configs, tools, model index).
        package_data={
            'mmda_vpt': [
                '**/*.csv', '**/*.yml', '.mim/model-index.yml', '.mim/configs/**/*',
                '.mim/tools/**/*'
            ]
        },
        python_requires='>=3.9',
        # mmcv (2.0-2.1, with its compiled ops) is not listed: pip would build it from source.
        # Install it first (`mim install "mmcv>=2.0.0,<2.2.0"`, or tools/setup_env.sh, which
        # builds it for the installed torch); it is the `mim` extra, as in OpenMMLab projects.
        install_requires=read_requirements('runtime.txt'),
        extras_require={
            'tune': read_requirements('tune.txt'),
            'tests': read_requirements('tests.txt'),
            'demo': read_requirements('demo.txt'),
            'mim': read_requirements('mminstall.txt'),
            'all': read_requirements('tune.txt') + read_requirements('tests.txt') +
            read_requirements('demo.txt'),
        },
        license='Apache-2.0',
        zip_safe=False,
    )
