"""The feature-extractor contract: :class:`FeatureExtractor` and :class:`ExtractorMixin`.

An extractor is an ``nn.Module`` with torch-fidelity's interface: it is built as
``cls(name, features_list, **kwargs)``, its ``forward`` takes a batch and returns one tensor
per requested layer (in ``features_list`` order), and the static methods
``get_provided_features_list()`` and ``get_default_feature_layer_for_metric(metric)`` name its
layers. Two kinds of class are accepted by the ``register_feature_extractors`` hook:

* a :class:`FeatureExtractor` subclass (the built-ins): torch-fidelity's interface written on
  torch alone, so registering, listing and describing extractors never imports torch-fidelity,
  whose package imports torchvision and, through it, torch's compiler stack (about 1.7 s on a
  2-core machine, more than half of ``genbench list extractors``);
* a subclass of torch-fidelity's own ``FeatureExtractorBase``, unchanged (mix in
  :class:`ExtractorMixin` before it to declare weights, input format and supported data).

:func:`torch_fidelity_extractor` turns a :class:`FeatureExtractor` into a class torch-fidelity's
``register_feature_extractor`` / ``calculate_metrics`` accept, for direct torch-fidelity use.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import torch
from torch import nn

from genbench.api.errors import ConfigError
from genbench.api.parameters import validate_on_init

if TYPE_CHECKING:
    from genbench.api.data import DataInfo

__all__ = ["ExtractorMixin", "FeatureExtractor", "INPUT_FORMATS", "REQUIRED_METHODS",
           "extractor_bases", "missing_methods", "torch_fidelity_extractor"]

INPUT_FORMATS = ("uint8", "float")
#: What an extractor class must define itself (checked when it is registered).
REQUIRED_METHODS = ("forward", "get_provided_features_list", "get_default_feature_layer_for_metric")
_TORCH_FIDELITY_BASE = "torch_fidelity.feature_extractor_base"


class ExtractorMixin:
    """genbench's side of a feature extractor (part of :class:`FeatureExtractor`; mix it in
    before torch-fidelity's ``FeatureExtractorBase`` in a torch-fidelity subclass).

    Every attribute is optional (a plain torch-fidelity extractor gets these defaults):

    * ``input_format``: ``"uint8"`` (``Bx3xHxW`` uint8 images, torch-fidelity's convention) or
      ``"float"`` (the data tensor itself, float32: vectors ``(B, D)`` or images in [0, 1]).
    * ``weights_filename``, ``weights_sha256``, ``weights_url``: the weights file the extractor
      loads, its expected sha256 (``None`` if unknown) and where it is published.
      :meth:`default_weights_path` is where genbench looks for it; ``genbench assets`` lists
      and installs it there.
    * :meth:`supports` says whether the extractor applies to a dataset; :meth:`init_kwargs`
      adds constructor keywords that depend on the dataset; :meth:`check_dependencies`
      fails before training when an optional package it needs is missing.

    Metric layers come from ``get_default_feature_layer_for_metric``; an extractor without
    class logits returns ``None`` (or raises ``KeyError``) for ``"isc"`` and IS is skipped.
    """

    input_format: ClassVar[str] = "uint8"
    #: ``name`` and ``features_list``: torch-fidelity's own arguments, not options.
    framework_positionals: ClassVar[int] = 2
    weights_filename: ClassVar[str | None] = None
    weights_sha256: ClassVar[str | None] = None
    weights_url: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        validate_on_init(cls)  # declared options (``digit_channels: Literal[1, 3]``) are checked

    @classmethod
    def default_weights_path(cls) -> Path | None:
        """Where the weights file is looked for: by default torch hub's checkpoint cache."""
        if not cls.weights_filename:
            return None
        return Path(torch.hub.get_dir()) / "checkpoints" / cls.weights_filename

    @classmethod
    def supports(cls, data_info: "DataInfo") -> str | None:
        """``None`` if the extractor can embed this data, else the reason it cannot."""
        return default_supports(cls, data_info)

    @classmethod
    def init_kwargs(cls, data_info: "DataInfo") -> dict[str, Any]:
        """Extra constructor keywords for this dataset (default: none)."""
        return {}

    @classmethod
    def check_dependencies(cls) -> None:
        """Raise :class:`~genbench.api.errors.MissingDependencyError`, saying how to install it,
        when a package the extractor imports is missing (checked before training; default:
        nothing to check). Must be cheap: look the package up, do not import it."""


def default_supports(cls: type, data_info: "DataInfo") -> str | None:
    """The default :meth:`ExtractorMixin.supports`: ``float`` extractors take any data, image
    extractors gray or RGB images."""
    if getattr(cls, "input_format", "uint8") == "float":
        return None
    if data_info.kind != "image":
        return f"it embeds images and {data_info.name!r} is {data_info.kind} data"
    if data_info.shape[0] not in (1, 3):
        return f"it embeds gray or RGB images and {data_info.name!r} has {data_info.shape[0]} channels"
    return None


class FeatureExtractor(ExtractorMixin, nn.Module):
    """Base class of genbench's feature extractors: torch-fidelity's interface on torch alone.

    Subclasses define ``forward(x) -> tuple`` (one tensor per name of ``self.features_list``,
    in that order) and the static methods :meth:`get_provided_features_list` and
    :meth:`get_default_feature_layer_for_metric`; their constructor takes
    ``(name, features_list, feature_extractor_weights_path=None, **kwargs)`` and calls
    ``super().__init__(name, features_list)``. Unknown keywords (torch-fidelity passes
    ``verbose``) are theirs to ignore. The constructor initialises ``nn.Module`` itself, not
    ``super().__init__()``: a mixin listed after this class is not initialised by it.
    """

    def __init__(self, name: str, features_list: Sequence[str]):
        # nn.Module's, not super(): in a torch_fidelity_extractor class the next base is
        # torch-fidelity's, whose checks this one already makes.
        nn.Module.__init__(self)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a feature extractor's name must be a non-empty string, got {name!r}")
        if isinstance(features_list, str) or not isinstance(features_list, (list, tuple)):
            raise ConfigError(f"{name}: features_list must be a list of layer names, got {features_list!r}")
        provided = tuple(self.get_provided_features_list())
        unknown = [f for f in features_list if f not in provided]
        if unknown or not features_list or len(set(features_list)) != len(features_list):
            raise ConfigError(f"{name}: cannot extract layers {list(features_list)}; request one or "
                              f"more distinct layers of {', '.join(provided)}")
        self.name = name
        self.features_list = list(features_list)

    def get_name(self) -> str:
        return self.name

    # Abstract: a subclass that leaves either out is refused when registered (missing_methods).
    @staticmethod
    def get_provided_features_list() -> Sequence[str]:
        """Every layer the extractor can produce."""
        raise NotImplementedError("a FeatureExtractor subclass defines get_provided_features_list")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str | None:
        """The layer ``metric`` (``"fid"``, ``"isc"``, ``"kid"``, ``"prc"`` or ``"spatial"``)
        reads, ``None`` (or ``KeyError``) if none."""
        raise NotImplementedError("a FeatureExtractor subclass defines "
                                  "get_default_feature_layer_for_metric")

    @staticmethod
    def can_be_compiled() -> bool:
        """Whether torch-fidelity may wrap the module in ``torch.compile`` (default: no)."""
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        """An input for ``torch.compile``; needed only by a class whose
        :meth:`can_be_compiled` is true."""
        raise NotImplementedError("can_be_compiled() is false: there is nothing to compile")

    def get_requested_features_list(self) -> list[str]:
        """The layers this instance produces, in ``forward``'s order."""
        return self.features_list

    def convert_features_tuple_to_dict(self, features: tuple) -> dict[str, torch.Tensor]:
        """``forward``'s tuple as ``{layer: tensor}``."""
        if not isinstance(features, tuple) or len(features) != len(self.features_list):
            raise ValueError(f"{self.name}: forward must return a tuple of {len(self.features_list)} "
                             f"tensors ({', '.join(self.features_list)}), got {type(features).__name__}")
        return dict(zip(self.features_list, features))


def extractor_bases() -> tuple[type, ...]:
    """The classes a registered extractor may subclass: :class:`FeatureExtractor`, and
    torch-fidelity's ``FeatureExtractorBase`` when torch-fidelity is already imported (a class
    that subclasses it has imported it), so checking a registration never imports it."""
    base = sys.modules.get(_TORCH_FIDELITY_BASE)
    return (FeatureExtractor,) if base is None else (FeatureExtractor, base.FeatureExtractorBase)


def missing_methods(cls: type) -> str | None:
    """Why ``cls`` cannot serve as an extractor: the :data:`REQUIRED_METHODS` it inherits
    unimplemented from a base (genbench's, torch-fidelity's or ``nn.Module``), else ``None``."""
    bases = (*extractor_bases(), nn.Module)
    missing = [m for m in REQUIRED_METHODS
               if any(getattr(cls, m, None) is getattr(b, m, object()) for b in bases)]
    return None if not missing else f"it does not define {', '.join(missing)}"


@functools.lru_cache(maxsize=None)
def torch_fidelity_extractor(cls: type[FeatureExtractor]) -> type:
    """``cls`` as a subclass of torch-fidelity's ``FeatureExtractorBase`` too, for
    ``torch_fidelity.register_feature_extractor(name, ...)`` and ``calculate_metrics``
    (one class per ``cls``, made on the first call).

    genbench itself never needs this: it runs extractors and computes torch-fidelity's
    metrics from their features without torch-fidelity's input pipeline. Register the
    original class with genbench: the one returned here is made at run time, so worker
    processes cannot import it by name (it does not pickle).
    """
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    if issubclass(cls, FeatureExtractorBase):
        return cls
    if not (isinstance(cls, type) and issubclass(cls, FeatureExtractor)):
        raise ConfigError(f"{cls!r} is not a genbench FeatureExtractor subclass")
    return type(f"TorchFidelity{cls.__name__}", (cls, FeatureExtractorBase),
                {"__module__": cls.__module__, "__doc__": cls.__doc__,
                 "__qualname__": f"torch_fidelity_extractor({cls.__qualname__})"})
