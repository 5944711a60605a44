"""The Flickr8k text release: the token file (``<image>.jpg#<n><TAB><caption>``), the split
lists, Karpathy's ``dataset_flickr8k.json``, and where these files are looked for
(``<data_dir>/Flickr8k_text/`` or ``<data_dir>/``).

Quirks of the real token file, handled by :func:`read_token_file` and reported, not hidden:
the five lines ``2258277193_586949ec62.jpg.1#0..4`` carry a stray ``.1`` after ``.jpg``
(normalised to ``2258277193_586949ec62.jpg``; that image is in no split list). Lines without a
tab or without an ``<image>#<n>`` id are skipped and reported with their line numbers, up to
``max_malformed`` (default 10) of them; more means the file is not a Flickr8k token file and
raises a DataError.

    >>> from datamodules.flickr8k_text import read_token_file             # doctest: +SKIP
    >>> captions, report = read_token_file("Flickr8k_text/Flickr8k.token.txt")  # doctest: +SKIP
    >>> len(captions), report.lines, report.renamed_lines                # doctest: +SKIP
    (8092, 40460, 5)
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ram_lightning.errors import DataError

DATA_DIR_ENV = "RAM_FLICKR8K_DIR"
DEFAULT_DATA_DIR = "./data/flickr8k"
TOKEN_FILE = "Flickr8k.token.txt"
SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt",
               "test": "Flickr_8k.testImages.txt"}
KARPATHY_FILE = "dataset_flickr8k.json"
TEXT_DIR = "Flickr8k_text"
KARPATHY_HINT = (
    "dataset_flickr8k.json is in Karpathy's caption_datasets.zip "
    "(https://cs.stanford.edu/people/karpathy/deepimagesent/)"
)
_STRAY_SUFFIX = re.compile(r"^(?P<name>.+\.jpe?g)\.\d+$", re.IGNORECASE)
_CAPTION_ID = re.compile(r"^(?P<image>[^#\s]+)#(?P<n>\d+)$")
SHOWN = 5  # names listed in messages


def first_names(names: Sequence[str], count: int = SHOWN) -> str:
    shown = ", ".join(str(n) for n in list(names)[:count])
    return shown + (", ..." if len(names) > count else "")


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir``, else ``$RAM_FLICKR8K_DIR``, else ``./data/flickr8k``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


def find_text_file(data_dir: Path, name: str) -> Path | None:
    """``<data_dir>/Flickr8k_text/<name>`` or ``<data_dir>/<name>``, whichever exists."""
    for candidate in (data_dir / TEXT_DIR / name, data_dir / name):
        if candidate.is_file():
            return candidate
    return None


@dataclass
class TokenFileReport:
    """What :func:`read_token_file` found, quirks included.

    Attributes:
        path: the file read.
        lines: lines in the file (blank ones included).
        captions: captions kept.
        images: distinct images after normalising names.
        blank_lines: empty lines, ignored.
        renamed_lines: lines whose image name had a stray suffix after ``.jpg`` (``.jpg.1``).
        renamed_images: original name -> normalised name, for those lines.
        duplicate_ids: ``<image>#<n>`` ids seen before (after normalising); their captions are
            kept as extra references.
        skipped: ``(line number, reason)`` of each malformed line skipped.
    """

    path: Path
    lines: int = 0
    captions: int = 0
    images: int = 0
    blank_lines: int = 0
    renamed_lines: int = 0
    renamed_images: dict[str, str] = field(default_factory=dict)
    duplicate_ids: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.captions} captions of {self.images} images from {self.lines} lines"]
        if self.renamed_lines:
            renames = ", ".join(f"{a} -> {b}" for a, b in self.renamed_images.items())
            parts.append(f"{self.renamed_lines} lines with a stray suffix after .jpg normalised ({renames})")
        if self.duplicate_ids:
            parts.append(f"{self.duplicate_ids} repeated caption ids kept")
        if self.skipped:
            where = ", ".join(str(n) for n, _ in self.skipped[:SHOWN])
            parts.append(f"{len(self.skipped)} malformed lines skipped (line {where})")
        if self.blank_lines:
            parts.append(f"{self.blank_lines} blank lines")
        return "; ".join(parts)


def read_token_file(path: str | os.PathLike, max_malformed: int = 10,
                    ) -> tuple[dict[str, list[str]], TokenFileReport]:
    """Parse ``Flickr8k.token.txt`` (``<image>.jpg#<n><TAB><caption>`` per line).

    Pure: nothing is logged; the report says what was normalised or skipped.

    Args:
        path: the token file.
        max_malformed: most lines without a tab, with a bad id or an empty caption that are
            skipped (each reported with its line number); one more raises.

    Returns:
        ``(captions, report)``: image name -> its captions in file order (stray ``.jpg.<k>``
        suffixes removed from names), and a :class:`TokenFileReport`.

    Raises:
        DataError: the file is missing, unreadable or not UTF-8, has more than
            ``max_malformed`` malformed lines, or holds no caption.
    """
    path = Path(path)
    report = TokenFileReport(path=path)
    captions: dict[str, list[str]] = {}
    seen_ids: set[tuple[str, int]] = set()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise DataError(
            f"Flickr8k token file {path} not found; expected the Flickr8k text release "
            f"({TOKEN_FILE} with lines '<image>.jpg#<n><TAB><caption>')"
        ) from err
    except OSError as err:
        raise DataError(f"cannot read Flickr8k token file {path}: {err}") from err
    except UnicodeDecodeError as err:
        raise DataError(f"Flickr8k token file {path} is not UTF-8 text ({err})") from err
    for number, line in enumerate(text.splitlines(), start=1):
        report.lines += 1
        if not line.strip():
            report.blank_lines += 1
            continue
        reason = None
        if "\t" not in line:
            reason = "no tab between '<image>.jpg#<n>' and the caption"
        else:
            key, caption = line.split("\t", 1)
            match = _CAPTION_ID.match(key.strip())
            caption = caption.strip()
            if match is None:
                reason = f"id {key.strip()[:60]!r} is not '<image>.jpg#<n>'"
            elif not caption:
                reason = "empty caption"
        if reason is not None:
            report.skipped.append((number, reason))
            if len(report.skipped) > max_malformed:
                shown = "; ".join(f"line {n}: {r}" for n, r in report.skipped[:SHOWN])
                raise DataError(
                    f"{path}: more than {max_malformed} malformed lines ({shown}, ...); expected "
                    f"'<image>.jpg#<n><TAB><caption>' on every line. Is this {TOKEN_FILE}?"
                )
            continue
        image, index = match.group("image"), int(match.group("n"))
        stray = _STRAY_SUFFIX.match(image)
        if stray is not None:
            report.renamed_lines += 1
            report.renamed_images[image] = stray.group("name")
            image = stray.group("name")
        if (image, index) in seen_ids:
            report.duplicate_ids += 1
        seen_ids.add((image, index))
        captions.setdefault(image, []).append(caption)
        report.captions += 1
    report.images = len(captions)
    if not captions:
        raise DataError(f"{path} holds no caption; expected lines '<image>.jpg#<n><TAB><caption>'")
    return captions, report


def read_split_file(path: str | os.PathLike) -> list[str]:
    """Image names, one per line (blank lines ignored; order kept).

    Raises:
        DataError: the file is missing or unreadable, empty, or lists a name twice.
    """
    path = Path(path)
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except FileNotFoundError as err:
        raise DataError(f"Flickr8k split file {path} not found; expected one image name per line") from err
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read Flickr8k split file {path}: {err}") from err
    names = [n for n in names if n]
    if not names:
        raise DataError(f"Flickr8k split file {path} is empty; expected one image name per line")
    if len(set(names)) != len(names):
        seen: set[str] = set()
        dups = [n for n in names if n in seen or seen.add(n)]
        raise DataError(f"{path} lists {len(dups)} image names twice ({first_names(dups)})")
    return names


def read_karpathy_json(path: str | os.PathLike) -> dict[str, list[tuple[str, list[str]]]]:
    """Splits of Karpathy's ``dataset_flickr8k.json``: ``{"train"|"val"|"test": [(filename,
    raw captions), ...]}`` (``restval`` images join train).

    Raises:
        DataError: the file is missing, not JSON, or lacks the fields ``images[].filename``,
            ``images[].split`` or ``images[].sentences[].raw`` / ``tokens``.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DataError(f"Karpathy split file {path} not found; {KARPATHY_HINT}") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read Karpathy split file {path} as JSON: {err}") from err
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list) or not images:
        raise DataError(f"{path}: expected a JSON object with a non-empty 'images' list")
    splits: dict[str, list[tuple[str, list[str]]]] = {"train": [], "val": [], "test": []}
    for k, entry in enumerate(images):
        where = f"{path}: images[{k}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            raise DataError(f"{where} has no string field 'filename'")
        split = {"restval": "train"}.get(entry.get("split"), entry.get("split"))
        if split not in splits:
            raise DataError(f"{where}: field 'split' is {entry.get('split')!r}, expected train, val, test or restval")
        sentences = entry.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            raise DataError(f"{where}: field 'sentences' must be a non-empty list")
        raws = []
        for s in sentences:
            if isinstance(s, dict) and isinstance(s.get("raw"), str):
                raws.append(s["raw"])
            elif isinstance(s, dict) and isinstance(s.get("tokens"), list):
                raws.append(" ".join(map(str, s["tokens"])))
            else:
                raise DataError(f"{where}: each sentence needs a string 'raw' or a 'tokens' list")
        splits[split].append((entry["filename"], raws))
    return splits
