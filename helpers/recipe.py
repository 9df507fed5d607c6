"""Recipes: one YAML file that says what to fine-tune, on which data, how, and where the run goes.

    python -m helpers.train --config recipes/icd10_lora_cpu.yaml [--resume] [--output-dir D] [key=value ...]

A recipe starts from one of the course's profiles (``helpers.config``) and
changes what it names: the model, the data (raw files to curate, or curated
splits), LoRA, what is evaluated, and any ``SFTConfig`` field under TRL's own
name. It is read by ``trl.TrlParser``, the parser behind TRL's own
``trl sft --config recipe.yaml``, so a key TRL documents is a key a recipe
takes. Only the keys a recipe gives change the profile's recipe; the rest
stays as the course measured it.

TrlParser makes each YAML value the default of an argparse option, and
argparse converts only string defaults: a list where a number belongs, or an
unknown key, would pass it or surface as a traceback. :func:`load` therefore
checks every key and value first, with the same converter argparse applies to
the command line, and reports the first problem as one line naming the file,
the key and the rule, before anything is written.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from helpers.config import EMBEDDED_MODEL, PROFILES, Profile
from helpers.errors import CourseError
from helpers.paths import show

#: ``splits: course`` names the course's own curated splits (chapter 1's, curated once under outputs/data)
COURSE_SPLITS = "course"
#: the files a folder of curated splits holds (what ``python -m helpers.curate`` writes)
SPLIT_FILES = ("train.jsonl", "val.jsonl", "test.jsonl", "report.json")


@dataclass
class DataArguments:
    """What the recipe starts from and trains on."""

    profile: Literal[tuple(PROFILES)] = field(default="cpu", metadata={"help": "course profile to start from"})
    model: str = field(default="embedded", metadata={"help": "'embedded', a Hub id or a local model folder"})
    raw_data: list[str] = field(default_factory=list, metadata={"help": "raw instruction/response files to curate"})
    train_only_data: list[str] = field(default_factory=list,
                                       metadata={"help": "later raw batches, curated into train only"})
    splits: str | None = field(default=None, metadata={"help": "folder of curated splits, or 'course'"})
    codes: int | None = field(default=None, metadata={"help": "train and test on this many codes (null: all)"})
    curate_seed: int = field(default=0, metadata={"help": "seed of the curation's split"})
    logging_dir: str | None = field(default=None,
                                    metadata={"help": "TensorBoard event files (default: <output_dir>/tensorboard)"})


@dataclass
class LoraArguments:
    """The adapter, named as ``helpers.config.Profile`` names it."""

    lora_r: int | None = field(default=None, metadata={"help": "LoRA rank"})
    lora_alpha: int | None = field(default=None, metadata={"help": "LoRA scale numerator (alpha / r)"})
    lora_dropout: float | None = field(default=None, metadata={"help": "dropout on LoRA's input"})
    lora_targets: Literal["attention", "all-linear"] | None = field(default=None,
                                                                     metadata={"help": "which projections"})
    lora_top_layers: int | None = field(default=None, metadata={"help": "adapt the last N blocks (null: all)"})
    quantize_base: Literal["4bit", "8bit"] | None = field(default=None,
                                                          metadata={"help": "QLoRA: the frozen base in 4 or 8 bits"})
    bf16_autocast: Literal["auto", "off"] | None = field(default=None,
                                                         metadata={"help": "CPU only: bfloat16 matrix products"})


@dataclass
class EvalArguments:
    """What is measured during and after training."""

    epoch_eval: bool = field(default=True, metadata={"help": "val exact match and general probe each epoch"})
    patience: int | None = field(default=None, metadata={"help": "early stopping on val exact match (epochs)"})
    eval_batch_size: int | None = field(default=None, metadata={"help": "rows per generation batch"})
    test_limit: int | None = field(default=None, metadata={"help": "score this many test rows (null: all)"})
    probe_limit: int | None = field(default=None, metadata={"help": "general-probe items (null: all)"})
    general_evals: list[str] = field(default_factory=lambda: ["probe"],
                                     metadata={"help": "general benchmarks after training (helpers.train)"})
    mmlu_per_epoch: str | None = field(
        default=None, metadata={"help": "MMLU subset scored before training and after each epoch (null: off)"})


COURSE_ARGUMENTS = (DataArguments, LoraArguments, EvalArguments)
#: recipe keys that replace a field of the profile under the same name (``model`` replaces ``model_id``)
PROFILE_KEYS = {"codes", "lora_r", "lora_alpha", "lora_dropout", "lora_targets", "lora_top_layers", "quantize_base",
                "bf16_autocast", "patience", "eval_batch_size", "test_limit", "probe_limit", "mmlu_per_epoch"}
#: what TrlParser itself reads from a recipe besides the dataclasses' fields: environment variables to set
TRL_KEYS = {"env"}
POSITIVE = {"codes", "lora_r", "lora_alpha", "lora_top_layers", "patience", "eval_batch_size", "test_limit",
            "probe_limit"}
#: TRL's numbers that a run cannot take at zero or below (transformers would train on or divide by them regardless)
ABOVE_ZERO = {"num_train_epochs", "learning_rate", "per_device_train_batch_size", "per_device_eval_batch_size",
              "gradient_accumulation_steps"}


@dataclass
class Recipe:
    """A checked recipe: where it came from, what it set, and the profile and SFT settings it resolves to."""

    path: Path
    explicit: dict[str, Any]  # every key the file or the command line set, converted
    data: DataArguments
    lora: LoraArguments
    evals: EvalArguments
    sft: Any  # trl.SFTConfig as parsed (TRL's defaults where the recipe is silent)
    profile: Profile  # the starting profile with the recipe's changes

    @property
    def run_dir(self) -> Path:
        return Path(self.sft.output_dir)

    @property
    def sft_overrides(self) -> dict[str, Any]:
        """The SFTConfig fields the recipe set, to lay over the profile's (``helpers.training.sft_config``)."""
        sft_fields = {f.name for f in dataclasses.fields(self.sft)}
        return {key: getattr(self.sft, key) for key in self.explicit if key in sft_fields and key != "output_dir"}

    def splits_dir(self) -> Path | None:
        """The curated splits the recipe names (None: its raw files are curated into the run folder)."""
        if self.data.splits is None:
            return None
        if self.data.splits == COURSE_SPLITS:
            from helpers.paths import SPLITS_DIR

            return SPLITS_DIR
        return Path(self.data.splits)

    def resolved(self) -> dict[str, Any]:
        """The recipe as JSON: the keys it set and the profile they resolve to (the trainer's full SFTConfig is
        recorded once the trainer exists: ``helpers.train``)."""
        return {"recipe": show(self.path), "set": jsonable(self.explicit), "profile": self.profile.describe(),
                "data": jsonable(dataclasses.asdict(self.data)), "lora": dataclasses.asdict(self.lora),
                "evaluation": dataclasses.asdict(self.evals)}


def jsonable(value):
    """Paths as :func:`helpers.paths.show` writes them, enums as their values: nothing absolute is stored."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, str) and Path(value).is_absolute():
        return show(value)
    if hasattr(value, "value") and not isinstance(value, (int, float, str, bool)):
        return value.value
    return json.loads(json.dumps(value, default=str))


class _Parser:
    """``trl.TrlParser`` over the course's dataclasses and ``SFTConfig``, with its options looked up by key."""

    def __init__(self):
        from trl import SFTConfig, TrlParser

        class Parser(TrlParser):
            def error(self, message):  # argparse's own failures as one line too, never a usage page and exit
                raise CourseError(message)

        self.classes = (*COURSE_ARGUMENTS, SFTConfig)
        self.parser = Parser(self.classes)
        self.actions = {}
        for action in self.parser._actions:  # a true-by-default flag also has a --no_<name> twin: keep the first
            if action.dest != "help":
                self.actions.setdefault(action.dest, action)
        self.hints = {f.name: typing.get_type_hints(cls)[f.name]
                      for cls in self.classes for f in dataclasses.fields(cls)}

    def allows(self, key: str, kind: type) -> bool:
        """Whether the field's type hint admits ``kind`` (None, list, dict) at any level of a union."""
        hint = self.hints[key]
        union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        options = typing.get_args(hint) if union else (hint,)
        return any(option is kind or typing.get_origin(option) is kind for option in options)

    def check(self, key: str, value) -> Any:
        """``value`` converted as the command line would convert it, or a CourseError saying ``key: rule``."""
        if key not in self.actions:
            near = difflib.get_close_matches(key, [*self.actions, *TRL_KEYS], n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise CourseError(f"{key}: not a recipe setting or an SFTConfig field{hint}")
        action = self.actions[key]
        if value is None:
            if self.allows(key, type(None)) or action.default is None:
                return None
            raise CourseError(f"{key}: cannot be null")
        if isinstance(value, dict):
            if self.allows(key, dict):
                return value
            raise CourseError(f"{key}: takes {_kind(action)}, not a mapping")
        if isinstance(value, list):
            if action.nargs in ("+", "*") or self.allows(key, list):
                return [self._one(key, action, item) for item in value]
            raise CourseError(f"{key}: takes one value ({_kind(action)}), not a list")
        one = self._one(key, action, value)
        return [one] if action.nargs in ("+", "*") else one

    def _one(self, key: str, action, value):
        if isinstance(value, (dict, list)):
            raise CourseError(f"{key}: takes {_kind(action)}, not {value!r}")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        try:
            converted = action.type(text) if action.type else text
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            raise CourseError(f"{key}: takes {_kind(action)}, not {value!r}") from None
        if action.choices is not None and converted not in action.choices:
            raise CourseError(f"{key}: takes {_kind(action)}, not {value!r}")
        return converted


def _kind(action) -> str:
    if action.choices is not None:
        return "one of " + ", ".join(str(getattr(c, "value", c)) for c in action.choices)
    name = getattr(action.type, "__name__", "")
    return {"int": "a whole number", "float": "a number", "string_to_bool": "true or false"}.get(name, "a string")


#: a recipe is a page of settings; a file larger than this is not one (and YAML would read it all into memory)
RECIPE_MAX_BYTES = 1_000_000


def read_yaml(path: Path) -> dict:
    """The recipe file as a mapping, or a CourseError naming the file's line where YAML stops making sense."""
    import yaml

    path = Path(path)
    if path.is_dir():
        raise CourseError(f"{path}: is a directory, expected a recipe (.yaml)")
    try:
        if path.stat().st_size > RECIPE_MAX_BYTES:
            raise CourseError(f"{path}: larger than a recipe can be ({RECIPE_MAX_BYTES // 1_000_000} MB)")
        data = path.read_bytes()
    except FileNotFoundError:
        raise CourseError(f"{path}: no such file") from None
    except OSError as exc:
        raise CourseError(f"{path}: cannot be read ({exc.strerror})") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CourseError(f"{path}: UTF-16 text; a recipe is read as UTF-8 (save the file as UTF-8)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CourseError(f"{path}: not valid UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise CourseError(f"{path}: the recipe is empty (it needs at least profile, the data and output_dir)")
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CourseError(f"{path}: {where}: not valid YAML ({problem})") from None
    except RecursionError:
        raise CourseError(f"{path}: not valid YAML (nested too deeply)") from None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise CourseError(f"{path}: a recipe is a mapping of keys to values, not a {type(config).__name__}")
    return config


def parse_overrides(items: list[str]) -> list[tuple[str, str]]:
    """``key=value`` words from the command line, in order."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CourseError(f"command line: {item!r}: overrides are written key=value")
        pairs.append((key.strip().replace("-", "_"), value))
    return pairs


def load(path: Path | str, overrides: list[str] = (), output_dir: str | None = None) -> Recipe:
    """Read, check and resolve a recipe; every problem is a CourseError ``<file>: <key>: <rule>`` (nothing written)."""
    path = Path(path)
    config = read_yaml(path)
    parser = _Parser()
    explicit: dict[str, Any] = {}
    for key, value in config.items():
        if key in TRL_KEYS:
            if not isinstance(value, dict):
                raise CourseError(f"{path}: {key}: a mapping of environment variables to values")
            continue
        try:
            explicit[str(key)] = parser.check(str(key), value)
        except CourseError as exc:
            raise CourseError(f"{path}: {exc}") from None
    argv = ["--config", str(path)]
    pairs = parse_overrides(list(overrides))
    if output_dir is not None:
        pairs.append(("output_dir", output_dir))
    for key, value in pairs:
        try:
            action = parser.actions.get(key)
            if value == "null" and action is not None and action.default is None:
                # as in YAML, key=null sets the field to None, its default: nothing to pass on to the parser
                explicit[key] = parser.check(key, None)
                continue
            words = value.split(",") if action is not None and action.nargs in ("+", "*") else [value]
            explicit[key] = parser.check(key, words if len(words) > 1 else words[0])
        except CourseError as exc:
            raise CourseError(f"command line: {exc}") from None
        argv += [f"--{key}", *words]
    _check_values(path, explicit)
    # Where the recipe is silent, the device and precision are the profile's (as helpers.training.sft_config sets
    # them), not TRL's defaults: those ask for bfloat16 on a GPU, which SFTConfig refuses on a machine without one.
    start = PROFILES[explicit.get("profile", DataArguments.profile)]
    parser.parser.set_defaults(use_cpu=start.device == "cpu", bf16=start.dtype == "bfloat16",
                               fp16=start.dtype == "float16")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notices about fields the recipe does not even set
            data, lora, evals, sft = parser.parser.parse_args_and_config(argv)
    except CourseError as exc:
        raise CourseError(f"{path}: {exc}") from None
    except ValueError as exc:  # SFTConfig's own consistency checks (bf16 with fp16, an unknown optimizer ...)
        message = str(exc).splitlines()[0]
        key = next((k for k in explicit if re.search(rf"\b{re.escape(k)}\b", message)), "SFTConfig")
        raise CourseError(f"{path}: {key}: {message}") from None
    # A list field given one value on the command line or in YAML comes back as that value alone.
    for args in (data, evals):
        for f in dataclasses.fields(args):
            if isinstance(getattr(args, f.name), str) and typing.get_origin(f.type) is list:
                setattr(args, f.name, [getattr(args, f.name)])
    profile = _profile(data, explicit)
    return Recipe(path=path, explicit=explicit, data=data, lora=lora, evals=evals, sft=sft, profile=profile)


def _profile(data: DataArguments, explicit: dict) -> Profile:
    """The starting profile with the recipe's profile-level keys laid over it."""
    profile = PROFILES[data.profile]
    changes = {key: explicit[key] for key in PROFILE_KEYS if key in explicit}
    if "model" in explicit:
        changes["model_id"] = EMBEDDED_MODEL if data.model == "embedded" else data.model
    return dataclasses.replace(profile, **changes)


def _check_values(path: Path, explicit: dict) -> None:
    """The rules a type cannot say: files that exist, numbers above zero, settings that need each other."""
    from helpers.train import GENERAL_EVALS

    def fail(key: str, rule: str):
        raise CourseError(f"{path}: {key}: {rule}")

    for key in POSITIVE & explicit.keys():
        if explicit[key] is not None and explicit[key] < 1:
            fail(key, f"must be 1 or more, not {explicit[key]}")
    for key in ABOVE_ZERO & explicit.keys():
        if explicit[key] is not None and explicit[key] <= 0:
            fail(key, f"must be above 0, not {explicit[key]}")
    dropout = explicit.get("lora_dropout")
    if dropout is not None and not 0 <= dropout < 1:
        fail("lora_dropout", f"must be at least 0 and below 1, not {dropout}")
    if not explicit.get("output_dir"):
        fail("output_dir", "required: the run's own folder (checkpoints, adapter, merged model, run.json)")
    if explicit.get("trust_remote_code"):
        fail("trust_remote_code", "must stay false: the course never runs code shipped with a model")
    raw, splits = explicit.get("raw_data") or [], explicit.get("splits")
    if bool(raw) == bool(splits):
        fail("raw_data" if raw else "splits", "give either raw_data (files to curate) or splits (curated), not "
             + ("both" if raw else "neither"))
    if explicit.get("train_only_data") and not raw:
        fail("train_only_data", "needs raw_data: a train-only batch is curated together with the main files")
    for key in ("raw_data", "train_only_data"):
        for name in explicit.get(key) or []:
            if not Path(name).is_file():
                fail(key, f"{name}: no such file")
    if splits and splits != COURSE_SPLITS:
        missing = [name for name in SPLIT_FILES if not (Path(splits) / name).is_file()]
        if missing:
            fail("splits", f"{splits}: no {', '.join(missing)} (write them with python -m helpers.curate, "
                 f"or give raw_data)")
    from helpers.mmlu import SUBSETS

    subset = explicit.get("mmlu_per_epoch")
    if subset is not None and subset not in SUBSETS:
        fail("mmlu_per_epoch", f"{subset}: not one of {', '.join(SUBSETS)} (or null: off)")
    unknown = [name for name in explicit.get("general_evals") or [] if name not in GENERAL_EVALS]
    if unknown:
        fail("general_evals", f"{unknown[0]}: not one of {', '.join(GENERAL_EVALS)}")
    if explicit.get("patience") and explicit.get("epoch_eval") is False:
        fail("patience", "early stopping needs epoch_eval: true (it stops on val exact match)")
    model = explicit.get("model")
    if model is not None and model != "embedded":
        problem = _model_problem(model)
        if problem:
            fail("model", problem)


def _model_problem(model: str) -> str | None:
    """Why ``model`` cannot be loaded here, found before anything is written (None when it can)."""
    import os

    from helpers.models import _looks_local

    if _looks_local(model):
        if not Path(model).is_dir():
            return f"{model}: no such model folder"
        if not (Path(model) / "config.json").is_file():
            return f"{model}: a model folder holds config.json"
        return None
    from huggingface_hub import constants, try_to_load_from_cache

    cached = try_to_load_from_cache(model, "config.json")
    if isinstance(cached, str) or not (constants.HF_HUB_OFFLINE or os.environ.get("TRANSFORMERS_OFFLINE") == "1"):
        return None
    return f"{model}: not in the local Hugging Face cache, and the Hub is offline (HF_HUB_OFFLINE)"
