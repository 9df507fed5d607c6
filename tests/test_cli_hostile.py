"""The course's commands against hostile input: one line, a non-zero exit, nothing written, inputs untouched.

One table of cases over ``helpers.curate``, ``helpers.evaluate``,
``helpers.profile_run``, ``helpers.train`` and ``helpers.serve``. For each case: the exit code is 2 (0 where the input
is valid); on a refusal stderr is exactly one line, ``error: ...``, naming the
file, field or rule; no output has "Traceback" in it; the output folder is as
it was; the input files keep their bytes.

Decisions the table pins down:

* line ends: LF, CRLF and CR-only files all work, for both commands that read
  data (``helpers.jsonl`` reads a file whose lines end in CR alone by CR);
* a UTF-8 byte-order mark works; UTF-16 is refused with the fix;
* curation turns a bad row into a reject and goes on, but refuses a file with no
  row, no parsable row, or no row kept; evaluation refuses any bad row;
* numbers: 0, -1, "abc" and values past a stated bound are refused; a huge
  ``--limit`` is valid (all rows).

Most cases run in this process through ``main()`` and ``run_cli``. A full
disk is simulated with ``RLIMIT_FSIZE`` and SIGXFSZ ignored, so that a write
past the limit fails with EFBIG, "File too large", as a full disk fails with
ENOSPC: for curation in a real ``python -m`` subprocess (set in
``preexec_fn``), for the other two in this process around ``main()`` (set and
then restored; their subprocess would spend most of its time loading
libraries). These also run as real subprocesses: unreadable and unwritable
paths, which need permission bits that bind (root
passes any of them through its CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
capabilities, so a child of root drops both from its bounding set in
``preexec_fn`` and is then refused like any user); and one argument typo of
profile_run.
"""
from __future__ import annotations

import hashlib
import contextlib
import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers.errors import run_cli
from helpers.paths import BASE_MODEL_DIR, DATA
from tests.conftest import ROOT

DEMO = (DATA / "examples" / "defects_demo.jsonl").read_bytes()  # 16 rows: 3 kept, 13 rejected
PHONE = "415-555-0132"
ROWS = [
    {"instruction": f"My lower back has been aching since yesterday. Call me back at {PHONE}.",
     "response": "DIAGNOSIS_CODE: M54.50"},
    {"instruction": "I keep coughing day and night.", "response": "DIAGNOSIS_CODE: R05.9"},
]
JSONL = "".join(json.dumps(r) + "\n" for r in ROWS).encode()
NESTED = b"[" * 100_000 + b"]" * 100_000 + b"\n"
TEN_MB = json.dumps({"instruction": "a" * 10_000_000, "response": "DIAGNOSIS_CODE: R05.9"}).encode() + b"\n"


def model_like(folder: Path, weights: bytes = b"\0garbage, not safetensors" * 40) -> Path:
    """A model folder with the base's config and tokenizer, and ``weights`` as its model.safetensors."""
    folder.mkdir()
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 "chat_template.jinja"):
        shutil.copy(BASE_MODEL_DIR / name, folder / name)
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def adapter_like(folder: Path, config, weights: bytes = b"\0garbage" * 40) -> Path:
    folder.mkdir()
    (folder / "adapter_config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    (folder / "adapter_model.safetensors").write_bytes(weights)
    return folder


@dataclass
class Case:
    """One hostile input: ``make(d)`` writes its files under ``d/in`` and returns the command's arguments."""
    id: str
    cli: str  # curate, evaluate, profile_run, train or serve
    make: Callable[[Path], list[str]]
    error: str | None  # what the one-line error must contain; None: the input is valid, exit 0
    # main (in this process), module (python -m), perms (python -m where permission bits bind, root included)
    how: str = "main"
    small_disk: int | None = None  # no file may grow past this many bytes (a full disk)
    env: dict = field(default_factory=dict)
    check: Callable[[Path], None] | None = None  # more checks of a valid run's outputs
    private: str | None = None  # a file under in/ that no one may read (a perms case)


def write(d: Path, name: str, data: bytes | str) -> str:
    path = d / "in" / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def curate(data: bytes | str, *extra: str, name: str = "rows.jsonl"):
    return lambda d: [write(d, name, data), "--out", str(d / "out" / "curated"), *extra]


def evaluate(data: bytes | str, *extra: str, model: Path | None = None):
    return lambda d: ["--model", str(model or BASE_MODEL_DIR), "--data", write(d, "rows.jsonl", data),
                      "--predictions", str(d / "out" / "preds.jsonl"), *extra]


def profile_run(*extra: str):
    return lambda d: [*extra, "--out", str(d / "out" / "run.json")] if "--out" not in extra else list(extra)


GOOD_RECIPE = "profile: ci\nsplits: course\ncodes: 2\n"


def train(data: bytes | str, *extra: str):
    """``helpers.train`` on a recipe file; the run's folder goes under out/, which must stay empty on a refusal."""
    return lambda d: ["--config", write(d, "recipe.yaml", data), "--output-dir", str(d / "out" / "run"), *extra]


def serve(model: Callable[[Path], Path] | None = None, *extra: str):
    return lambda d: ["--model", str(model(d) if model else BASE_MODEL_DIR), *extra]


def folder(path: Path) -> Path:
    path.mkdir()
    return path


def curated_ok(d: Path, rows: int = 16, not_utf8: int = 0) -> None:
    report = json.loads((d / "out" / "curated" / "report.json").read_text())
    assert report["input_rows"] == rows and report["kept"] == 3, report
    assert report["by_reason"].get("not_utf8", 0) == not_utf8


def scored_and_scrubbed(d: Path) -> None:
    text = (d / "out" / "preds.jsonl").read_text()
    assert text.count("\n") >= 1 and PHONE not in text and "[PHONE]" in text


def lines_as(ending: bytes, data: bytes = DEMO) -> bytes:
    return data.replace(b"\n", ending)


CASES = [
    # --- helpers.curate ---------------------------------------------------------------------------
    Case("curate-empty-file", "curate", curate(b""), "rows.jsonl: no rows (the file is empty)"),
    Case("curate-blank-lines-only", "curate", curate(b"\n  \n\t\n"), "rows.jsonl: no rows"),
    Case("curate-binary-garbage", "curate", curate(bytes(range(256)) * 64), "rows.jsonl: no parsable JSON row"),
    Case("curate-utf16", "curate", curate(JSONL.decode().encode("utf-16")), "rows.jsonl: UTF-16 text"),
    Case("curate-invalid-utf8-only", "curate", curate(b'{"instruction": "caf\xe9", "response": "DIAGNOSIS_CODE: R42"}'),
         "rows.jsonl: no parsable JSON row (line 1: not valid UTF-8 text)"),
    Case("curate-invalid-utf8-one-line-is-a-reject", "curate",
         curate(DEMO + b'{"instruction": "caf\xe9", "response": "DIAGNOSIS_CODE: R42"}\n'), None,
         check=lambda d: curated_ok(d, rows=17, not_utf8=1)),
    Case("curate-utf8-bom", "curate", curate(b"\xef\xbb\xbf" + DEMO), None, check=curated_ok),
    Case("curate-crlf", "curate", curate(lines_as(b"\r\n")), None, check=curated_ok),
    Case("curate-cr-only", "curate", curate(lines_as(b"\r")), None, check=curated_ok),
    Case("curate-nested-1e5", "curate", curate(NESTED), "no parsable JSON row (line 1: not valid JSON)"),
    Case("curate-10mb-line", "curate", curate(TEN_MB), "line 1: longer than 100,000 characters"),
    Case("curate-wrong-types", "curate", curate('{"instruction": 5, "response": ["R42"]}\n'),
         "no row was kept (1 rejected, the first at rows.jsonl:1 as non_string_instruction)"),
    Case("curate-missing-field", "curate", curate('{"instruction": "dizzy"}\n'), "as missing_response"),
    Case("curate-array-of-numbers", "curate", curate("[1, 2, 3]\n", name="rows.json"), "as not_an_object"),
    Case("curate-unknown-flag", "curate", curate(DEMO, "--frobnicate"), "unrecognized arguments: --frobnicate"),
    Case("curate-seed-abc", "curate", curate(DEMO, "--seed", "abc"), "argument --seed: must be a whole number"),
    Case("curate-seed-minus-1", "curate", curate(DEMO, "--seed", "-1"), "--seed: must be a whole number from 0"),
    Case("curate-seed-huge", "curate", curate(DEMO, "--seed", "9" * 30), "from 0 to 4294967295"),
    Case("curate-max-length-0", "curate", curate(DEMO, "--max-length", "0"), "--max-length: must be a whole number"),
    Case("curate-no-such-input", "curate", lambda d: [str(d / "in" / "nope.jsonl"), "--out", str(d / "out")],
         "nope.jsonl: no such file"),
    Case("curate-input-is-a-directory", "curate", lambda d: [str(d / "in"), "--out", str(d / "out")],
         "is a directory"),
    Case("curate-out-is-a-file", "curate", lambda d: [write(d, "rows.jsonl", DEMO), "--out", write(d, "f.txt", "x")],
         "f.txt: exists and is not a folder"),
    Case("curate-no-out", "curate", lambda d: [write(d, "rows.jsonl", DEMO)], "required: --out"),
    Case("curate-train-only-missing", "curate", curate(DEMO, "--train-only", "/nonexistent/batch.jsonl"),
         "argument --train-only: batch.jsonl: no such file"),
    Case("curate-unreadable-input", "curate", curate(DEMO), "rows.jsonl: cannot be read (Permission denied)",
         how="perms", private="rows.jsonl"),
    Case("curate-unwritable-out", "curate", lambda d: [write(d, "rows.jsonl", DEMO), "--out", str(d / "locked" / "x")],
         "locked is not writable", how="perms"),
    Case("curate-disk-full", "curate", curate(DEMO), "train.jsonl: cannot be written (File too large)", how="module",
         small_disk=200),
    # --- helpers.evaluate -------------------------------------------------------------------------
    Case("evaluate-empty-file", "evaluate", evaluate(b""), "rows.jsonl: no rows (the file is empty)"),
    Case("evaluate-binary-garbage", "evaluate", evaluate(bytes(range(256)) * 64), "rows.jsonl:1: not valid"),
    Case("evaluate-utf16", "evaluate", evaluate(JSONL.decode().encode("utf-16")), "UTF-16 text"),
    Case("evaluate-invalid-utf8", "evaluate",
         evaluate(JSONL + b'{"instruction": "caf\xe9", "response": "DIAGNOSIS_CODE: R42"}\n'),
         "rows.jsonl:3: not valid UTF-8 text"),
    Case("evaluate-nested-1e5", "evaluate", evaluate(NESTED), "rows.jsonl:1: not valid JSON (nested too deeply)"),
    Case("evaluate-10mb-line", "evaluate", evaluate(TEN_MB), "rows.jsonl:1: longer than 100,000 characters"),
    Case("evaluate-wrong-types", "evaluate", evaluate('{"instruction": 5, "response": "DIAGNOSIS_CODE: R42"}'),
         "rows.jsonl:1: 'instruction' must be a string"),
    Case("evaluate-missing-field", "evaluate", evaluate('{"instruction": "a cough"}'),
         "rows.jsonl:1: row has no 'response' field"),
    Case("evaluate-not-an-object", "evaluate", evaluate('["a cough", "R05.9"]'), "rows.jsonl:1: a row must be"),
    Case("evaluate-response-without-code", "evaluate", evaluate('{"instruction": "x", "response": "back pain"}'),
         "rows.jsonl:1: response is not 'DIAGNOSIS_CODE: <code>'"),
    Case("evaluate-utf8-bom", "evaluate", evaluate(b"\xef\xbb\xbf" + JSONL), None, check=scored_and_scrubbed),
    Case("evaluate-crlf-and-a-huge-limit", "evaluate", evaluate(JSONL.replace(b"\n", b"\r\n"), "--limit", "9" * 30),
         None, check=scored_and_scrubbed),
    Case("evaluate-cr-only", "evaluate", evaluate(JSONL.replace(b"\n", b"\r"), "--limit", "1"), None,
         check=scored_and_scrubbed),
    Case("evaluate-batch-size-0", "evaluate", evaluate(JSONL, "--batch-size", "0"),
         "argument --batch-size: must be a whole number from 1 to 4096, not 0"),
    Case("evaluate-batch-size-minus-1", "evaluate", evaluate(JSONL, "--batch-size", "-1"), "--batch-size"),
    Case("evaluate-batch-size-abc", "evaluate", evaluate(JSONL, "--batch-size", "abc"), "not 'abc'"),
    Case("evaluate-batch-size-huge", "evaluate", evaluate(JSONL, "--batch-size", "9" * 5000), "from 1 to 4096"),
    Case("evaluate-limit-0", "evaluate", evaluate(JSONL, "--limit", "0"), "argument --limit: must be a whole number"),
    Case("evaluate-limit-minus-1", "evaluate", evaluate(JSONL, "--limit", "-1"), "--limit: must be"),
    Case("evaluate-general-limit-0", "evaluate", evaluate(JSONL, "--general", "--general-limit", "0"),
         "--general-limit"),
    Case("evaluate-device-gpu", "evaluate", evaluate(JSONL, "--device", "gpu"), "'gpu' is not a device"),
    Case("evaluate-device-cuda-99", "evaluate", evaluate(JSONL, "--device", "cuda:99"), "--device: cuda:99"),
    Case("evaluate-unknown-flag", "evaluate", evaluate(JSONL, "--temperature", "0"), "unrecognized arguments"),
    Case("evaluate-no-such-data", "evaluate", lambda d: ["--model", str(BASE_MODEL_DIR), "--data",
                                                         str(d / "in" / "none.jsonl")], "none.jsonl: no such file"),
    Case("evaluate-no-such-model", "evaluate", lambda d: evaluate(JSONL, model=d / "in" / "gone")(d),
         "gone: does not exist"),
    Case("evaluate-model-is-a-file", "evaluate", lambda d: evaluate(JSONL, model=Path(write(d, "m.bin", "x")))(d),
         "m.bin: is a file, not a folder"),
    Case("evaluate-model-folder-empty", "evaluate", lambda d: evaluate(JSONL, model=folder(d / "in" / "empty"))(d),
         "holds neither a model (config.json) nor a LoRA adapter"),
    Case("evaluate-corrupt-safetensors", "evaluate", lambda d: evaluate(JSONL, model=model_like(d / "in" / "m"))(d),
         "'m' does not load as a model (SafetensorError"),
    Case("evaluate-truncated-safetensors", "evaluate",
         lambda d: evaluate(JSONL, model=model_like(d / "in" / "m", (BASE_MODEL_DIR / "model.safetensors")
                                                    .open("rb").read(100_000)))(d),
         "does not load as a model (SafetensorError"),
    Case("evaluate-adapter-without-base", "evaluate",
         lambda d: evaluate(JSONL, model=adapter_like(d / "in" / "a", {"peft_type": "LORA", "r": 4}))(d),
         "a/adapter_config.json: no 'base_model_name_or_path'"),
    Case("evaluate-adapter-config-not-json", "evaluate",
         lambda d: evaluate(JSONL, model=adapter_like(d / "in" / "a", '{"peft_type": "LORA",'))(d),
         "a/adapter_config.json: cannot be read as JSON"),
    Case("evaluate-adapter-corrupt-weights", "evaluate",
         lambda d: evaluate(JSONL, model=adapter_like(d / "in" / "a", {
             "peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"],
             "base_model_name_or_path": "embedded:SmolLM2-135M-Instruct"}))(d),
         "'a': the adapter does not load onto embedded:SmolLM2-135M-Instruct"),
    Case("evaluate-prompt-longer-than-the-context", "evaluate",
         evaluate(json.dumps({"instruction": "my back hurts " * 6000, "response": "DIAGNOSIS_CODE: M54.50"})),
         "rows.jsonl: row 1: the prompt is"),
    Case("evaluate-predictions-is-a-folder", "evaluate",
         lambda d: evaluate(JSONL)(d)[:-1] + [str(d / "out")], "out: is a folder; name the file to write"),
    Case("evaluate-unwritable-predictions", "evaluate",
         lambda d: evaluate(JSONL)(d)[:-1] + [str(d / "locked" / "preds.jsonl")], "locked is not writable",
         how="perms"),
    # 1,000 bytes: room for the metrics' own small cache files, none for a prediction of this 2,000-character row
    Case("evaluate-disk-full", "evaluate",
         evaluate(json.dumps({**ROWS[1], "instruction": "I keep coughing day and night. " * 65})),
         "preds.jsonl: cannot be written (File too large)", small_disk=1000),
    # --- helpers.profile_run ----------------------------------------------------------------------
    Case("profile-flavour-typo", "profile_run", profile_run("--flavours", "lora,qlroa"),
         "--flavours: unknown variant 'qlroa'; choose from full, lora, qlora", how="module"),
    Case("profile-epochs-0", "profile_run", profile_run("--epochs", "0"), "argument --epochs: must be"),
    Case("profile-epochs-abc", "profile_run", profile_run("--epochs", "abc"), "--epochs: must be a whole number"),
    Case("profile-epochs-huge", "profile_run", profile_run("--epochs", "10" * 20), "from 1 to 1000"),
    Case("profile-seeds-not-numbers", "profile_run", profile_run("--seeds", "0,x"),
         "give whole numbers separated by commas"),
    Case("profile-seeds-negative", "profile_run", profile_run("--seeds", "0,-1"), "a seed is a whole number from 0"),
    Case("profile-seeds-repeated", "profile_run", profile_run("--seeds", "1,1"), "a seed is repeated"),
    Case("profile-seeds-huge", "profile_run", profile_run("--seeds", "4294967296"), "to 4294967295"),
    Case("profile-out-is-a-folder", "profile_run", lambda d: ["--out", str(d / "out")], "is a folder"),
    Case("profile-unknown-flag", "profile_run", profile_run("--flavour", "lora"), "unrecognized arguments: --flavour"),
    Case("profile-nothing-to-run", "profile_run", profile_run("--no-headline"), "--no-headline without --flavours"),
    Case("profile-unknown-profile", "profile_run", profile_run(), "COURSE_PROFILE='laptop' is not a profile",
         env={"COURSE_PROFILE": "laptop"}),
    Case("profile-unwritable-out", "profile_run", lambda d: ["--out", str(d / "locked" / "run.json")],
         "locked is not writable", how="perms"),
    Case("profile-disk-full", "profile_run", profile_run("--no-headline", "--flavours", "lora"),
         "run.json: cannot be written (File too large)", small_disk=200, env={"COURSE_PROFILE": "ci"}),
    # --- helpers.train: the recipe file (a valid one would train, so each case below is refused somewhere) -------
    Case("train-empty-recipe", "train", train(b""), "recipe.yaml: the recipe is empty"),
    Case("train-binary-garbage", "train", train(bytes(range(256)) * 64), "recipe.yaml: not valid UTF-8 text"),
    Case("train-invalid-utf8", "train", train(GOOD_RECIPE.encode() + b"# caf\xe9\n"),
         "recipe.yaml: not valid UTF-8 text (byte 41)"),
    Case("train-utf16", "train", train(GOOD_RECIPE.encode("utf-16")), "recipe.yaml: UTF-16 text"),
    Case("train-bom-then-a-bad-value", "train", train(b"\xef\xbb\xbf" + GOOD_RECIPE.encode() + b"lora_r: 0\n"),
         "recipe.yaml: lora_r: must be 1 or more, not 0"),
    Case("train-crlf-then-a-bad-value", "train", train((GOOD_RECIPE + "lora_r: 0\n").replace("\n", "\r\n")),
         "recipe.yaml: lora_r: must be 1 or more, not 0"),
    Case("train-cr-only-then-a-bad-value", "train", train((GOOD_RECIPE + "lora_r: 0\n").replace("\n", "\r")),
         "recipe.yaml: lora_r: must be 1 or more, not 0"),
    Case("train-nested-1e5", "train", train(NESTED), "recipe.yaml: not valid YAML (nested too deeply)"),
    Case("train-10mb-line", "train", train(GOOD_RECIPE + "model: " + "a" * 10_000_000 + "\n"),
         "recipe.yaml: larger than a recipe can be (1 MB)"),
    Case("train-a-list-not-a-mapping", "train", train("- profile: ci\n"), "recipe.yaml: a recipe is a mapping"),
    Case("train-wrong-type", "train", train(GOOD_RECIPE + "lora_alpha: [8]\n"), "recipe.yaml: lora_alpha: takes one value (a whole number), not a list"),
    Case("train-unknown-key", "train", train(GOOD_RECIPE + "lora_rank: 8\n"),
         "recipe.yaml: lora_rank: not a recipe setting"),
    Case("train-bad-number", "train", train(GOOD_RECIPE + "learning_rate: fast\n"), "recipe.yaml: learning_rate:"),
    Case("train-bad-override", "train", train(GOOD_RECIPE, "num_train_epochs=-1"), "num_train_epochs"),
    Case("train-unknown-flag", "train", train(GOOD_RECIPE, "--epochs", "2"), "unrecognized arguments: --epochs"),
    Case("train-no-such-recipe", "train", lambda d: ["--config", str(d / "in" / "none.yaml")],
         "none.yaml: no such file"),
    Case("train-recipe-is-a-folder", "train", lambda d: ["--config", str(d / "in")], "is a directory"),
    Case("train-output-is-a-file", "train",
         lambda d: ["--config", write(d, "recipe.yaml", GOOD_RECIPE), "--output-dir", write(d, "f.txt", "x")],
         "f.txt: exists and is not a folder"),
    Case("train-unreadable-recipe", "train", train(GOOD_RECIPE), "recipe.yaml: cannot be read (Permission denied)",
         how="perms", private="recipe.yaml"),
    Case("train-unwritable-output", "train",
         lambda d: ["--config", write(d, "recipe.yaml", GOOD_RECIPE), "--output-dir", str(d / "locked" / "run")],
         "locked is not writable", how="perms"),
    # --- helpers.serve: the model folder and the server's settings, refused before it listens ---------------------
    Case("serve-no-such-model", "serve", serve(lambda d: d / "in" / "gone"), "model directory", how="module"),
    Case("serve-model-is-a-file", "serve", serve(lambda d: Path(write(d, "m.bin", "x"))), "m.bin", how="module"),
    Case("serve-empty-model-folder", "serve", serve(lambda d: folder(d / "in" / "empty")),
         "holds neither a model (config.json) nor a LoRA adapter", how="module"),
    Case("serve-corrupt-safetensors", "serve", serve(lambda d: model_like(d / "in" / "m")),
         "'m' does not load as a model (SafetensorError", how="module"),
    Case("serve-port-text", "serve", serve(None, "--port", "http"), "argument --port: 'http' is not a number",
         how="module"),
    Case("serve-max-chars-0", "serve", serve(None, "--max-chars", "0"), "argument --max-chars: 0 is outside",
         how="module"),
    Case("serve-unknown-flag", "serve", serve(None, "--workers", "4"), "unrecognized arguments: --workers",
         how="module"),
]
AS_ROOT = os.geteuid() == 0
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2  # from <linux/prctl.h>, <linux/capability.h>


def mains():
    from helpers import curate, evaluate, profile_run, serve, train

    return {"curate": curate.main, "evaluate": evaluate.main, "profile_run": profile_run.main, "train": train.main,
            "serve": serve.main}


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def small_disk(size: int) -> Callable[[], None]:
    """For a child: writes past ``size`` bytes fail with EFBIG (SIGXFSZ, which would kill it, is ignored)."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def permission_bits_bind() -> None:
    """In a child of root: give up the capabilities that let root read and write through permission bits."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@contextlib.contextmanager
def small_disk_here(size: int):
    """:func:`small_disk` for this process, for the length of the block."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def as_subprocess(case: Case, argv: list[str]) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **case.env}
    kwargs = {}
    if case.small_disk:
        kwargs["preexec_fn"] = small_disk(case.small_disk)
    if case.how == "perms" and AS_ROOT:
        kwargs["preexec_fn"] = permission_bits_bind
    done = subprocess.run([sys.executable, "-m", f"helpers.{case.cli}", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, **kwargs)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def case_dir(tmp_path):
    """A folder with in/ (the inputs), out/ (where outputs go) and locked/ (read-only)."""
    for name in ("in", "out", "locked"):
        (tmp_path / name).mkdir()
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, case_dir: Path, capsys, monkeypatch):
    d = case_dir
    argv = case.make(d)
    for path in d.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    d.chmod(0o755)
    (d / "locked").chmod(0o555)
    inputs, outputs = digest(d / "in"), listing(d / "out")
    if case.private:
        (d / "in" / case.private).chmod(0o000)

    if case.how == "main":
        for key, value in case.env.items():
            monkeypatch.setenv(key, value)
        main = mains()[case.cli]
        if case.small_disk:
            from helpers.evaluation import load_metric

            # evaluate copies each metric's module into its cache on first use: copied now, the one write
            # the small disk refuses is the command's own output, the case's subject
            for name in ("diagnosis_exact_match", "diagnosis_format", "billable_code"):
                load_metric(name)
            with small_disk_here(case.small_disk):
                code = run_cli(main, argv)
        else:
            code = run_cli(main, argv)
        out, err = capsys.readouterr()
    else:
        code, out, err = as_subprocess(case, argv)

    assert "Traceback" not in out + err, err[-3000:]
    if case.error is None:
        assert code == 0, err[-3000:]
        if case.check:
            case.check(d)
    else:
        assert code == 2, (code, err[-3000:])
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
        assert case.error in lines[0], lines[0]
        assert listing(d / "out") == outputs  # nothing written on refusal
        assert not [p for p in (d / "in").rglob("*") if ".partial" in p.name]
    if case.private:
        (d / "in" / case.private).chmod(0o644)
    assert digest(d / "in") == inputs  # the inputs keep their bytes


def test_the_table_covers_every_command_and_runs_each_as_a_real_subprocess():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
    for cli in ("curate", "evaluate", "profile_run", "train", "serve"):
        assert any(c.cli == cli and c.how != "main" for c in CASES), cli
