"""CharTokenizer: one token per distinct character of a corpus (for character-level models)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class CharTokenizer:
    """Maps each character of a fixed alphabet to an id (ids in sorted character order)."""

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars = sorted(set(chars))
        if not self.chars:
            raise ValueError("CharTokenizer: the alphabet is empty")
        if any(len(c) != 1 for c in self.chars):
            raise ValueError("CharTokenizer: every symbol must be a single character")
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The tokenizer whose alphabet is the set of characters in text."""
        return cls(text)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Character ids of text (int64), or a ValueError naming the characters not known."""
        try:
            return np.fromiter((self.stoi[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError:
            unknown = sorted({c for c in text if c not in self.stoi})
            raise ValueError(
                f"CharTokenizer: {len(unknown)} character(s) not in the vocabulary of "
                f"{self.vocab_size}: {''.join(unknown)!r}"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        """The text for a sequence of ids."""
        chars = self.chars
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(chars):
                raise ValueError(
                    f"CharTokenizer: id {i} is out of range for a vocabulary of {len(chars)}"
                )
            out.append(chars[i])
        return "".join(out)

    def to_dict(self) -> dict:
        """A JSON-friendly description (rebuild with from_dict)."""
        return {"type": "char", "chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        """The tokenizer described by to_dict()."""
        if d.get("type") != "char":
            raise ValueError(f"CharTokenizer.from_dict: not a char tokenizer: {d.get('type')!r}")
        return cls(d["chars"])
