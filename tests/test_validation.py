"""Every number a config sets is finite.

nan passes no comparison and inf passes every lower bound, so a range check alone lets
``lr: .inf`` (and ``a: .nan`` where no range is declared) through to a run that then
trains on nonsense. :class:`ebm_bench.core.validation.Check` refuses non-finite values
for every number-valued parameter, declared or inferred from a float default; the
config sections (train, evaluate, evaluate.model_modes) use the same checks.

Mutations tried (each failed these tests, then restored): the finiteness line of
``Check._problem`` removed (inf then passes ``lr``, nan passes ``gmm_teacher.a``);
``evaluate.model_modes`` no longer checked by ``check_config`` (``step_factor: .inf``
passes).
"""

from __future__ import annotations

import math

import pytest

from ebm_bench.core import validation as V
from ebm_bench.core.errors import ConfigError
from ebm_bench.core.registry import DATASETS, METHODS, NETWORKS

NON_FINITE = (math.inf, -math.inf, math.nan)


def _takes_numbers(check: V.Check) -> bool:
    number = check.kind == "number" or (check.alt is not None and check.alt.kind == "number")
    return number or (check.kind == "list" and check.item is not None and check.item.kind == "number")


def _number_keys() -> list[tuple[str, str, type, str]]:
    """(kind, component, class, key) of every number-valued parameter of every registered
    dataset, network and method."""
    return [(reg.kind, name, cls, key) for reg in (DATASETS, NETWORKS, METHODS) for name, cls in reg.items()
            for key, check in V.checks_of(cls).items() if _takes_numbers(check)]


def _holding(check: V.Check, default, bad: float):
    """A value of ``check``'s shape holding ``bad``: the number itself, or the default
    list (a list of the size the check asks for) with ``bad`` as its first entry."""
    if check.kind != "list":
        return bad
    size = len(default) if default else max(check.length or 1, check.min_len)
    return [bad] + list(default or [1.0] * size)[1:]


def test_there_are_number_keys_to_check() -> None:
    kinds = {kind for kind, *_ in _number_keys()}
    assert kinds == {"dataset", "network", "method"} and len(_number_keys()) > 50


@pytest.mark.parametrize("kind, name, cls, key", _number_keys(),
                         ids=[f"{k}-{n}-{key}" for k, n, _, key in _number_keys()])
def test_a_non_finite_parameter_is_refused_naming_the_key(kind, name, cls, key) -> None:
    check = V.checks_of(cls)[key]
    default = V.defaults_of(cls)[key]
    for bad in NON_FINITE:
        value = _holding(check, default, bad)
        with pytest.raises(ConfigError) as e:
            V.check_block(cls, {key: value}, f"{kind}.{name}")
        message = str(e.value)
        assert message.startswith(f"{kind}.{name}.{key}: ") and "\n" not in message, message
        assert repr(bad) in message, message
        if check.alt is None:  # with a second accepted form the message names both forms instead
            assert "is not finite" in message, message


def _config(**sections) -> dict:
    return {"seeds": [0], "datasets": {"a": {"type": "digits"}}, "variants": {"pcd": {"method": "pcd"}}, **sections}


@pytest.mark.parametrize("sections, key", [
    ({"variants": {"pcd": {"method": "pcd", "lr": math.inf}}}, "variants.pcd.lr"),
    ({"train": {"diverge_above": math.inf}}, "train.diverge_above"),
    ({"evaluate": {"min_real_per_dim": math.inf}}, "evaluate.min_real_per_dim"),
    ({"evaluate": {"min_classifier_accuracy": math.nan}}, "evaluate.min_classifier_accuracy"),
    ({"evaluate": {"model_modes": {"step_factor": math.inf}}}, "evaluate.model_modes.step_factor"),
    ({"evaluate": {"model_modes": {"power": -math.inf}}}, "evaluate.model_modes.power"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_the_config_check_refuses_non_finite_settings(sections, key) -> None:
    from ebm_bench.pipeline.config import check_config

    with pytest.raises(ConfigError, match=rf"^{key.replace('.', chr(92) + '.')}: -?(inf|nan) is not finite"):
        check_config(_config(**sections))
