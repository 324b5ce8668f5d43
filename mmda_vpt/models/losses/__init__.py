"""The DA-VPT losses: Proxy-Anchor with prompts as proxies."""
from .prompt_proxy_anchor_loss import PromptProxyAnchorLoss

__all__ = ['PromptProxyAnchorLoss']
