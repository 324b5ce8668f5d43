"""Learning-rate schedules the DA-VPT recipes use, registered in mmengine's PARAM_SCHEDULERS."""
from .warmup_cosine_lr import WarmupCosineLR

__all__ = ['WarmupCosineLR']
