"""An on-disk cache of a frozen image encoder's feature grids, computed once per image.

Layout: one file per image, ``<directory>/<encoder_name>_<H>x<W>_<weights>/<image file name>.pt``,
holding a float tensor [L, D] (L = h*w grid locations in row-major order); ``<weights>`` is
:func:`weights_digest` of the encoder (12 hex digits of a sha256 over its state dict). The folder
name keys the features by encoder, input size and weights, so changing any of them starts a
fresh folder instead of mixing features. Files are written to a temporary name and renamed, so an interrupted ``fill`` never
leaves a half-written file under the final name.

Corrupt files: ``get`` raises :class:`~ram_lightning.errors.DataError` naming the file (delete
it, or run ``fill(..., verify=True)``, which loads every existing file and recomputes the ones
that do not read back as a 2-D float tensor). A plain ``fill`` only checks that files exist, so
it costs nothing when everything is cached.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ram_lightning.errors import DataError, UserError

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}")


def weights_digest(module: nn.Module) -> str:
    """12 hex digits of a sha256 over ``module``'s state dict (names, dtypes, shapes and values,
    buffers included): the same for the same weights, whatever the device.

    >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    >>> weights_digest(a) == weights_digest(b)
    False
    >>> b.load_state_dict(a.state_dict())
    <All keys matched successfully>
    >>> weights_digest(a) == weights_digest(b), len(weights_digest(a))
    (True, 12)
    """
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:12]


def _size(image_size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    height, width = (int(v) for v in image_size)
    if height <= 0 or width <= 0:
        raise UserError(f"FeatureCache: image_size must be positive, got {image_size}")
    return height, width


class FeatureCache:
    """Features of a frozen encoder, one ``.pt`` file per image id.

    Args:
        directory: root folder of the cache (created on demand).
        encoder_name: names the encoder (and its weights); part of the folder name, so letters,
            digits, ``.``, ``_`` and ``-`` only.
        image_size: (H, W) (or one int for square) of the images fed to the encoder; ``fill``
            refuses images of another size.
        weights: :func:`weights_digest` of the encoder, part of the folder name; ``fill``
            refuses an encoder with other weights. None: no weights in the key (only for
            encoders that have none).
    """

    def __init__(self, directory: Union[str, os.PathLike], encoder_name: str,
                 image_size: Union[int, Sequence[int]] = (224, 224), weights: Optional[str] = None) -> None:
        if not _SAFE_NAME.fullmatch(encoder_name):
            raise UserError(
                f"FeatureCache: encoder_name {encoder_name!r} must be letters, digits, '.', '_' or '-' "
                "(it names a folder)"
            )
        self.encoder_name = encoder_name
        self.image_size = _size(image_size)
        height, width = self.image_size
        self.root = Path(directory)
        if weights is not None and not re.fullmatch(r"[0-9a-f]{12}", weights):
            raise UserError(f"FeatureCache: weights must be weights_digest(encoder), 12 hex digits; got {weights!r}")
        self.weights = weights
        self.folder = self.root / (f"{encoder_name}_{height}x{width}" + (f"_{weights}" if weights else ""))

    def path(self, image_id: str) -> Path:
        """The file of ``image_id``: the id itself when it is a plain file name, else a hash."""
        image_id = str(image_id)
        if _SAFE_NAME.fullmatch(image_id):
            name = image_id
        else:  # a leading "_" cannot be a safe id, so hashed names never collide with plain ones
            name = "_" + hashlib.sha1(image_id.encode("utf-8")).hexdigest()
        return self.folder / f"{name}.pt"

    def __contains__(self, image_id: str) -> bool:
        return self.path(image_id).is_file()

    def missing(self, image_ids: Iterable[str]) -> list:
        """The ids (deduplicated, in order) with no cache file."""
        return [i for i in dict.fromkeys(str(i) for i in image_ids) if i not in self]

    def get(self, image_id: str) -> Tensor:
        """Cached features [L, D] of ``image_id``; DataError if missing or unreadable."""
        path = self.path(image_id)
        if not path.is_file():
            raise DataError(
                f"no cached {self.encoder_name} features for image {image_id!r} ({path}): "
                "run FeatureCache.fill first"
            )
        return self._load(path)

    def _load(self, path: Path) -> Tensor:
        try:
            features = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise DataError(
                f"corrupt feature cache file {path} ({type(error).__name__}: {error}); "
                "delete it or run fill(..., verify=True) to recompute it"
            ) from error
        if not isinstance(features, Tensor) or features.dim() != 2 or not features.is_floating_point():
            described = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
            raise DataError(
                f"corrupt feature cache file {path}: expected a float tensor [L, D], got {described}; "
                "delete it or run fill(..., verify=True) to recompute it"
            )
        return features

    def _readable(self, image_id: str) -> bool:
        try:
            self.get(image_id)
        except DataError:
            return False
        return True

    def _save(self, image_id: str, features: Tensor) -> None:
        path = self.path(image_id)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        # clone: a row of a batch is a view, and torch.save would write the whole batch's storage
        torch.save(features.detach().to("cpu", torch.float32).contiguous().clone(), temporary)
        os.replace(temporary, path)

    def fill(self, image_ids: Iterable[str], load_image: Callable[[str], Tensor], encoder: nn.Module,
             batch_size: int = 32, device: Optional[Union[str, torch.device]] = None,
             verify: bool = False, progress: bool = True) -> int:
        """Compute and store the features of every id not cached yet; returns how many.

        Args:
            image_ids: ids to cache (duplicates are computed once).
            load_image: id -> image [3, H, W] at ``image_size`` (the encoder's input convention).
            encoder: images [B, 3, H, W] -> [B, L, D]; run in eval mode under ``torch.no_grad``
                (its training flag is restored afterwards).
            batch_size: images per encoder call.
            device: where to run the encoder; default: the device of its first parameter (CPU if
                it has none). The encoder is not moved.
            verify: also load every existing file and recompute the unreadable ones.
            progress: show a tqdm progress bar.
        """
        if batch_size < 1:
            raise UserError(f"FeatureCache.fill: batch_size must be at least 1, got {batch_size}")
        if self.weights is not None and weights_digest(encoder) != self.weights:
            raise UserError(
                f"FeatureCache {self.folder.name}: the encoder's weights (digest {weights_digest(encoder)}) "
                f"are not the ones this cache is keyed by ({self.weights})"
            )
        ids = list(dict.fromkeys(str(i) for i in image_ids))
        todo = [i for i in ids if i not in self or (verify and not self._readable(i))]
        if not todo:
            return 0
        if device is None:
            parameter = next(encoder.parameters(), None)
            device = parameter.device if parameter is not None else torch.device("cpu")
        self.folder.mkdir(parents=True, exist_ok=True)
        was_training = encoder.training
        encoder.eval()
        height, width = self.image_size
        try:
            with torch.no_grad(), tqdm(total=len(todo), unit="img", disable=not progress,
                                       desc=f"features {self.folder.name}") as bar:
                for start in range(0, len(todo), batch_size):
                    batch_ids = todo[start:start + batch_size]
                    images = []
                    for image_id in batch_ids:
                        image = load_image(image_id)
                        if image.dim() != 3 or tuple(image.shape[-2:]) != (height, width):
                            raise UserError(
                                f"FeatureCache {self.folder.name}: image {image_id!r} has shape "
                                f"{tuple(image.shape)}, expected [C, {height}, {width}]"
                            )
                        images.append(image)
                    features = encoder(torch.stack(images).to(device))
                    if features.dim() != 3 or features.shape[0] != len(batch_ids):
                        raise UserError(
                            f"FeatureCache: encoder must return [B, L, D], got {tuple(features.shape)} "
                            f"for a batch of {len(batch_ids)}"
                        )
                    for image_id, row in zip(batch_ids, features):
                        self._save(image_id, row)
                    bar.update(len(batch_ids))
        finally:
            encoder.train(was_training)
        return len(todo)
