"""One command-line parser for every tool: flags anywhere on the line, ``key=value`` words are overrides.

Detectron2's tools declare the overrides as ``nargs=argparse.REMAINDER``, so everything after the
first ``key=value`` word, flags included, becomes an override (``... output_dir=x --print-commands``
fails as the override ``--print-commands``), and a flag with ``nargs="+"`` swallows the overrides
that follow it (``--only mae random output_dir=x``). :class:`CommandLineParser` instead takes
exactly the words shaped like ``key=value`` (``+key=value`` and ``++key=value`` too) out of the
line before argparse sees it, so flags, positionals and overrides can come in any order. A word
that is the value of a one-argument flag (``--config-file my=cfg.py``) stays that flag's value;
positionals may be interleaved with flags (``parse_intermixed_args``).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, Sequence

__all__ = ["CommandLineParser", "OVERRIDE_PATTERN", "is_override", "split_overrides"]

# A dotted config key (list indexes as ``.0``), optionally prefixed with + or ++, then "=".
OVERRIDE_PATTERN = re.compile(r"^\+{0,2}[A-Za-z_][\w\-]*(\.[\w\-]+)*=")


def is_override(word: str) -> bool:
    """Whether a command-line word is a config override ``key=value``."""
    return bool(OVERRIDE_PATTERN.match(word))


def split_overrides(argv: Sequence[str], values_taken: dict[str, int]) -> tuple[list[str], list[str]]:
    """Split a command line into ``(other words, overrides)``, both in their original order.

    Args:
        argv: the words after the program name.
        values_taken: for each option string, how many following words are its values
            (1 for a plain ``--flag VALUE``; 0 for switches and for ``nargs="+"/"*"``, whose
            values end at the first override or flag anyway).
    """
    rest: list[str] = []
    overrides: list[str] = []
    owed = 0
    for i, word in enumerate(argv):
        if word == "--":
            rest.extend(argv[i:])
            break
        if owed:
            rest.append(word)
            owed -= 1
            continue
        if word.startswith("-") and len(word) > 1 and not _is_number(word):
            rest.append(word)
            if "=" not in word:
                owed = _lookup(values_taken, word)
            continue
        (overrides if is_override(word) else rest).append(word)
    return rest, overrides


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def _lookup(values_taken: dict[str, int], option: str) -> int:
    if option in values_taken:
        return values_taken[option]
    # argparse accepts unambiguous prefixes of long options (--config for --config-file).
    matches = [o for o in values_taken if o.startswith("--") and o.startswith(option)]
    return values_taken[matches[0]] if len(matches) == 1 else 0


class CommandLineParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose flags may come anywhere, with ``key=value`` overrides.

    Args:
        overrides: collect ``key=value`` words into ``args.opts`` (``False``: the tool takes no
            overrides, and such words are ordinary positionals, e.g. a directory named ``lr=0.1``).
        overrides_help: what the overrides apply to, for ``--help``.
        **kwargs: passed to ``argparse.ArgumentParser``.
    """

    def __init__(self, *args: Any, overrides: bool = True, overrides_help: str = "config overrides",
                 **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        # Set before argparse's own __init__, which adds -h through add_argument.
        self.overrides = overrides
        self.values_taken: dict[str, int] = {}
        self._has_positionals = False
        self._parsing = False
        super().__init__(*args, **kwargs)
        if overrides:
            note = (f"{overrides_help}: key=value words anywhere on the line, e.g. train.max_iter=100 "
                    "optimizer.lr=1e-4 (+key=value adds a key); flags may come before or after them")
            self.epilog = f"{self.epilog}\n\n{note}" if self.epilog else note

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if not action.option_strings:
            self._has_positionals = True
        nargs = action.nargs
        for option in action.option_strings:
            self.values_taken[option] = 1 if nargs is None else nargs if isinstance(nargs, int) else 0
        return action

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        if self._parsing:  # parse_known_intermixed_args calls back into this method
            return super().parse_known_args(args, namespace)
        argv = list(sys.argv[1:] if args is None else args)
        overrides: list[str] = []
        if self.overrides:
            argv, overrides = split_overrides(argv, self.values_taken)
        self._parsing = True
        try:
            if self._has_positionals:
                ns, extra = self.parse_known_intermixed_args(argv, namespace)
            else:
                ns, extra = super().parse_known_args(argv, namespace)
        finally:
            self._parsing = False
        if self.overrides:
            ns.opts = overrides
        return ns, extra
