"""Recipe files (helpers.recipe): read by TRL's parser, every key and value checked before anything is written."""
import re
from pathlib import Path

import pytest

from helpers.errors import CourseError
from helpers.recipe import load
from tests.conftest import ROOT, run_module

RECIPES = ROOT / "recipes"
#: what the GPU recipes need to be parsed here: no GPU (SFTConfig refuses bf16 / fp16 without one), no Hub
ON_THIS_CPU = {"icd10_lora_gpu.yaml": ["use_cpu=true", "model=embedded"],
               "icd10_qlora_t4.yaml": ["use_cpu=true", "fp16=false", "model=embedded"]}


def recipe_file(tmp_path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


GOOD = "profile: ci\nsplits: course\ncodes: 2\noutput_dir: {out}\n"


@pytest.mark.parametrize("name", sorted(p.name for p in RECIPES.glob("*.yaml")))
def test_every_shipped_recipe_parses_and_comments_each_value(name, tmp_path):
    recipe = load(RECIPES / name, ON_THIS_CPU.get(name, []), output_dir=str(tmp_path / "run"))
    assert recipe.run_dir == tmp_path / "run" and recipe.explicit["profile"] == recipe.profile.name
    lines = [line for line in (RECIPES / name).read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    uncommented = [line for line in lines if " # " not in line]
    assert not uncommented, f"{name}: values without a comment: {uncommented}"


def test_recipe_keys_lay_over_the_profile_and_sftconfig_fields_keep_trls_names(tmp_path):
    path = recipe_file(tmp_path, GOOD.format(out=tmp_path / "run") +
                       "lora_r: 4\nlora_top_layers: null\nlearning_rate: 5.0e-4\nlr_scheduler_type: cosine\n")
    recipe = load(path, ["num_train_epochs=2", "learning_rate=2e-4"])
    profile = recipe.profile
    assert (profile.name, profile.codes, profile.lora_r, profile.lora_top_layers) == ("ci", 2, 4, None)
    assert profile.lora_alpha == 64  # not given: the ci profile's
    # the command line wins over the file, as with TRL's own scripts
    assert recipe.sft_overrides["learning_rate"] == 2e-4 and recipe.sft_overrides["num_train_epochs"] == 2
    assert str(recipe.sft_overrides["lr_scheduler_type"].value) == "cosine"
    assert "per_device_train_batch_size" not in recipe.sft_overrides  # silent in the recipe: the profile's


@pytest.mark.parametrize("text, expected", [
    ("lerning_rate: 1.0e-3\n",
     "lerning_rate: not a recipe setting or an SFTConfig field (did you mean learning_rate?)"),
    ("learning_rate: fast\n", "learning_rate: takes a number, not 'fast'"),
    ("num_train_epochs: [1, 2]\n", "num_train_epochs: takes one value (a number), not a list"),
    ("per_device_train_batch_size: 2.5\n", "per_device_train_batch_size: takes a whole number, not 2.5"),
    ("lora_targets: mlp\n", "lora_targets: takes one of attention, all-linear, not 'mlp'"),
    ("lora_r: 0\n", "lora_r: must be 1 or more, not 0"),
    ("lora_dropout: 1.5\n", "lora_dropout: must be at least 0 and below 1, not 1.5"),
    ("trust_remote_code: true\n", "trust_remote_code: must stay false"),
    ("raw_data: [data/raw/icd10_complaints_raw.jsonl]\n", "raw_data: give either raw_data"),
    ("general_evals: [probe, hellaswag]\n", "general_evals: hellaswag: not one of probe"),
    ("epoch_eval: false\npatience: 2\n", "patience: early stopping needs epoch_eval: true"),
    ("model: ./no-such-model\n", "model: ./no-such-model: no such model folder"),
    ("bf16: true\nfp16: true\n", "bf16: "),
    ("mmlu_per_epoch: mmlu_everything\n", "mmlu_per_epoch: mmlu_everything: not one of mmlu_medical"),
])
def test_a_bad_key_or_value_is_one_line_naming_the_file_the_key_and_the_rule(tmp_path, text, expected):
    path = recipe_file(tmp_path, GOOD.format(out=tmp_path / "run") + text)
    with pytest.raises(CourseError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message
    assert not (tmp_path / "run").exists()


def test_files_and_folders_the_recipe_names_must_exist(tmp_path):
    missing = recipe_file(tmp_path, f"profile: ci\nraw_data: [nowhere.jsonl]\noutput_dir: {tmp_path / 'run'}\n")
    with pytest.raises(CourseError, match=r"raw_data: nowhere.jsonl: no such file"):
        load(missing)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.jsonl").write_text("")
    bare = recipe_file(tmp_path, f"profile: ci\nsplits: {tmp_path / 'splits'}\noutput_dir: {tmp_path / 'run'}\n")
    with pytest.raises(CourseError, match=r"splits: .* no val.jsonl, test.jsonl, report.json"):
        load(bare)
    no_output = recipe_file(tmp_path, "profile: ci\nsplits: course\n")
    with pytest.raises(CourseError, match=r"output_dir: required"):
        load(no_output)


def test_invalid_yaml_and_bad_overrides_are_named_too(tmp_path):
    path = recipe_file(tmp_path, "profile: ci\nsplits: [course\n")
    with pytest.raises(CourseError, match=rf"^{re.escape(str(path))}: line \d+: not valid YAML"):
        load(path)
    good = recipe_file(tmp_path, GOOD.format(out=tmp_path / "run"))
    with pytest.raises(CourseError, match=r"^command line: warmup_step: not a recipe setting .*did you mean"):
        load(good, ["warmup_step=3"])
    with pytest.raises(CourseError, match=r"^command line: 'epochs': overrides are written key=value"):
        load(good, ["epochs"])


def test_null_on_the_command_line_turns_a_setting_off_as_in_yaml(tmp_path):
    good = recipe_file(tmp_path, GOOD.format(out=tmp_path / "run") + "mmlu_per_epoch: mmlu_ci\n")
    assert load(good).profile.mmlu_per_epoch == "mmlu_ci"
    assert load(good, ["mmlu_per_epoch=null"]).profile.mmlu_per_epoch is None
    assert load(good, ["patience=null"]).profile.patience is None


def test_the_cli_refuses_a_bad_recipe_with_exit_2_and_writes_nothing(tmp_path):
    path = recipe_file(tmp_path, GOOD.format(out=tmp_path / "run") + "lora_alpha: many\n")
    done = run_module("helpers.train", "--config", str(path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {path}: lora_alpha: takes a whole number, not 'many'"]
    assert not (tmp_path / "run").exists()


def test_a_fresh_run_never_reuses_a_folder_and_a_resume_keeps_its_recipe(tmp_path):
    from helpers.atomic import write_json
    from helpers.train import RunDir, check_run_dir

    path = recipe_file(tmp_path, GOOD.format(out=tmp_path / "run"))
    recipe = load(path)
    run = RunDir(recipe.run_dir)
    check_run_dir(run, recipe, resume=False)  # nothing there yet
    write_json(run.recipe, recipe.resolved())
    with pytest.raises(CourseError, match=r"holds an earlier run \(recipe.json\): pass --resume"):
        check_run_dir(run, recipe, resume=False)
    check_run_dir(run, recipe, resume=True)
    changed = load(path, ["lora_r=4"])
    with pytest.raises(CourseError, match=r"lora_r: the run being resumed has None, this recipe 4"):
        check_run_dir(run, changed, resume=True)
