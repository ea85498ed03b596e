"""The one walk over botocore shapes: every reader and writer of a model's values is one of these.

A walker is called with a shape, the value found for it and where that value is (a path for
messages); it dispatches on the shape's type to ``structure``, ``list``, ``map`` or ``scalar``.
The Query decoders (``query.py``), the XML writers (``query_xml.py``), the EMR input validator
(``api/shapes.py``) and its output checker (``api/results.py``) are subclasses; what differs
between protocols is a method overridden, as in botocore's serializers and parsers.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from botocore.model import Shape

V = TypeVar("V")  # what the walker is given for a shape
R = TypeVar("R")  # what it makes of it

CONTAINERS = ("structure", "list", "map")


class ShapeWalker(Generic[V, R]):
    def walk(self, shape: Shape, value: V, path: str) -> R:
        kind = shape.type_name
        if kind == "structure":
            return self.structure(shape, value, path)
        if kind == "list":
            return self.list(shape, value, path)
        if kind == "map":
            return self.map(shape, value, path)
        return self.scalar(shape, value, path)

    def structure(self, shape: Any, value: V, path: str) -> R:
        raise NotImplementedError

    def list(self, shape: Any, value: V, path: str) -> R:
        raise NotImplementedError

    def map(self, shape: Any, value: V, path: str) -> R:
        raise NotImplementedError

    def scalar(self, shape: Shape, value: V, path: str) -> R:
        raise NotImplementedError
