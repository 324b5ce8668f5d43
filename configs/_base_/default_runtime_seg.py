# Runtime of the segmentation configs: mmsegmentation's (with its SegTTAModel for mIoU-MS),
# plus the mmda_vpt components.
_base_ = 'mmseg::_base_/default_runtime.py'

custom_imports = dict(imports=['mmda_vpt'], allow_failed_imports=False)

randomness = dict(seed=0, deterministic=False)
