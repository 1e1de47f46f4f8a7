"""The training loop: data, model, OHEM on every head, SGD + warm-up/poly, AMP, DDP, resume,
periodic validation, CSV/TensorBoard logs, and the final project checkpoint."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from ..labels import LabelSet
from ..model.factory import build_model
from . import distributed as ddp
from .config import ConfigError, save_config
from .checkpoint_export import export_model, warm_start_iteration
from .datasets import build_dataset, build_train_dataset, SegmentationDataset
from .validation import evaluate_dataset
from .logs import MetricsLog, Progress
from .precision import resolve_cpu_precision
from .loss import enet_class_weights, OhemCrossEntropy
from .sampler import IterationBatchSampler, Key
from .schedule import apply_lr, lr_factor, parameter_groups
from .state import load_train_state, save_train_state, set_rng_state, unwrap
from .ema import WeightEma
from .copy_paste import build_copy_paste, copy_paste_config, CopyPaste
from .transforms import augment, AugmentConfig, photometric_settings, to_tensor

LOGGER = logging.getLogger(__name__)


class AugmentedDataset:
    """Maps a sampler :data:`Key` to a normalised ``(3, H, W)`` image and ``(H, W)`` int64
    label; ``copy_paste`` (``train.copy_paste``, None = off) pastes rare-class objects."""

    def __init__(self, dataset: SegmentationDataset, cfg: AugmentConfig,
                 copy_paste: Optional[CopyPaste] = None) -> None:
        self.dataset, self.cfg, self.copy_paste = dataset, cfg, copy_paste

    def __getitem__(self, key: Key):
        index, seed = key
        image, label = self.dataset.load(index)
        ls = self.dataset.label_set
        paste = self.copy_paste.for_sample(seed, index) if self.copy_paste is not None else None
        image, label = augment(image, label, self.cfg, np.random.default_rng(list(seed)), ls.mean,
                               paste)
        return to_tensor(image, ls.mean, ls.std), torch.from_numpy(label.astype(np.int64))

    def __len__(self) -> int:
        return len(self.dataset)


def augment_config(train: Dict[str, Any], label_set: LabelSet) -> AugmentConfig:
    """The ``train`` config section as an :class:`AugmentConfig`; rare class names -> ids."""
    unknown = [n for n in train['rare_classes'] if n not in label_set.class_names]
    if unknown:
        raise ValueError(f'train.rare_classes: {unknown} are not classes of label set '
                         f'{label_set.name} ({", ".join(label_set.class_names)})')
    return AugmentConfig(crop=tuple(train['crop']) if train['crop'] else None,
                         base_scale=float(train['base_scale']),
                         scale_range=tuple(train['scale_range']), hflip=float(train['hflip']),
                         brightness=float(train['brightness']),
                         contrast=float(train['contrast']), saturation=float(train['saturation']),
                         focus_classes=tuple(label_set.class_names.index(n)
                                             for n in train['rare_classes']),
                         focus_prob=float(train['rare_crop_prob']),
                         **photometric_settings(train['photometric']))


def select_device(name: str, option: str = 'train.device') -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; ``option``
    names the setting in the error for ``cuda`` without a GPU."""
    if name == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(f'{option}=cuda but no CUDA GPU is available')
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    return torch.device(name)


def init_weights(model: torch.nn.Module, path: str) -> Dict[str, Any]:
    """Copy every tensor of a checkpoint whose name and shape match; returns the checkpoint's
    ``meta`` (empty for reference checkpoints).

    Used to fine-tune from a project or reference checkpoint, also with another class count
    (the classifiers then keep their fresh initialisation), and to warm-start a run. The logit
    offsets of a calibrated checkpoint (:mod:`.calibrate`) are taken out of its classifier bias
    first: training continues from the trained weights.
    """
    from ..model.checkpoint import read_checkpoint
    from .logit_offsets import CLASSIFIER_BIAS, recorded_offsets
    source, info = read_checkpoint(path)
    if info.label_set is not None and CLASSIFIER_BIAS in source:
        offsets = recorded_offsets(info.meta, info.label_set.class_names)
        if offsets is not None:
            source[CLASSIFIER_BIAS] = source[CLASSIFIER_BIAS] - torch.from_numpy(offsets)
            LOGGER.info('%s: calibrated checkpoint, its logit offsets taken out of %s', path,
                        CLASSIFIER_BIAS)
    target = model.state_dict()
    usable = {k: v for k, v in source.items() if k in target and v.shape == target[k].shape}
    skipped = sorted(set(target) - set(usable))
    model.load_state_dict(usable, strict=False)
    LOGGER.info('initialised %d of %d tensors from %s; kept fresh: %s', len(usable),
                len(target), path, ', '.join(skipped[:8]) + (' ...' if len(skipped) > 8 else ''))
    return dict(info.meta)


class Trainer:
    """One training run described by a resolved config (see :mod:`.config`).

    Files in ``output_dir``: ``config.yaml``, ``train_log.csv``, ``val_log.csv``, ``last.pt`` and
    ``best.pt`` (training states), ``final.pt`` (project checkpoint), ``tensorboard/``.
    """

    def __init__(self, config: Dict[str, Any], *, resume: Optional[str] = None,
                 warm_start: Optional[str] = None, command: str = '') -> None:
        self.config, self.command = config, command
        t = config['train']
        if t['threads']:
            torch.set_num_threads(int(t['threads']))
        self.device = select_device(t['device'])
        self.dist = ddp.init_distributed(self.device)
        if self.device.type == 'cuda':
            self.device = torch.device('cuda', self.dist.local_rank)
        torch.manual_seed(int(t['seed']))
        if self.dist.enabled:
            LOGGER.info('distributed: rank %d of world_size=%d, backend %s', self.dist.rank,
                        self.dist.world_size, torch.distributed.get_backend())
        self.out = Path(config['output_dir'])
        data = config['dataset']
        self.train_set = build_train_dataset(data, cache=bool(data['cache']))
        self.val_set = build_dataset(data, data['val_split'], cache=bool(data['cache'])) \
            if data['val_split'] else None
        self.label_set = self.train_set.label_set
        self.augment = augment_config(t, self.label_set)
        try:
            paste = copy_paste_config(t['copy_paste'], self.label_set)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        #: rare-class copy-paste (train.copy_paste); None when off
        self.copy_paste = build_copy_paste(paste, self.train_set, self.augment, self.label_set)
        model = build_model(config['model']['variant'], self.label_set.num_classes,
                            aux_heads=True).to(self.device)
        if config['model']['init']:
            init_weights(model, str(config['model']['init']))
        if self.dist.enabled and t['sync_bn'] and self.device.type == 'cuda':  # GPU-only in torch
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.optimizer = torch.optim.SGD(
            parameter_groups(model, float(t['weight_decay']), float(t['head_lr_mult'])),
            lr=float(t['lr']), momentum=float(t['momentum']))
        self.amp = bool(t['amp']) and self.device.type == 'cuda'
        self.bf16, self.channels_last = False, t['channels_last'] is True
        if self.device.type == 'cpu':
            precision = resolve_cpu_precision(t['cpu_bf16'], t['channels_last'])
            self.bf16, self.channels_last = precision.bf16, precision.channels_last
            LOGGER.info('training precision: %s', precision.reason)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.use_matmul_upsample(t['matmul_upsample'])
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp)
        self.criterion = OhemCrossEntropy(
            float(t['ohem_thresh']), int(t['ohem_min_kept_divisor']),
            class_weights=self._class_weights(t['class_weights'])).to(self.device)
        self.iteration, self.best_miou, self.last_miou = 0, -1.0, float('nan')
        #: the weight average that is validated and exported when train.ema_decay is set
        self.ema: Optional[WeightEma] = None
        if resume and warm_start:
            raise ValueError('give either resume (a training state) or warm_start (a project '
                             'checkpoint), not both')
        ema_state = None
        if resume:
            ema_state = self._resume(resume, model)
        elif warm_start:
            self._warm_start(warm_start, model)
        if t['ema_decay'] is not None:
            self.ema = WeightEma(model, float(t['ema_decay']))
            if ema_state is not None:
                self.ema.load_state_dict(ema_state)
            elif resume:
                LOGGER.warning('%s holds no weight average: the EMA starts from its weights',
                               resume)
        LOGGER.info('%s: %d train / %s val images, %d classes, device %s, %d iterations of batch '
                    '%d', self.train_set.name, len(self.train_set),
                    len(self.val_set) if self.val_set is not None else 0,
                    self.label_set.num_classes, self.device, int(t['iterations']),
                    int(t['batch_size']))
        self.model = model if not self.dist.enabled else torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == 'cuda' else None)
        #: what step() calls: the model, or its torch.compile'd twin (same parameters)
        self.forward = torch.compile(self.model) if t['compile'] else self.model

    def _class_weights(self, setting: Any) -> Optional[List[float]]:
        """The loss weight of each class from ``train.class_weights`` (None: all 1)."""
        if setting is None:
            return None
        num_classes = self.label_set.num_classes
        if setting == 'enet':
            counts = np.zeros(num_classes, dtype=np.int64)
            for index in range(len(self.train_set)):
                label = self.train_set.load(index)[1]
                counts += np.bincount(label[label < num_classes].ravel(),
                                      minlength=num_classes)[:num_classes]
            weights = [float(w) for w in enet_class_weights(counts)]
        else:
            weights = [float(w) for w in setting]
        if len(weights) != num_classes:
            raise ConfigError(f'train.class_weights has {len(weights)} entries, the label set '
                              f'{self.label_set.name} has {num_classes} classes')
        LOGGER.info('class weights (%s): %s', setting if isinstance(setting, str) else 'config',
                    ', '.join(f'{name} {w:.2f}'
                              for name, w in zip(self.label_set.class_names, weights)))
        return weights

    def _resume(self, path: str, model: torch.nn.Module) -> Optional[Dict[str, Any]]:
        """Restore a training state; returns its weight average's state (None if absent)."""
        state = load_train_state(path)
        model.load_state_dict(state['model'])
        self.optimizer.load_state_dict(state['optimizer'])
        if state.get('scaler') and self.amp:
            self.scaler.load_state_dict(state['scaler'])
        set_rng_state(state['rng'])
        self.iteration, self.best_miou = int(state['iteration']), float(state['best_miou'])
        self.last_miou = float(state.get('extra', {}).get('last_miou', float('nan')))
        LOGGER.info('resumed from %s at iteration %d', path, self.iteration)
        return state.get('ema')

    def _warm_start(self, path: str, model: torch.nn.Module) -> None:
        """Continue a run from its packaged model when its training state is gone: weights from
        the checkpoint (booster heads, which it does not hold, start fresh), the iteration it
        records (or, for a model trained by a branch of this run, the branch point); a fresh
        optimizer (no momentum). The learning rate is a pure function of the iteration and the
        data order of (seed, iteration), so both pick up where it stopped."""
        meta = init_weights(model, path)
        total = int(self.config['train']['iterations'])
        at = warm_start_iteration(meta, self.config)
        if at is None:
            at = meta.get('iterations')
            planned = meta.get('planned_iterations')
            if planned != total:
                LOGGER.warning('warm start from %s: it was planned for %s iterations, this run '
                               'for %d; the schedule continues with this run\'s', path, planned,
                               total)
        if not isinstance(at, int) or not 0 <= at < total:
            raise ValueError(f'warm start from {path}: it records iterations={at!r}; expected '
                             f'an integer in [0, {total}) (train.iterations of this run)')
        self.iteration = at
        best = meta.get('best_val_miou', meta.get('val_miou'))
        self.best_miou = float(best) if isinstance(best, (int, float)) else -1.0
        LOGGER.info('warm start from %s at iteration %d (optimizer state rebuilt)', path, at)

    def _autocast(self):
        if self.amp:
            return torch.autocast('cuda', dtype=torch.float16)
        if self.bf16:
            return torch.autocast('cpu', dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> List[float]:
        """One optimisation step at ``self.iteration``; returns [total, main, aux] losses."""
        t = self.config['train']
        apply_lr(self.optimizer, float(t['lr']), lr_factor(
            self.iteration, int(t['iterations']), warmup_iterations=int(t['warmup_iterations']),
            warmup_ratio=float(t['warmup_ratio']), power=float(t['poly_power'])))
        images = images.to(self.device, non_blocking=True,
                           memory_format=torch.channels_last if self.channels_last
                           else torch.preserve_format)
        labels = labels.to(self.device, non_blocking=True)
        with self._autocast():
            outputs = self.forward(images)
        main = self.criterion(outputs[0], labels)
        aux = sum(self.criterion(o, labels) for o in outputs[1:])
        loss = main + float(t['aux_weight']) * aux
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(unwrap(self.model))
        self.iteration += 1
        values = torch.tensor([float(loss.detach()), float(main.detach()), float(aux.detach())],
                              dtype=torch.float64)
        if self.dist.enabled:
            ddp.all_reduce_sum(values, self.dist).div_(self.dist.world_size)
        return values.tolist()

    def evaluated_model(self) -> torch.nn.Module:
        """What validation scores and ``final.pt`` holds: the weight average when
        ``train.ema_decay`` is set, else the trained model (unwrapped from DDP)."""
        return self.ema.model if self.ema is not None else unwrap(self.model)

    def validate(self) -> float:
        """mIoU on the validation split (all ranks share the work); NaN without a val split."""
        if self.val_set is None:
            return float('nan')
        v = self.config['val']
        matrix = evaluate_dataset(self.evaluated_model(), self.val_set,
                                  scales=(float(v['scale']),),
                                  device=self.device, max_images=v['max_images'],
                                  rank=self.dist.rank, world_size=self.dist.world_size)
        counts = torch.from_numpy(matrix.matrix)
        if self.dist.enabled:
            counts = ddp.all_reduce_sum(counts.to(self.device), self.dist).cpu()
            matrix.matrix = counts.numpy()
        scores = matrix.scores()
        self.last_miou = float(scores.miou)
        if self.dist.is_main:
            self.log.val_row(self.iteration, scores, self.label_set.class_names)
        return self.last_miou

    def _save_state(self, name: str) -> None:
        if self.dist.is_main:
            save_train_state(self.out / name, model=self.model, optimizer=self.optimizer,
                             scaler=self.scaler, iteration=self.iteration, config=self.config,
                             best_miou=self.best_miou,
                             extra={'last_miou': self.last_miou, 'command': self.command},
                             ema=self.ema.state_dict() if self.ema is not None else None)

    def _time_is_up(self, start: float, budget_min: Optional[float]) -> bool:
        """True on every rank once any rank has run longer than ``budget_min`` minutes."""
        flag = torch.tensor([float(budget_min is not None
                                   and time.time() - start > budget_min * 60)])
        return bool(ddp.all_reduce_sum(flag.to(self.device), self.dist).item() > 0)

    def data_loader(self, start: int, stop: int
                    ) -> Tuple[torch.utils.data.DataLoader, IterationBatchSampler]:
        """Batches ``(images (N, 3, H, W) float32 normalised, labels (N, H, W) int64)`` of
        iterations ``start .. stop-1`` (this process's share), and their sampler."""
        t = self.config['train']
        sampler = IterationBatchSampler(len(self.train_set), int(t['batch_size']),
                                        seed=int(t['seed']), start=start, stop=stop,
                                        rank=self.dist.rank, world_size=self.dist.world_size)
        loader = torch.utils.data.DataLoader(
            AugmentedDataset(self.train_set, self.augment, self.copy_paste),
            batch_sampler=sampler,
            num_workers=int(t['num_workers']), pin_memory=self.device.type == 'cuda',
            persistent_workers=False,
            # own generator: creating the iterator must not draw from the global RNG, which
            # drives dropout and is restored exactly on resume
            generator=torch.Generator().manual_seed(int(t['seed'])))
        return loader, sampler

    def fit(self, stop_after: Optional[int] = None,
            pause_after_min: Optional[float] = None) -> Optional[Path]:
        """Train to ``train.iterations`` (or the time budget); returns the ``final.pt`` path.

        ``stop_after``: leave after that iteration with only ``last.pt`` written, as an
        interrupted run would (no final validation or export); returns ``None``.
        ``pause_after_min``: the same after the first iteration that ends past this wall time
        (minutes from the start of the loop), unless the run has reached its end; unlike
        ``train.max_time_min`` the run's validations stay those of its schedule, so it resumes
        elsewhere as if never paused.
        """
        t, logcfg = self.config['train'], self.config['log']
        total = int(t['iterations'])
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.out / 'config.yaml')
        self.log = MetricsLog(self.out, enabled=self.dist.is_main, resume_at=self.iteration,
                              tensorboard=bool(logcfg['tensorboard']))
        loader, sampler = self.data_loader(self.iteration, total)
        progress = Progress(total, self.iteration, logcfg['progress'], int(logcfg['every']),
                            enabled=self.dist.is_main)
        start, stopped_early, every_val = time.time(), False, int(self.config['val']['every'])
        validated_at = -1
        self.model.train()
        for images, labels in loader:
            it_start = time.time()
            losses = self.step(images, labels)
            lr = self.optimizer.param_groups[0]['lr'] / self.optimizer.param_groups[0]['lr_mult']
            self.log.train_row(self.iteration, sampler.epoch_of(self.iteration - 1), lr, losses,
                               time.time() - start, time.time() - it_start)
            progress.update(self.iteration, losses[0], lr)
            if every_val and self.iteration % every_val == 0 and self.iteration < total:
                self._validate_and_keep_best()
                validated_at = self.iteration
            if self.iteration % int(logcfg['checkpoint_every']) == 0:
                self._save_state('last.pt')
            if (stop_after is not None and self.iteration >= stop_after) or (
                    pause_after_min is not None and self.iteration < total
                    and self._time_is_up(start, pause_after_min)):
                LOGGER.info('paused at iteration %d of %d: last.pt written', self.iteration,
                            total)
                self._save_state('last.pt')
                progress.close()
                self.log.close()
                return None
            if self._time_is_up(start, t['max_time_min']):
                stopped_early = self.iteration < total
                LOGGER.warning('time budget of %s min reached at iteration %d of %d; stopping '
                               '(the poly schedule did not reach 0)', t['max_time_min'],
                               self.iteration, total)
                break
        progress.close()
        if validated_at != self.iteration:
            self._validate_and_keep_best()
        self._save_state('last.pt')
        wall = time.time() - start
        final = self.out / 'final.pt'
        if self.dist.is_main:
            export_model(self.evaluated_model(), self.label_set, final, config=self.config,
                         iterations=self.iteration, val_miou=self.last_miou,
                         command=self.command, extra={'wall_time_s': round(wall, 1),
                                                      'stopped_early': stopped_early,
                                                      'best_val_miou': self.best_miou})
            LOGGER.info('done: %d iterations in %.1f min, val mIoU %.4f (best %.4f); wrote %s',
                        self.iteration, wall / 60, self.last_miou, self.best_miou, final)
        self.log.close()
        ddp.barrier(self.dist)
        return final

    def _validate_and_keep_best(self) -> None:
        miou = self.validate()
        if self.dist.is_main:
            LOGGER.info('iteration %d: val mIoU %.4f', self.iteration, miou)
        if miou == miou and miou > self.best_miou:
            self.best_miou = miou
            self._save_state('best.pt')
