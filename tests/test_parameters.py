"""Parameters declared once, in the signature (genbench.registry.parameters): the validator
reads types, choices and ranges from the annotations, ``genbench show`` and its Markdown
print them, and a spec is refused before anything trains, with no hand-written check."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Literal, Optional

import pytest
import torch
from annotated_types import Ge, Gt, Interval, Le, Lt, MinLen

from genbench import GenerativeModel, hookimpl
from genbench.api.errors import ConfigError
from genbench.api.data import DataInfo
from genbench.registry.parameters import (check, construct, describe, effective_params,
                                          group_params, hyperparameters, parameters,
                                          validate_config, validate_sampling)
from helpers import invoke_cli, tiny_spec_toml


# -- the validator --------------------------------------------------------------------------

@pytest.mark.parametrize("annotation, good, bad", [
    (Literal["linear", "cosine"], ["linear", "cosine"], ["quadratic", 1, None]),
    (Optional[int], [None, 0, -3], [1.5, True, "1"]),
    (int | None, [None, 7], [True, 2.0]),
    (int, [0, 5], [True, False, 1.0, "5"]),             # a bool is not an int
    (bool, [True, False], [0, 1, "true"]),
    (float, [0.5, 3, -2], [True, "0.5", None]),          # an int is accepted for a float
    (tuple[int, int], [(1, 2), [1, 2]], [(1,), (1, 2, 3), (1, 2.5), "ab"]),  # a list for a tuple
    (tuple[float, ...], [(), [1, 2.5]], [[1, "x"], 3.0]),
    (Annotated[int, Ge(1)], [1, 100], [0, -1, True, 1.0]),
    (Annotated[float, Interval(ge=0, lt=1)], [0, 0.0, 0.999], [1, 1.0, -0.1]),
    (Annotated[float, Gt(0)] | None, [None, 1e-9], [0, 0.0, -1.0]),
    (tuple[Annotated[int, Ge(1)], ...], [(1, 2), [3]], [(1, 0), [0]]),  # nested constraint
    (tuple[Annotated[float, Ge(0), Lt(1)], Annotated[float, Ge(0), Lt(1)]],
     [(0.5, 0.999), [0, 0.9]], [(0.5, 1.0), (0.5,)]),
    (Annotated[str, MinLen(1)], ["a"], ["", 1]),
    (Annotated[int, Ge(1), Le(4)] | Literal["auto"], [1, 4, "auto"], [0, 5, "other"]),
])
def test_check_reads_types_choices_and_ranges(annotation, good, bad):
    for value in good:
        assert check(annotation, value), (annotation, value)
    for value in bad:
        assert not check(annotation, value), (annotation, value)


@pytest.mark.parametrize("annotation, shown", [
    (Annotated[int, Ge(1)], "int >= 1"),
    (Annotated[float, Gt(0)], "float > 0"),
    (Annotated[float, Interval(ge=0, lt=1)], "float in [0, 1)"),
    (Annotated[float, Ge(0), Le(1)], "float in [0, 1]"),
    (Literal["linear", "cosine"], "'linear' | 'cosine'"),
    (Annotated[int, Ge(1)] | None, "int >= 1 | None"),
    (tuple[Annotated[int, Ge(1)], ...], "tuple[int >= 1, ...]"),
    (tuple[float, float], "tuple[float, float]"),
    (bool, "bool"),
])
def test_describe_says_what_is_allowed(annotation, shown):
    assert describe(annotation) == shown


def test_an_unsupported_constraint_is_refused_not_ignored():
    with pytest.raises(TypeError, match="unsupported parameter constraint"):
        check(Annotated[int, lambda x: x > 0], 1)


# -- a model declaring its parameters --------------------------------------------------------

class Declared(GenerativeModel):
    """A model whose hyper-parameters carry their constraints and nothing else checks them."""

    description = "test model with declared parameters"

    def __init__(self, info, latent_dim: Annotated[int, Ge(1)] = 8,
                 schedule: Literal["linear", "cosine"] = "linear",
                 betas: tuple[Annotated[float, Interval(ge=0, lt=1)], ...] = (0.5, 0.9),
                 scale: float = 1.0, clip: Annotated[float, Gt(0)] | None = None,
                 legacy=3):
        super().__init__()
        self.info, self.latent_dim, self.betas = info, latent_dim, betas
        self.layer = torch.nn.Linear(latent_dim, info.dim)

    def fit(self, data, budget):
        """Nothing to train."""

    def sample(self, n, generator=None, *, temperature: Annotated[float, Gt(0)] = 1.0):
        return torch.rand(n, *self.info.shape, generator=generator)


class DeclaredPlugin:
    @hookimpl
    def register_models(self, register):
        register("declared", Declared)


def test_parameters_come_from_the_signature_whatever_the_data_info_is_called():
    params = parameters(Declared)
    assert list(params) == ["latent_dim", "schedule", "betas", "scale", "clip", "legacy"]
    assert params["latent_dim"].allowed == "int >= 1"
    assert params["clip"].allowed == "float > 0 | None"
    assert params["legacy"].allowed == "int"  # unannotated: the default's type, as before
    assert hyperparameters(Declared)["latent_dim"] == 8


@pytest.mark.parametrize("config, message", [
    ({"latent_dim": 0}, "model 'declared': hyper-parameter 'latent_dim' must be int >= 1 "
                        "(default 8), got 0"),
    ({"latent_dim": True}, "'latent_dim' must be int >= 1 (default 8), got True"),
    ({"schedule": "quadratic"}, "'schedule' must be 'linear' | 'cosine' (default 'linear'), "
                                "got 'quadratic'"),
    ({"betas": [0.5, 1.0]}, "'betas' must be tuple[float in [0, 1), ...] (default (0.5, 0.9)), "
                            "got [0.5, 1.0]"),
    ({"clip": 0}, "'clip' must be float > 0 | None"),
    ({"legacy": 2.5}, "'legacy' must be int (default 3), got 2.5"),
    ({"latnt_dim": 3}, "unknown hyper-parameter 'latnt_dim'; valid ones (with defaults): "
                       "latent_dim=8, schedule='linear'"),
])
def test_validate_config_names_the_parameter_the_value_and_what_is_allowed(config, message):
    with pytest.raises(ConfigError) as error:
        validate_config(Declared, config, "model 'declared'")
    assert message in str(error.value)


def test_validate_config_converts_a_list_for_a_tuple_and_leaves_canonical_values_alone():
    assert validate_config(Declared, {"betas": [0.1, 0.2], "scale": 2}, "m") == \
        {"betas": (0.1, 0.2), "scale": 2}
    # the fingerprint's canonical form is unchanged: ints for float defaults become floats
    assert effective_params(Declared, {"scale": 2})["scale"] == 2.0
    assert effective_params(Declared, {}) == {"latent_dim": 8, "schedule": "linear",
                                              "betas": (0.5, 0.9), "scale": 1.0, "clip": None,
                                              "legacy": 3}


def test_sampling_settings_are_declared_the_same_way():
    assert validate_sampling(Declared, {"temperature": 2}, "m") == {"temperature": 2.0}
    with pytest.raises(ConfigError, match="sampling setting 'temperature' must be float > 0 "
                                          r"\(default 1.0\), got 0"):
        validate_sampling(Declared, {"temperature": 0}, "model 'declared'")


def test_a_spec_with_an_out_of_range_value_exits_2_before_training(cli_plugins, tmp_path):
    cli_plugins().register(DeclaredPlugin(), name="declared-plugin")
    spec = tmp_path / "s.toml"
    spec.write_text(tiny_spec_toml(dataset="ring8", models=(), metrics=["speed"], steps=2)
                    .replace("models = []", 'models = [{ name = "declared", params = '
                                            '{ latent_dim = 0 } }]'))
    r = invoke_cli("run", str(spec), "--out", str(tmp_path / "o"))
    assert r.exit_code == 2, r.output
    assert "hyper-parameter 'latent_dim' must be int >= 1 (default 8), got 0" in r.stderr
    assert not (tmp_path / "o" / "runs").exists()  # nothing trained


def test_show_and_its_markdown_print_the_declaration(cli_plugins):
    cli_plugins().register(DeclaredPlugin(), name="declared-plugin")
    text = invoke_cli("show", "model", "declared").stdout
    assert any(line.split() == ["latent_dim", "8", "int", ">=", "1"] for line in text.splitlines())
    assert any(line.split() == ["temperature", "1.0", "float", ">", "0"]
               for line in text.splitlines())
    info = json.loads(invoke_cli("show", "model", "declared", "--json").stdout)
    assert {"name": "schedule", "default": "linear", "type": "'linear' | 'cosine'",
            "required": False} in info["hyperparameters"]
    markdown = invoke_cli("show", "model", "declared", "--markdown").stdout
    assert "| `latent_dim` | `8` | int >= 1 |" in markdown
    assert r"| `schedule` | `'linear'` | 'linear' \| 'cosine' |" in markdown
    assert "| `temperature` | `1.0` | float > 0 |" in markdown


# -- groups ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Knobs:
    width: Annotated[int, Ge(1)] = 4
    noisy: bool = False


class Grouped(Declared):
    def __init__(self, info, latent_dim: Annotated[int, Ge(1)] = 8, knobs: Knobs = Knobs()):
        super().__init__(info, latent_dim)
        self.knobs = knobs


def test_a_group_is_flat_keys_in_the_spec_and_one_object_in_the_class():
    assert hyperparameters(Grouped) == {"latent_dim": 8, "width": 4, "noisy": False}
    assert parameters(Grouped)["width"].group == "knobs"
    with pytest.raises(ConfigError, match="'width' must be int >= 1 \\(default 4\\), got 0"):
        validate_config(Grouped, {"width": 0}, "m")
    assert group_params(Grouped, {"latent_dim": 2, "noisy": True}) == \
        {"latent_dim": 2, "knobs": Knobs(noisy=True)}
    info = DataInfo(name="v", kind="vector", shape=(2,))
    model = construct(Grouped, info, width=3)
    assert model.knobs == Knobs(width=3) and model.latent_dim == 8
    assert effective_params(Grouped, {"width": 3}) == {"latent_dim": 8, "width": 3, "noisy": False}
    with pytest.raises(ConfigError, match="'latent_dim' must be int >= 1"):
        construct(Grouped, info, latent_dim=0)


# -- direct construction ----------------------------------------------------------------------

def test_building_a_model_directly_checks_its_declarations_like_a_spec():
    info = DataInfo(name="v", kind="vector", shape=(2,))
    with pytest.raises(ConfigError) as error:
        Declared(info, latent_dim=0)
    # its registered name once registered (an earlier test may have), else the class's
    assert str(error.value).partition(": ")[2] == ("hyper-parameter 'latent_dim' must be "
                                                   "int >= 1 (default 8), got 0")
    assert str(error.value).partition(":")[0] in ("declared", "Declared")
    with pytest.raises(ConfigError, match="'schedule' must be 'linear' \\| 'cosine'"):
        Declared(info, 4, "quadratic")  # positional arguments are checked too
    model = Declared(info, latent_dim=3, betas=[0.1, 0.2])
    assert model.latent_dim == 3 and model.betas == [0.1, 0.2]  # passed on as given
    with pytest.raises(TypeError, match="latnt_dim"):  # unknown keywords: Python's own error
        Declared(info, latnt_dim=3)


def test_the_registered_name_a_subclass_and_a_group_passed_whole_are_checked(registries):
    from genbench_plugins.models.gans.dcgan import DCGAN
    from genbench_plugins.models.gans.stabilisers import Stabilisers
    from genbench_plugins.models.vae import VAE

    image = DataInfo(name="i", kind="image", shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="^vae: hyper-parameter 'latent_dim' must be int >= 1 "
                                          "\\(default \\d+\\), got 0$"):
        VAE(image, latent_dim=0)

    class Inherits(Declared):  # no __init__ of its own: the base's declarations apply
        pass

    with pytest.raises(ConfigError, match="'latent_dim' must be int >= 1 \\(default 8\\), got -1"):
        Inherits(image, latent_dim=-1)
    with pytest.raises(ConfigError, match="'pack' must be int >= 1 \\(default 1\\), got 0"):
        DCGAN(image, stabilisers=Stabilisers(pack=0))
    with pytest.raises(ConfigError, match="'stabilisers' must be a Stabilisers, got 2"):
        DCGAN(image, stabilisers=2)


def test_only_the_outermost_init_checks():
    """A subclass may pass its base a value the base's declaration alone would refuse (here
    None for a ``latent_dim`` it resolves itself); the base's wrapper does not re-check it."""
    calls = []

    class Base(GenerativeModel):
        def __init__(self, info, latent_dim: Annotated[int, Ge(1)] = 8):
            super().__init__()
            calls.append(latent_dim)

        def sample(self, n, generator=None):
            return torch.zeros(n, 2)

    class Child(Base):
        def __init__(self, info, latent_dim: Annotated[int, Ge(1)] | None = None):
            super().__init__(info, latent_dim)

    Child(DataInfo(name="v", kind="vector", shape=(2,)))
    assert calls == [None]
    with pytest.raises(ConfigError, match="Child: hyper-parameter 'latent_dim'"):
        Child(DataInfo(name="v", kind="vector", shape=(2,)), latent_dim=0)


def test_datasets_metrics_samplers_and_extractors_built_directly_are_checked(registries):
    cases = [
        (lambda: registries.datasets.get("ring8")(n_train=0),
         "ring8: hyper-parameter 'n_train' must be int >= 1 (default 20000), got 0"),
        (lambda: registries.metrics.get("ndb")(alpha=1.0),
         "ndb: hyper-parameter 'alpha' must be float in (0, 1) (default 0.05), got 1.0"),
        (lambda: registries.metrics.get("fid-inf")(points=1),
         "fid-inf: hyper-parameter 'points' must be int >= 2 (default 15), got 1"),
        (lambda: registries.samplers.get("ddim")(alphas_cumprod=torch.tensor([0.9, 0.5]),
                                                 eta=-0.5),
         "ddim: hyper-parameter 'eta' must be float >= 0 (default 0.0), got -0.5"),
        (lambda: registries.extractors.get("digits-cnn")("digits-cnn", ["penultimate"],
                                                         digit_channels=2),
         "digits-cnn: hyper-parameter 'digit_channels' must be 1 | 3 (default 1), got 2"),
    ]
    for build, message in cases:
        with pytest.raises(ConfigError) as error:
            build()
        assert str(error.value) == message
    # the parameters genbench reads are unchanged by the check's wrapper
    assert list(parameters(registries.metrics.get("ndb"))) == ["bins", "alpha", "max_train",
                                                               "kmeans_seed"]


def test_a_run_builds_with_the_same_messages_as_before(registries):
    """On the runner's path the spec is validated first (naming the spec's label); the
    construction's own check then passes: the values are the ones already accepted."""
    from genbench_plugins.models.vae import VAE

    info = DataInfo(name="v", kind="vector", shape=(2,))
    with pytest.raises(ConfigError, match="^model 'vae\\[latent_dim=0\\]': hyper-parameter"):
        validate_config(VAE, {"latent_dim": 0}, "model 'vae[latent_dim=0]'")
    model = construct(VAE, info, latent_dim=2)
    assert model.latent_dim == 2
