"""Parse a search space: ``key=values`` items into grid axes (lists) and sampled ranges."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import optuna

from .config_paths import PathKey

__all__ = ['Range', 'SearchParam', 'parse_space']


@dataclass(frozen=True)
class Range:
    """A range to sample from: integers when ``low`` and ``high`` are ints.

    Args:
        low (float): Lower bound (included).
        high (float): Upper bound (included).
        log (bool): Sample on a log scale. Defaults to False.
        step (float, optional): Spacing of the values. Defaults to None.
    """
    low: float
    high: float
    log: bool = False
    step: Optional[float] = None

    @property
    def integer(self) -> bool:
        """Whether the range holds integers (``low``, ``high`` and any ``step`` are ints)."""
        return (isinstance(self.low, int) and isinstance(self.high, int)
                and (self.step is None or isinstance(self.step, int)))


@dataclass
class SearchParam:
    """One searched value of the study and the config paths it sets.

    Attributes:
        name: Its name in the study, as given (``'lr'``, ``'beta+lam'``, a config path).
        keys: The short names or config paths it sets.
        values: The list of values of a grid axis, or a :class:`Range`.
        paths: The resolved config paths, one per key and the paths tied to it (see
            :func:`~mmda_vpt.tune.config_paths.tied_paths`).
    """
    name: str
    keys: List[str]
    values: Union[List[Any], Range]
    paths: List[PathKey] = field(default_factory=list)

    @property
    def is_grid(self) -> bool:
        """Whether the values are a list (a grid axis) rather than a :class:`Range`."""
        return isinstance(self.values, list)

    def suggest(self, trial: optuna.Trial) -> Any:
        """The trial's value of this parameter."""
        if self.is_grid:
            return trial.suggest_categorical(self.name, self.values)
        r = self.values
        if r.integer:
            return trial.suggest_int(self.name, r.low, r.high, step=r.step or 1, log=r.log)
        return trial.suggest_float(self.name, float(r.low), float(r.high), step=r.step,
                                   log=r.log)


def _scalar(text: str) -> Any:
    """A number, bool, None or string from the command line."""
    text = text.strip()
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ('true', 'false'):
        return lowered == 'true'
    if lowered in ('none', 'null'):
        return None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in '\'"':
        return text[1:-1]
    return text


def _parse_values(key: str, text: str) -> Union[List[Any], Range]:
    """``a,b,c`` -> a list; ``low:high[:log|:step]`` -> a :class:`Range`; ``a`` -> ``[a]``."""
    if ',' in text or ':' not in text:
        values = [_scalar(v) for v in text.split(',') if v.strip() != '']
        if not values:
            raise ValueError(f'{key}: no values given')
        return values
    parts = text.split(':')
    if len(parts) not in (2, 3):
        raise ValueError(f'{key}={text}: a range is low:high, low:high:log or low:high:step')
    low, high = _scalar(parts[0]), _scalar(parts[1])
    log, step = False, None
    if len(parts) == 3:
        if parts[2].strip().lower() == 'log':
            log = True
        else:
            step = _scalar(parts[2])
    return _check_range(key, Range(low, high, log, step))


def _check_range(key: str, r: Range) -> Range:
    for name in ('low', 'high') + (('step', ) if r.step is not None else ()):
        value = getattr(r, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f'{key}: the range\'s {name} {value!r} is not a number')
    if r.low > r.high:
        raise ValueError(f'{key}: the range\'s low {r.low} is above its high {r.high}')
    if r.log and r.low <= 0:
        raise ValueError(f'{key}: a log range needs low > 0, got {r.low}')
    if r.step is not None and (r.step <= 0 or r.log):
        raise ValueError(f'{key}: a range\'s step must be > 0 and not with log')
    return r


def _check_choices(key: str, values: List[Any]) -> List[Any]:
    for value in values:
        if not (value is None or isinstance(value, (bool, int, float, str))):
            raise ValueError(f'{key}: a listed value must be a number, string, bool or None, '
                             f'got {value!r}')
    if len(set(map(repr, values))) != len(values):
        raise ValueError(f'{key}: a value is listed twice in {values}')
    return list(values)


def parse_space(space: Union[Sequence[str], Mapping[str, Any], None]) -> Dict[str, Any]:
    """The search space as ``name -> list of values or Range``.

    A key is a short name or a config path (``beta+lam`` ties several to one value); a value is
    a list (``0,1e-4,1e-3``: a grid axis) or a range (``1e-4:1e-2:log``, ``1:20`` (integers),
    ``0:1:0.25`` (with a step)), sampled.

    Args:
        space (Sequence[str] | Mapping, optional): ``'key=values'`` strings or a mapping of key
            to a list, a :class:`Range`, a ``'values'`` string or a single value.

    Returns:
        dict: Name -> list of values (a grid axis) or :class:`Range`.

    Raises:
        ValueError: On a malformed item, a key given twice or a bad range.
    """
    parsed: Dict[str, Any] = {}
    if space is None:
        return parsed
    if isinstance(space, Mapping):
        items = list(space.items())
    else:
        items = []
        for item in space:
            if '=' not in item:
                raise ValueError(f'--space item {item!r} is not KEY=VALUES')
            key, text = item.split('=', 1)
            items.append((key.strip(), text))
    for key, value in items:
        if key in parsed:
            raise ValueError(f'{key}: given twice in the space')
        if isinstance(value, str):
            value = _parse_values(key, value)
        elif isinstance(value, Range):
            value = _check_range(key, value)
        elif isinstance(value, (list, tuple)):
            value = list(value)
        else:
            value = [value]
        parsed[key] = _check_choices(key, value) if isinstance(value, list) else value
    return parsed
