import pytest
from typer.testing import CliRunner

from slimlab.cli import app
from slimlab.config import load_experiment, parse_experiment
from slimlab.errors import ConfigError, DataFileError

VARIANTS_DENSE_Q = 'name = "x"\n[[variants]]\nname = "dense"\n[[variants]]\nname = "q"\n'
BASE = {"name": "x", "variants": [{"name": "dense"}]}


def with_variant(treatment):
    return {**BASE, "variants": [{"name": "dense"}, {"name": "v", "treatments": [treatment]}]}


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({**BASE, "train": {"lr": -1}}, r"`train\.lr`: Input should be greater than 0; got -1"),
        ({**BASE, "train": {"epochz": 3}}, r"unknown key `train\.epochz`; known keys: epochs"),
        ({**BASE, "trian": {}}, r"unknown key `trian`"),
        ({**BASE, "train": {"epochs": "many"}}, r"`train\.epochs`: Input should be a valid integer"),
        (
            {**BASE, "data": {"name": "cifar"}},
            r"unknown dataset 'cifar'; known: adult, click_log, clicks, csv, digits, "
            r".*images, mnist1d, mnist1d_groups, .*npz",
        ),
        ({**BASE, "model": {"name": "resnet"}}, r"unknown model 'resnet'; known: cnn1d, dlrm, mlp"),
        ({**BASE, "model": {"name": "mlp", "hiden": [3]}}, r"`hiden` is not a parameter of model 'mlp'"),
        (with_variant({"kind": "foo"}), r"unknown treatment 'foo'; known: dynamic_int8, .*magnitude_prune"),
        (
            with_variant({"kind": "magnitude_prune", "sparsity": 1.5}),
            r"sparsity`: Input should be less than 1",
        ),
        (with_variant({"kind": "magnitude_prune"}), r"sparsity`: Field required"),
        (with_variant({"kind": "dynamic_int8", "version": 9}), r"version` is 9"),
        (
            {**BASE, "evaluate": {"baseline": "nope"}},
            r"`evaluate\.baseline` is 'nope', which is not a variant",
        ),
        ({"variants": [{"name": "dense"}]}, r"missing required key `name`"),
        ({**BASE, "variants": [{"name": "dense"}, {"name": "dense"}]}, r"repeated: dense"),
        ({**BASE, "bench": {"backends": ["tvm"]}}, r"`bench\.backends\[0\]`"),
        ({**BASE, "evaluate": {"seeds": 0}}, r"`evaluate\.seeds`: must be at least 1"),
    ],
)
def test_bad_config_names_the_field(raw, match):
    with pytest.raises(ConfigError, match=match) as info:
        parse_experiment(raw, "f.toml")
    assert "\n" not in str(info.value)


def test_good_config_resolves_defaults_and_round_trips():
    config = parse_experiment(with_variant({"kind": "magnitude_prune", "sparsity": 0.5}))
    resolved = config.to_dict()
    assert resolved["train"]["lr"] == 0.01
    assert resolved["variants"][1]["treatments"][0] == {
        "kind": "magnitude_prune",
        "version": 1,
        "sparsity": 0.5,
        "scope": "global",
        "finetune_epochs": 0,
        "finetune_lr": None,
    }
    assert parse_experiment(resolved).to_dict() == resolved


def test_quick_scales_down():
    config = parse_experiment(
        {
            **with_variant({"kind": "magnitude_prune", "sparsity": 0.5, "finetune_epochs": 9}),
            "evaluate": {"seeds": 5},
        }
    )
    quick = config.quick()
    assert quick.evaluate.seed_list == [0, 1]
    assert quick.train.epochs == 3
    assert quick.data[0].num_samples == 1000
    assert quick.variants[1].treatments[0].finetune_epochs == 1


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(DataFileError, match="experiment file not found"):
        load_experiment(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML"):
        load_experiment(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataFileError, match="not a text file"):
        load_experiment(binary)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "experiment file not found"),
        ('name = "x"\n[[variants]]\nname = "dense"\n[train]\nepochz = 1\n', "unknown key `train.epochz`"),
        ('name = "x"\n[[variants]]\nname = "dense"\n[train]\nlr = "fast"\n', "`train.lr`: Input should be"),
        (
            'name = "x"\n[data]\nname = "imagenet"\n[[variants]]\nname = "dense"\n',
            "unknown dataset 'imagenet'",
        ),
        (
            VARIANTS_DENSE_Q + 'treatments = [{kind = "int4"}]\n',
            "unknown treatment 'int4'",
        ),
        ("name = [\n", "invalid TOML"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, content, match):
    path = tmp_path / "exp.toml"
    if content is not None:
        path.write_text(content)
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert match in result.stderr.replace("\n", " ") or match in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 or match in result.stderr.replace("\n", " ")


def test_cli_report_on_a_missing_run_dir(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "slimlab.db: not found" in result.stderr.replace("\n", "")
