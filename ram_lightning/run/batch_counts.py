"""An integer is a count, a number with a decimal point a fraction: ``limit_train_batches: 1``
is one batch, ``limit_train_batches: 1.0`` every batch, as Lightning documents.

Lightning annotates ``limit_{train,val,test,predict}_batches`` as ``Union[float, int, None]``
and jsonargparse tries a union's types in the order given, and its ``float`` accepts an
integer (1 -> 1.0): the count 1 became the fraction 1.0 before the Trainer saw it (in a
config file and on the command line alike). :func:`count_before_fraction` reorders every such
union of a parser's options to try ``int`` first, so an integer stays an integer and a float
(``1.0``, ``0.25``) still matches ``float``. ``overfit_batches`` and ``val_check_interval``
are annotated int-first already and are left as they are.
"""
from __future__ import annotations

from typing import Any, Union, get_args, get_origin

from jsonargparse import ArgumentParser


def int_before_float(typehint: Any) -> Any:
    """``typehint`` with ``int`` moved just before ``float`` if a Union lists float first; else unchanged."""
    if get_origin(typehint) is not Union:
        return typehint
    args = list(get_args(typehint))
    if int not in args or float not in args or args.index(int) < args.index(float):
        return typehint
    args.remove(int)
    args.insert(args.index(float), int)
    return Union[tuple(args)]


def count_before_fraction(parser: ArgumentParser) -> None:
    """Make every option of ``parser`` typed as a union of float and int try int first (in place).

    jsonargparse keeps an option's type on its action as ``_typehint``; the union is reordered
    there, once, when the parser is built (the Trainer's own annotations are not changed).
    """
    for action in parser._actions:
        typehint = getattr(action, "_typehint", None)
        reordered = int_before_float(typehint)
        if reordered is not typehint:
            action._typehint = reordered
