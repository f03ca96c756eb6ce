"""Declared types of the options the built-in datasets share (see :mod:`genbench.api.parameters`)."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Interval

#: A number of items to draw or keep: at least one.
Count = Annotated[int, Ge(1)]
#: The fraction of a fixed set held out as the test split.
TestFraction = Annotated[float, Interval(gt=0, lt=1)]
