from .prompt_proxy_anchor_loss import PromptProxyAnchorLoss

__all__ = ['PromptProxyAnchorLoss']
