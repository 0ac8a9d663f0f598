"""The model registry: names, hints, duplicates, ablations, RecBole defaults."""

from __future__ import annotations

import pytest

from seqbench.errors import ConfigError, UnknownNameError
from seqbench.models.registry import (
    FULL,
    MODELS,
    ModelParams,
    all_models,
    get_model,
    register_model,
)


def test_the_first_models_are_registered() -> None:
    assert {"sasrec", "gru4rec", "pop"} <= set(all_models())


def test_unknown_model_names_the_closest_one() -> None:
    hint = "unknown model 'sasrek'; did you mean 'sasrec'"
    with pytest.raises(UnknownNameError, match=hint) as e:
        get_model("sasrek")
    assert {"sasrec", "gru4rec", "pop"} <= set(e.value.available)


def test_registering_a_name_twice_is_an_error() -> None:
    spec = get_model("sasrec")
    with pytest.raises(ValueError, match="'sasrec' is registered twice"):
        register_model("sasrec", params=spec.params, summary="again")(spec.cls)
    assert MODELS["sasrec"] is spec


def test_full_is_always_an_ablation() -> None:
    class NoParams(ModelParams):
        pass

    class Dummy:  # the decorator only records the class
        pass

    try:
        register_model("dummy-test-model", params=NoParams, summary="x", ablations={"a": "b"})(
            Dummy  # type: ignore[arg-type]
        )
        assert set(MODELS["dummy-test-model"].ablations) == {FULL, "a"}
    finally:
        MODELS.pop("dummy-test-model", None)
    for spec in all_models().values():
        assert FULL in spec.ablations
        spec.check_ablation(FULL, "test")
        with pytest.raises(ConfigError, match="did you mean 'full'"):
            spec.check_ablation("fulll", "test")


RECBOLE_DEFAULTS = {  # recbole/properties/model/{SASRec,GRU4Rec}.yaml, v1.2.0 (loss_type aside)
    "sasrec": {
        "n_layers": 2,
        "n_heads": 2,
        "hidden_size": 64,
        "inner_size": 256,
        "hidden_dropout_prob": 0.5,
        "attn_dropout_prob": 0.5,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
    },
    "gru4rec": {"embedding_size": 64, "hidden_size": 128, "num_layers": 1, "dropout_prob": 0.3},
    "pop": {},
}


@pytest.mark.parametrize("name", sorted(RECBOLE_DEFAULTS))
def test_defaults_are_recboles_and_every_parameter_is_described(name: str) -> None:
    spec = get_model(name)
    # a cell's parameters (seqbench's own late additions, e.g. attention, left out at default)
    assert spec.params().resolved() == RECBOLE_DEFAULTS[name]
    assert all(f.description for f in spec.params.model_fields.values())
    assert spec.summary and spec.reference.startswith("RecBole v1.2.0")
