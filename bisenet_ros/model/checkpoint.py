"""Checkpoint loading and saving.

Two formats are read:

* **reference**: a plain ``state_dict`` (``dict[str, Tensor]``) as released by the public
  BiSeNet V2 implementation (CoinCheung/BiSeNet), with or without booster-head keys, optionally
  wrapped in ``{'state_dict': ...}`` / ``{'model': ...}`` and/or prefixed ``module.`` (DDP).
  Variant and ``num_classes`` are inferred from tensor shapes.
* **project**: a dict with ``format == 'bisenet_ros.checkpoint'`` that carries metadata
  (variant, label set with names/colours/ignore id/normalisation, training input size, schema
  version, free-form ``meta``).

Every file is read with ``torch.load(weights_only=True)``: a checkpoint can never run code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import os
from pathlib import Path
import pickle
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch

from ..labels import LabelSet, LabelSetError, load_label_set
from .bisenetv2 import AUX_HEADS, BiSeNetV2, SizePolicy
from .factory import build_model, VARIANTS, variant_of

CHECKPOINT_FORMAT = 'bisenet_ros.checkpoint'
#: Version 1: state_dict + variant + label_set + input_size + meta.
SCHEMA_VERSION = 1

PathLike = Union[str, 'os.PathLike[str]']


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and what does not match."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist or is not a file."""


@dataclass
class CheckpointInfo:
    """What a checkpoint says about its model.

    ``label_set`` is ``None`` for reference checkpoints (they carry no class metadata);
    ``input_size`` is the training crop ``(H, W)`` in pixels when known.
    """

    path: str
    format: str
    variant: str
    num_classes: int
    label_set: Optional[LabelSet] = None
    input_size: Optional[Tuple[int, int]] = None
    has_aux_heads: bool = False
    meta: Dict[str, Any] = field(default_factory=dict)


def read_checkpoint(path: PathLike) -> Tuple[Dict[str, torch.Tensor], CheckpointInfo]:
    """Read a checkpoint file safely and identify its layout.

    Returns:
        ``(state_dict, info)``; the state_dict keys use this package's (= the reference's) names.

    Raises:
        CheckpointNotFoundError: missing file.
        CheckpointError: truncated/corrupt file, pickled code, unknown key layout.
    """
    where = str(path)
    raw = _safe_load(where)
    if isinstance(raw, Mapping) and raw.get('format') == CHECKPOINT_FORMAT:
        return _read_project(raw, where)
    return _read_reference(raw, where)


def load_model(path: PathLike, *, label_set: Union[str, LabelSet, None] = None,
               with_aux: bool = False, size_policy: Union[str, SizePolicy] = SizePolicy.PAD,
               device: Union[str, torch.device] = 'cpu') -> BiSeNetV2:
    """Load a BiSeNet V2 checkpoint as an eval-mode model.

    Args:
        path: Reference state_dict or project checkpoint (``.pth``/``.pt``).
        label_set: Label set name or object to attach; must have the checkpoint's class count.
            Defaults to the checkpoint's own, else ``cityscapes`` for 19-class reference files,
            else anonymous classes.
        with_aux: Keep the booster heads (for :meth:`BiSeNetV2.forward_with_aux`); needs a
            checkpoint that has them.
        size_policy: Handling of H, W not divisible by 32 (``'pad'``, ``'resize'``, ``'strict'``).
        device: Where to put the weights.

    Returns:
        The model in eval mode. Input ``(N, 3, H, W)`` float normalised RGB, output logits
        ``(N, C, H, W)``. ``model.label_set`` and ``model.checkpoint_info`` carry the metadata.
    """
    state_dict, info = read_checkpoint(path)
    if with_aux and not info.has_aux_heads:
        raise CheckpointError(f'{info.path}: with_aux=True but the checkpoint has no booster-head '
                              'weights (aux2.*, aux3.*, aux4.*, aux5_4.*)')
    resolved = _resolve_label_set(info, label_set)
    model = build_model(info.variant, info.num_classes, aux_heads=with_aux,
                        size_policy=size_policy)
    if not with_aux:
        state_dict = {k: v for k, v in state_dict.items() if k.split('.')[0] not in AUX_HEADS}
    _load_state(model, state_dict, info.path)
    model.label_set = resolved  # type: ignore[assignment]
    model.checkpoint_info = info  # type: ignore[assignment]
    return model.to(device).eval()


def save_checkpoint(path: PathLike, model: BiSeNetV2, label_set: LabelSet, *,
                    variant: Optional[str] = None, input_size: Optional[Sequence[int]] = None,
                    include_aux: bool = False, meta: Optional[Dict[str, Any]] = None) -> Path:
    """Write a project checkpoint atomically (temp file + ``os.replace``).

    Args:
        model: The model whose weights are saved (booster heads dropped unless ``include_aux``).
        label_set: Classes the model predicts; its size must equal ``model.num_classes``.
        variant: Variant name; derived from the model's width/depth when omitted.
        input_size: Training crop ``(H, W)``.
        meta: Extra plain data (str/int/float/bool/list/dict) such as metrics or the command.
    """
    if label_set.num_classes != model.num_classes:
        raise CheckpointError(f'{path}: label set {label_set.name} has {label_set.num_classes} '
                              f'classes but the model predicts {model.num_classes}')
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
             if include_aux or k.split('.')[0] not in AUX_HEADS}
    payload = {
        'format': CHECKPOINT_FORMAT,
        'schema_version': SCHEMA_VERSION,
        'variant': variant or variant_of(model.config.width, model.config.depth),
        'num_classes': int(model.num_classes),
        'label_set': label_set.to_dict(),
        'input_size': [int(v) for v in input_size] if input_size else None,
        'meta': dict(meta or {}),
        'state_dict': state,
    }
    return atomic_torch_save(payload, path)


def atomic_torch_save(payload: Any, path: PathLike) -> Path:
    """``torch.save`` to a temp file beside ``path``, then ``os.replace``: readers never see a
    half-written file, and an interrupted save leaves the old file intact."""
    from ..user_files import atomic_path
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as temp:
        torch.save(payload, temp)
    return target


def _safe_load(where: str) -> Any:
    if not os.path.isfile(where):
        raise CheckpointNotFoundError(f'checkpoint {where}: no such file')
    try:
        return torch.load(where, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f'checkpoint {where}: refused, it holds Python objects that weights_only loading '
            f'does not allow (only tensors and plain data are accepted): {_first_line(exc)}'
        ) from exc
    except Exception as exc:  # torch raises many types for corrupt input (IndexError, ...)
        raise CheckpointError(f'checkpoint {where}: not a readable PyTorch file (truncated or '
                              f'corrupt?): {_first_line(exc)}') from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _read_project(raw: Mapping[str, Any], where: str):
    version = raw.get('schema_version')
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise CheckpointError(f'checkpoint {where}: schema_version {version!r} is not supported '
                              f'(this bisenet_ros reads <= {SCHEMA_VERSION}); upgrade bisenet_ros')
    state = raw.get('state_dict')
    if not isinstance(state, Mapping):
        raise CheckpointError(f"checkpoint {where}: project checkpoint without a 'state_dict'")
    variant = raw.get('variant')
    if variant not in VARIANTS:
        raise CheckpointError(f'checkpoint {where}: unknown variant {variant!r}; expected one '
                              f'of {sorted(VARIANTS)}')
    try:
        label_set = LabelSet.from_dict(raw.get('label_set'), source=f'in checkpoint {where}')
    except LabelSetError as exc:
        raise CheckpointError(str(exc)) from exc
    state_dict = _tensor_dict(state, where)
    num_classes = _classifier_classes(state_dict, where)
    if num_classes != raw.get('num_classes') or num_classes != label_set.num_classes:
        raise CheckpointError(
            f"checkpoint {where}: classifier has {num_classes} classes, metadata says "
            f"{raw.get('num_classes')} and the label set has {label_set.num_classes}")
    size = raw.get('input_size')
    info = CheckpointInfo(path=where, format='project', variant=variant, num_classes=num_classes,
                          label_set=label_set,
                          input_size=tuple(int(v) for v in size) if size else None,
                          has_aux_heads=_has_aux(state_dict), meta=dict(raw.get('meta') or {}))
    return state_dict, info


def _read_reference(raw: Any, where: str):
    if isinstance(raw, Mapping):
        for wrapper in ('state_dict', 'model', 'model_state_dict'):
            if isinstance(raw.get(wrapper), Mapping):
                raw = raw[wrapper]
                break
    if not isinstance(raw, Mapping) or not raw:
        raise CheckpointError(f'checkpoint {where}: expected a state_dict (dict of tensors), got '
                              f'{type(raw).__name__}')
    state_dict = _tensor_dict(raw, where)
    if all(k.startswith('module.') for k in state_dict):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    num_classes = _classifier_classes(state_dict, where)
    width = state_dict['detail.S1.0.conv.weight'].shape[0] / 64 \
        if 'detail.S1.0.conv.weight' in state_dict else 1.0
    s5_layers = {k.split('.')[2] for k in state_dict if k.startswith('segment.S5_4.')}
    depth = max(1, len(s5_layers) - 1) / 3
    try:
        variant = variant_of(width, depth)
    except ValueError as exc:
        raise CheckpointError(f'checkpoint {where}: {exc}') from exc
    info = CheckpointInfo(path=where, format='reference', variant=variant,
                          num_classes=num_classes, has_aux_heads=_has_aux(state_dict))
    return state_dict, info


def _tensor_dict(state: Mapping[str, Any], where: str) -> Dict[str, torch.Tensor]:
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f'checkpoint {where}: entries are not tensors: {bad[:5]}')
    return dict(state)


def _classifier_classes(state: Mapping[str, torch.Tensor], where: str) -> int:
    weight = state.get('head.conv_out.1.weight')
    if weight is None or weight.dim() != 4:
        sample = ', '.join(list(state)[:5])
        raise CheckpointError(f"checkpoint {where}: unknown key layout, no BiSeNet V2 classifier "
                              f"'head.conv_out.1.weight' (first keys: {sample})")
    return int(weight.shape[0])


def _has_aux(state: Mapping[str, torch.Tensor]) -> bool:
    return all(any(k.startswith(name + '.') for k in state) for name in AUX_HEADS)


def _resolve_label_set(info: CheckpointInfo,
                       requested: Union[str, LabelSet, None]) -> LabelSet:
    if requested is not None:
        label_set = load_label_set(requested)
    elif info.label_set is not None:
        label_set = info.label_set
    elif info.num_classes == 19:
        label_set = load_label_set('cityscapes')
    else:
        label_set = LabelSet.generic(info.num_classes)
    if label_set.num_classes != info.num_classes:
        raise CheckpointError(f'checkpoint {info.path}: the model predicts {info.num_classes} '
                              f'classes but label set {label_set.name} ({label_set.source}) has '
                              f'{label_set.num_classes}')
    return label_set


def _load_state(model: BiSeNetV2, state_dict: Dict[str, torch.Tensor], where: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [f'{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}'
                   for k, v in expected.items()
                   if k in state_dict and state_dict[k].shape != v.shape]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing keys (e.g. {missing[:3]})')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})')
        if wrong_shape:
            parts.append(f'{len(wrong_shape)} shape mismatches (e.g. {wrong_shape[:2]})')
        raise CheckpointError(f'checkpoint {where}: does not match BiSeNetV2 '
                              f'{model.config.width}x/{model.config.depth}x: ' + '; '.join(parts))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state_dict.items()})
