"""Caption text: tokenising and the vocabulary.

Tokenising (:func:`tokenize`): lower-cased, then split by one nltk ``RegexpTokenizer`` (no
corpus to download). A token is a run of letters and digits, possibly joined by inner hyphens
or apostrophes (``t-shirt``, ``o'clock``, ``man's``); the Penn-Treebank clitics that Flickr8k
already writes apart (``'s``, ``n't``, ``'re``, ``'ve``, ``'ll``, ``'d``, ``'m``) are tokens of
their own; every other character (``.``, ``,``, quotes, ``!``, ``?``, brackets, ``&``, ...) is
dropped. BLEU is computed on these tokens, so hypotheses and references agree.

:class:`Vocabulary`: token <-> id, built from the training captions or read from ``vocab.json``.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nltk.tokenize import RegexpTokenizer

from ram_lightning.errors import DataError, UserError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)  # ids 0, 1, 2, 3
VOCAB_FORMAT = "ram-lightning-vocabulary"
VOCAB_VERSION = 1

_TOKENIZER = RegexpTokenizer(r"n't\b|'(?:s|re|ve|ll|d|m)\b|[^\W_]+(?:[-'][^\W_]+)*")


def tokenize(caption: str) -> list[str]:
    """Lower-cased word tokens of ``caption``; punctuation dropped (see the module docstring).

    >>> tokenize("A man's T-shirt , isn't it ? Two dogs do n't play .")
    ['a', "man's", 't-shirt', "isn't", 'it', 'two', 'dogs', 'do', "n't", 'play']
    """
    return _TOKENIZER.tokenize(caption.lower())


class Vocabulary:
    """Token <-> id mapping: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3, then
    the words, most frequent first (ties alphabetical), so a build is deterministic.

    Args:
        words: the non-special tokens in id order (ids 4, 5, ...).
        min_count: the threshold it was built with (kept for the record in ``vocab.json``).
    """

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, words: Iterable[str], min_count: int | None = None) -> None:
        words = list(words)
        self.itos: list[str] = list(SPECIAL_TOKENS) + words
        self.stoi: dict[str, int] = {token: i for i, token in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            seen: set[str] = set()
            dups = sorted({t for t in self.itos if t in seen or seen.add(t)})
            raise UserError(f"Vocabulary: duplicate or special tokens among the words: {dups[:5]}")
        self.min_count = min_count

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_count: int = 5) -> "Vocabulary":
        """Words that occur at least ``min_count`` times in ``token_lists`` (training captions)."""
        if min_count < 1:
            raise UserError(f"min_count must be >= 1, got {min_count}")
        counts = Counter(token for tokens in token_lists for token in tokens)
        for special in SPECIAL_TOKENS:
            counts.pop(special, None)
        words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls(words, min_count)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, min_count={self.min_count})"

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """``[<bos>, id(w1), .., id(wn), <eos>]``; unknown words map to ``<unk>``."""
        unk = self.unk_id
        return [self.bos_id, *(self.stoi.get(t, unk) for t in tokens), self.eos_id]

    def decode(self, ids: Iterable[int], keep_unk: bool = True) -> list[str]:
        """Tokens of ``ids``, stopping at the first ``<eos>``, dropping ``<pad>`` and ``<bos>``.

        ``<unk>`` is kept by default (it stands for a real word, so dropping it would shorten
        the hypothesis and change BLEU's brevity penalty); ``keep_unk=False`` drops it too.
        """
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id) or (i == self.unk_id and not keep_unk):
                continue
            out.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return out

    # ---- files

    def to_dict(self) -> dict[str, Any]:
        return {"format": VOCAB_FORMAT, "version": VOCAB_VERSION, "min_count": self.min_count,
                "tokens": self.itos}

    @classmethod
    def from_dict(cls, data: Any, where: str = "vocabulary") -> "Vocabulary":
        """Inverse of :meth:`to_dict`; a DataError names ``where`` and the bad field."""
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected a JSON object with a 'tokens' list, got {type(data).__name__}")
        if data.get("format", VOCAB_FORMAT) != VOCAB_FORMAT:
            raise DataError(f"{where}: field 'format' is {data.get('format')!r}, expected {VOCAB_FORMAT!r}")
        tokens = data.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            raise DataError(f"{where}: field 'tokens' must be a list of non-empty strings")
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise DataError(
                f"{where}: field 'tokens' must start with {list(SPECIAL_TOKENS)} (ids 0-3), "
                f"got {tokens[: len(SPECIAL_TOKENS)]}"
            )
        words = tokens[len(SPECIAL_TOKENS):]
        if len(set(tokens)) != len(tokens):
            dups = sorted(w for w, n in Counter(tokens).items() if n > 1)
            raise DataError(f"{where}: field 'tokens' has duplicates: {dups[:5]}")
        min_count = data.get("min_count")
        if min_count is not None and (not isinstance(min_count, int) or isinstance(min_count, bool)):
            raise DataError(f"{where}: field 'min_count' must be an integer or null, got {min_count!r}")
        return cls(words, min_count)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the vocabulary as JSON (atomically: a temporary file, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f, ensure_ascii=False, indent=0)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a file written by :meth:`save`.

        Raises:
            DataError: the file is missing, unreadable, not JSON, or lacks a valid ``tokens``
                list starting with the four special tokens.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"vocabulary file {path} not found (expected a vocab.json written by Vocabulary.save)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"cannot read vocabulary file {path}: {err}") from err
        except json.JSONDecodeError as err:
            raise DataError(f"vocabulary file {path} is not valid JSON ({err}); delete it to rebuild") from err
        return cls.from_dict(data, where=f"vocabulary file {path}")
