"""Proxy-Anchor loss with prompts as the proxies (DA-VPT, Eq. 4)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['PromptProxyAnchorLoss']

POS_REDUCTIONS = ('with_positives', 'all')


class PromptProxyAnchorLoss(nn.Module):
    """Proxy-Anchor loss (Kim et al. 2020) between M prompt proxies and n samples.

    .. math::
        L = \\frac{1}{|P^+|} \\sum_{p \\in P^+} \\log\\Big(1 + \\sum_{x \\in X_p^+}
            e^{-\\alpha (\\cos(x, p) - \\delta)}\\Big)
          + \\frac{1}{|P|} \\sum_{p \\in P} \\log\\Big(1 + \\sum_{x \\in X_p^-}
            e^{\\alpha (\\cos(x, p) + \\delta)}\\Big)

    Computed in float32 (also under autocast) with a stable log(1 + sum exp).

    Args:
        margin (float): The margin delta. Defaults to 0.1.
        alpha (float): The scale alpha = 1 / tau. Defaults to 32.
        pos_reduction (str): ``'with_positives'`` averages the positive term over the prompts
            that have a positive sample in the batch (the paper's Eq. 4 and the original loss);
            ``'all'`` over all M prompts (the authors' released code).
            Defaults to ``'with_positives'``.
    """

    def __init__(self, margin: float = 0.1, alpha: float = 32.0,
                 pos_reduction: str = 'with_positives') -> None:
        super().__init__()
        if pos_reduction not in POS_REDUCTIONS:
            raise ValueError(f'pos_reduction must be one of {POS_REDUCTIONS}, '
                             f'got {pos_reduction!r}')
        self.margin = float(margin)
        self.alpha = float(alpha)
        self.pos_reduction = pos_reduction

    @staticmethod
    def _log1p_sum_exp(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log(1 + sum_j mask_ij exp(logits_ij)) per row, stably; 0 for an empty row."""
        logits = logits.masked_fill(~mask, float('-inf'))
        zeros = logits.new_zeros(logits.shape[0], 1)
        return torch.logsumexp(torch.cat([zeros, logits], dim=1), dim=1)

    def forward(self, proxies: torch.Tensor, samples: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            proxies: (M, D) prompt proxies.
            samples: (n, D) samples.
            labels: (n,) integers in [0, M): the prompt each sample belongs to.

        Returns:
            Tensor: A scalar float32 loss; 0 (still connected to the inputs) without samples.
        """
        if proxies.dim() != 2 or samples.dim() != 2 or proxies.shape[1] != samples.shape[1]:
            raise ValueError(f'expected proxies (M, D) and samples (n, D), got '
                             f'{tuple(proxies.shape)} and {tuple(samples.shape)}')
        labels = labels.reshape(-1).long()
        if labels.numel() != samples.shape[0]:
            raise ValueError(f'{samples.shape[0]} samples but {labels.numel()} labels')
        num_proxies = proxies.shape[0]
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_proxies):
            raise ValueError(f'labels must be in [0, {num_proxies}), got values from '
                             f'{int(labels.min())} to {int(labels.max())}')
        with torch.autocast(device_type=proxies.device.type, enabled=False):
            proxies = F.normalize(proxies.float(), dim=1)
            samples = F.normalize(samples.float(), dim=1)
            if samples.shape[0] == 0:
                return (proxies.sum() + samples.sum()) * 0.0
            cos = proxies @ samples.t()  # (M, n)
            positive = F.one_hot(labels, num_proxies).t().bool()  # (M, n)
            pos_term = self._log1p_sum_exp(-self.alpha * (cos - self.margin), positive)
            neg_term = self._log1p_sum_exp(self.alpha * (cos + self.margin), ~positive)
            if self.pos_reduction == 'with_positives':
                has_pos = positive.any(dim=1)
                pos_loss = pos_term.sum() / has_pos.sum().clamp(min=1)
            else:
                pos_loss = pos_term.mean()
            return pos_loss + neg_term.mean()
