from pathlib import Path

import pytest
import yaml

from textclf.config import SMALL_DATA_RULES, Config, load_config, to_dict, to_yaml
from textclf.errors import TextclfError

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_file_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert path.read_text().startswith("#"), "each config opens with a comment showing its command"
    assert "python train.py" in path.read_text().split("\n\n")[0]


def test_configs_exist():
    assert any(p.name == "imdb.yaml" for p in CONFIGS)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def test_the_defaults_are_the_imdb_recipe():
    """`python train.py` without a file (and an installed wheel, which has no configs/) trains configs/imdb.yaml."""
    path = CONFIGS[0].parent / "imdb.yaml"
    written, default = to_dict(load_config(path)), to_dict(load_config(None))
    for section in ("tokenizer", "vocab", "model", "pretrain", "train"):
        assert written[section] == default[section], section
    for key in yaml.safe_load(path.read_text())["data"]:
        assert written["data"][key] == default["data"][key], key
    assert written == default


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.name != "imdb.yaml"], ids=lambda p: p.name)
def test_other_config_files_only_override(path):
    """Each key such a file sets differs from the default: the recipe is written in one place. Except a rule
    (`SMALL_DATA_RULES`) beside the key it changes: a file's key turns the rule off unless the file sets it too."""
    default, written = _flat(to_dict(Config())), _flat(yaml.safe_load(path.read_text()))
    kept = {rule for key, rule in SMALL_DATA_RULES.items() if key in written}
    restated = [k for k, v in written.items() if default[k] == v and k not in kept]
    assert not restated, f"{path.name} restates defaults: {restated}"


def test_dotted_overrides_win_and_are_typed():
    cfg = load_config(CONFIGS[0], ["train.epochs=3", "model.bidirectional=false", "data.max_length=null"])
    assert cfg.train.epochs == 3 and cfg.model.bidirectional is False and cfg.data.max_length is None


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(TextclfError, match=r'unknown config key "train.epoch".*did you mean "train.epochs"'):
        load_config(None, ["train.epoch=3"])


def test_wrong_type_names_the_key():
    with pytest.raises(TextclfError, match=r'"train.lr" has the wrong type'):
        load_config(None, ["train.lr=fast"])


def test_bad_choice_lists_the_choices():
    with pytest.raises(TextclfError, match=r'"model.pooling" is "sum"; choose one of: last, max, mean, max_mean'):
        load_config(None, ["model.pooling=sum"])


def test_out_of_range_value():
    with pytest.raises(TextclfError, match=r'"model.dropout" must be in \[0, 1\)'):
        load_config(None, ["model.dropout=1.5"])


def test_malformed_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 3\n  lr: [0.1\n")
    with pytest.raises(TextclfError, match=r"not valid YAML at line \d+"):
        load_config(bad)


def test_unknown_key_in_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  hiden_size: 64\n")
    with pytest.raises(TextclfError, match=r'unknown config key "model.hiden_size".*"model.hidden_size"'):
        load_config(f)


def test_missing_config_file(tmp_path):
    with pytest.raises(TextclfError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_a_key_given_twice_in_a_file_is_refused(tmp_path):
    """YAML keeps the last of two `train:` blocks: the first's keys were dropped without a word."""
    f = tmp_path / "dup.yaml"
    f.write_text("train:\n  lr: 0.1\ntrain:\n  epochs: 3\n")
    with pytest.raises(TextclfError, match=r'not valid YAML at line 3, column 1: key "train" is given twice'):
        load_config(f)
    f.write_text("train:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(TextclfError, match=r'line 3, column 3: key "lr" is given twice'):
        load_config(f)


def test_a_folder_or_a_section_where_a_file_or_a_key_belongs(tmp_path, caplog):
    with pytest.raises(TextclfError, match="is a folder: pass a YAML file"):
        load_config(tmp_path)
    with pytest.raises(TextclfError, match=r'"train" is a section of the config, not a key'):
        load_config(None, ["train=3"])
    with pytest.raises(TextclfError, match=r'"train.patience" must be > 0, got 0'):
        load_config(None, ["train.patience=0"])  # stopped after epoch 1: "no better ... for 0 epochs"
    with caplog.at_level("INFO"):
        with pytest.raises(TextclfError, match="train.epochs"):
            load_config(None, ["train.epochs=-2"])
        assert "as set" not in caplog.text  # no note about min_steps before the error line
        cfg = load_config(None, ["train.lr=0.1", "train.lr=0.3"])
    assert cfg.train.lr == 0.3 and "train.lr is given twice (0.1, then 0.3): the last counts" in caplog.text


def test_override_without_equals():
    with pytest.raises(TextclfError, match="is not key=value"):
        load_config(None, ["train.epochs"])


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = load_config(CONFIGS[0], ["train.epochs=2"])
    f = tmp_path / "resolved.yaml"
    f.write_text(to_yaml(cfg))
    assert load_config(f) == cfg


def test_label_map_from_the_command_line_keeps_int_keys_and_nulls():
    cfg = load_config(None, ["data.label_map={1: negative, 3: null, 5: positive}"])
    assert cfg.data.label_map == {1: "negative", 3: None, 5: "positive"}


@pytest.mark.parametrize(("override", "message"), [
    ("data.label_map={1:negative}", r"maps every label to null.*a space after each colon"),
    ("data.label_map={1: [a, b]}", r'"data.label_map" maps 1 to'),
    ("data.encoding_errors=ignore", r"choose one of: strict, replace"),
    ("vocab.new_tokens=-1", r'"vocab.new_tokens" must be >= 0'),
    ("train.class_weights=inverse", r"choose one of: auto, balanced, none"),
    ("pretrain.lm_epochs=-1", r'"pretrain.lm_epochs" must be >= 0'),
    ("train.adversarial=-0.1", r'"train.adversarial" must be >= 0'),
    ("pretrain.lm_sample=0", r'"pretrain.lm_sample" must be in \(0, 1\]'),
    ("pretrain.lm_sample=1.5", r'"pretrain.lm_sample" must be in \(0, 1\]'),
    ("train.adversarial_fraction=0", r'"train.adversarial_fraction" must be in \(0, 1\]'),
    ("pretrain.lm_lr=0", r'"pretrain.lm_lr" must be > 0'),
])
def test_fine_tuning_and_pretraining_keys_are_checked(override, message):
    with pytest.raises(TextclfError, match=message):
        load_config(None, [override])


def test_amp_cpu_takes_auto_or_a_yaml_boolean(tmp_path):
    assert load_config(None).train.amp_cpu == "auto"
    for given, want in (("true", "true"), ("false", "false"), ("auto", "auto"), ("on", "true"), ("False", "false")):
        assert load_config(None, [f"train.amp_cpu={given}"]).train.amp_cpu == want
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  amp_cpu: yes\n")  # YAML 1.1 reads yes as a boolean
    assert load_config(f).train.amp_cpu == "true"
    with pytest.raises(TextclfError, match=r'"train.amp_cpu" is "fast"; choose one of: auto, true, false'):
        load_config(None, ["train.amp_cpu=fast"])
    with pytest.raises(TextclfError, match="train.amp=false and train.amp_cpu=true contradict each other"):
        load_config(None, ["train.amp=false", "train.amp_cpu=true"])


def test_an_epochs_the_user_set_is_not_raised_by_min_steps(tmp_path, caplog):
    """Issue 30 item 9: `train.epochs=1` on small data ran 18 epochs, train.min_steps raising it without a word."""
    caplog.set_level("INFO", logger="textclf.config")
    cfg = load_config(None, ["train.epochs=1"])
    assert cfg.train.epochs == 1 and cfg.train.min_steps == 0
    assert "train.epochs=1 as set: train.min_steps=1500 (the recipe's rule for small data) is off" in caplog.text
    yaml_file = tmp_path / "mine.yaml"
    yaml_file.write_text("train:\n  epochs: 2\npretrain:\n  epochs: 3\n")
    cfg = load_config(yaml_file)  # the user's own YAML counts too, for word2vec's passes as well
    assert (cfg.train.min_steps, cfg.pretrain.min_tokens) == (0, 0)
    assert load_config(CONFIGS[0], ["train.epochs=1"]).train.min_steps == 0  # the command line over the file


def test_an_adversarial_pass_the_user_set_runs_on_small_data_too(caplog):
    caplog.set_level("INFO", logger="textclf.config")
    assert load_config(None).train.adversarial_min_tokens == 100_000  # the recipe: none on small data
    cfg = load_config(None, ["train.adversarial=0.05"])
    assert (cfg.train.adversarial, cfg.train.adversarial_min_tokens) == (0.05, 0)
    assert "train.adversarial=0.05 as set: train.adversarial_min_tokens=100000 (the recipe's rule for small data) " \
           "is off" in caplog.text
    imdb = CONFIGS[0].parent / "imdb.yaml"
    assert load_config(imdb).train.adversarial_min_tokens == 100_000  # imdb.yaml sets both
    caplog.clear()
    assert load_config(CONFIGS[0].parent / "finetune.yaml").train.adversarial == 0.0
    assert "train.adversarial" not in caplog.text  # off as written: the rule has nothing to change, nothing said


def test_min_steps_stays_where_the_user_set_it_or_did_not_set_epochs(tmp_path):
    assert load_config(None).train.min_steps == 1500  # the recipe: small data trains more epochs
    assert load_config(None, ["train.lr=0.01"]).train.min_steps == 1500
    assert load_config(None, ["train.epochs=1", "train.min_steps=1500"]).train.min_steps == 1500  # both asked for
    assert load_config(CONFIGS[0]).train.min_steps == 1500  # imdb.yaml sets both
    finetune = CONFIGS[0].parent / "finetune.yaml"
    assert load_config(finetune).train.min_steps == 1500  # restated beside its epochs: 15
    assert load_config(finetune, ["train.epochs=3"]).train.min_steps == 0


def test_allowed_values_have_one_source():
    """Issue 32: the choices the code below the config acts on are that code's own tuples, not copies of them."""
    from textclf.config import CHOICES
    from textclf.data.tables import ENCODING_ERRORS
    from textclf.models.lstm import LSTM_IMPLS, POOLINGS, TYPES
    from textclf.text.tokenizer import KINDS
    from textclf.text.tokens import TRUNCATIONS

    assert CHOICES["tokenizer.kind"] == ("auto", *KINDS) and CHOICES["model.pooling"] is POOLINGS
    assert CHOICES["model.type"] is TYPES and CHOICES["train.lstm_impl"] is LSTM_IMPLS
    assert CHOICES["data.truncate"] is TRUNCATIONS and CHOICES["data.encoding_errors"] is ENCODING_ERRORS


def test_each_sections_rules_name_its_own_fields_and_every_rule_is_checked():
    """The range and choice rules live beside the fields they govern (a section's RULES): each names a field of its
    section, and `load_config` refuses a value against any of them."""
    from dataclasses import fields

    from textclf.config import POSITIVE, Config, TrainConfig, rules

    assert set(TrainConfig.RULES) <= {f.name for f in fields(TrainConfig)}
    assert rules()["train.lr"] == POSITIVE and "RULES" not in {f.name for f in fields(Config)}
    for key, rule in rules().items():
        bad = "nonsense" if isinstance(rule, tuple) else -1
        with pytest.raises(TextclfError, match=f'config key "{key}"'):
            load_config(None, [f"{key}={bad}"])


def test_merge_keys_load_and_an_unhashable_key_is_one_line(tmp_path):
    """The loader that refuses a key given twice must leave YAML's `<<:` merge keys to SafeLoader."""
    f = tmp_path / "merge.yaml"
    f.write_text("base: &b {lr: 0.01}\n".replace("base", "train") + "model: {<<: {hidden_size: 64}, dropout: 0.2}\n")
    cfg = load_config(f)
    assert cfg.train.lr == 0.01 and cfg.model.hidden_size == 64 and cfg.model.dropout == 0.2
    f.write_text("train:\n  ? [a, b]\n  : 1\n")
    with pytest.raises(TextclfError, match="not valid YAML"):
        load_config(f)
