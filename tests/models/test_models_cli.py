"""`seqbench models` through Typer's test runner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from seqbench.cli.main import app

runner = CliRunner()


def test_lists_every_model_with_parameters_and_defaults() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    names = ["bert4rec", "bimamba4rec", "bimambaformer4rec", "echomamba4rec", "fmlprec",
             "gru4rec", "m2rec", "m2rec_code", "mamba4rec", "narm", "pop", "sasrec"]  # fmt: skip
    assert [row.split(":")[0] for row in text.splitlines() if row and row[0] != " "] == names
    sasrec = text[text.index("sasrec:") :]
    line = next(row for row in sasrec.splitlines() if "hidden_dropout_prob" in row)
    assert line.split()[1:3] == ["float", "0.5"]
    assert "ablations: full" in text and "causal, outputs every slot" in text
    assert "not trained" in text  # pop
    m2rec = text[text.index("m2rec:") : text.index("m2rec_code:")]
    assert "reads item text (full, no_affm, no_gate)" in " ".join(m2rec.split())
    assert "causal: no_affm; non-causal: full, no_llm, no_gate" in " ".join(m2rec.split())
    echo = text[text.index("echomamba4rec:") : text.index("fmlprec:")]
    assert "non-causal (sees later slots)" in echo
    assert "no_filter (no learnable FFT filter" in echo and "forward_only" in echo
    assert "no_glu" in echo and "flip" in echo and "recbole_init" in echo


def test_json_for_one_model() -> None:
    result = runner.invoke(app, ["models", "sasrec", "--json"])
    assert result.exit_code == 0, result.output
    [model] = json.loads(result.stdout)
    assert model["name"] == "sasrec" and model["all_positions"]
    assert model["causal"] == {"full": True}
    params = {p["name"]: p for p in model["params"]}
    assert params["n_heads"]["default"] == 2 and params["n_heads"]["type"] == "int"
    assert params["hidden_act"]["type"] == "gelu|relu|swish|tanh|sigmoid"
    assert params["attn_dropout_prob"]["constraints"] == ["≥ 0.0", "< 1.0"]
    assert params["layer_norm_eps"]["default"] == 1e-12
    assert all(p["description"] for p in params.values())
    assert model["ablations"] == {"full": "the model as published"}


def test_pop_has_no_parameters() -> None:
    result = runner.invoke(app, ["models", "pop"])
    assert result.exit_code == 0, result.output
    assert "parameters: none" in result.stdout
    assert "sasrec" not in result.stdout


def test_unknown_model_is_one_line_with_a_hint() -> None:
    result = runner.invoke(app, ["models", "gru4reck"])
    assert result.exit_code == 1
    assert "unknown model 'gru4reck'; did you mean 'gru4rec'?" in " ".join(result.stderr.split())
    assert "Traceback" not in result.output
