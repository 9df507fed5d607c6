"""The fine-tuned model back in GGUF, for llama.cpp and Ollama, with its answers checked: ``make export-gguf``.

The course's base model arrived as a GGUF file; a learner who serves with llama.cpp or Ollama wants the fine-tune in
the same format. llama.cpp's own converter (``convert_hf_to_gguf.py``) maps a transformers folder onto GGUF: it
ships in llama.cpp's source, which the source distribution of ``llama-cpp-python`` vendors, so that pinned archive is
unpacked for it (the ``gguf`` package writes the format but maps no model onto it). ``llama-cpp-python``, compiled
by pip from the same archive, then answers the test split from each file, and every answer is compared with the
merged model's: an export that was not checked is not shipped.

    python -m helpers.gguf_export [--model outputs/merged] [--types f16 q8_0 q4_k_m] [--limit N]

Writes ``outputs/gguf/<name>.gguf`` (each atomically: converted under a temporary name, then renamed),
``outputs/gguf/report.json``, and the figures under ``gguf`` in ``outputs/results.json``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import date
from pathlib import Path

from helpers.atomic import atomic_path
from helpers.errors import CourseError
from helpers.paths import MERGED_DIR, OUTPUTS, ROOT, show, strip_paths

REQUIREMENTS = ROOT / "requirements-gguf.txt"
GGUF_DIR = OUTPUTS / "gguf"
SOURCE_CACHE = OUTPUTS / "cache"
#: what the converter writes itself; q4_k_m is llama.cpp's quantizer run on the f16 file
CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")
QUANTIZER_TYPES = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}
#: the parts of llama.cpp's source the converter needs: the script, its model classes and its own gguf-py
CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


def pinned_version(package: str = "llama-cpp-python", requirements: Path = REQUIREMENTS) -> str:
    """The version ``requirements-gguf.txt`` pins for ``package``: the converter and the runtime come from it."""
    from helpers.install import canonical, pins

    version = pins(requirements).get(canonical(package))
    if not version:
        raise CourseError(f"{show(requirements)}: no `{package}==<version>` line")
    return version


def converter_source(version: str | None = None, cache: Path = SOURCE_CACHE) -> Path:
    """llama.cpp's converter, unpacked once from the pinned ``llama-cpp-python`` source archive (from the registry).

    Returns the folder that holds ``convert_hf_to_gguf.py``; its ``gguf-py`` goes first on the converter's path,
    since the script is written against that copy of the ``gguf`` package.
    """
    from helpers.atomic import atomic_dir

    version = version or pinned_version()
    folder = Path(cache) / f"llama.cpp-from-llama-cpp-python-{version}"
    if (folder / "convert_hf_to_gguf.py").is_file():
        return folder
    with tempfile.TemporaryDirectory() as download:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                               f"llama-cpp-python=={version}", "--dest", download], capture_output=True, text=True)
        archives = list(Path(download).glob("llama_cpp_python-*.tar.gz"))
        if done.returncode != 0 or not archives:
            last = (done.stderr.strip().splitlines() or ["no archive"])[-1]
            raise CourseError(f"llama-cpp-python=={version}: its source archive could not be fetched "
                              f"({strip_paths(last)[:200]})")
        prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
        with tarfile.open(archives[0]) as archive, atomic_dir(folder) as tmp:
            members = []
            for member in archive.getmembers():
                inner = member.name[len(prefix):] if member.name.startswith(prefix) else None
                if inner and any(inner == part or inner.startswith(part) for part in CONVERTER_PARTS):
                    member.name = inner
                    members.append(member)
            archive.extractall(tmp, members=members, filter="data")  # "data": no links or paths out of the folder
    if not (folder / "convert_hf_to_gguf.py").is_file():
        raise CourseError(f"llama-cpp-python=={version}: its source archive has no vendor/llama.cpp/convert_hf_to_gguf.py")
    return folder


def convert(model_dir: Path, out: Path, outtype: str = "f16", source: Path | None = None) -> Path:
    """``model_dir`` (a transformers folder) as one GGUF file of ``outtype``, written under a temporary name first."""
    if outtype not in CONVERTER_TYPES:
        raise CourseError(f"--types: the converter writes {', '.join(CONVERTER_TYPES)}, not {outtype}")
    source = source or converter_source()
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(source / "gguf-py"), os.environ.get("PYTHONPATH", "")]),
                        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_LOCAL_GGUF": ""}
    with atomic_path(out) as tmp:
        done = subprocess.run([sys.executable, str(source / "convert_hf_to_gguf.py"), str(model_dir),
                               "--outtype", outtype, "--outfile", str(tmp)], env=env, capture_output=True, text=True)
        if done.returncode != 0 or tmp.stat().st_size == 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise CourseError(f"convert_hf_to_gguf.py on {show(model_dir)} ({outtype}) failed: {strip_paths(last)[:300]}")
    return out


def quantize(source_file: Path, out: Path, kind: str = "q4_k_m", threads: int | None = None) -> Path:
    """llama.cpp's own quantizer (through llama-cpp-python's C API) from an f16 file, written under a temporary name."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTIZER_TYPES[kind])
    params.nthread = threads or 0
    with atomic_path(out) as tmp:
        if llama_cpp.llama_model_quantize(str(source_file).encode(), str(tmp).encode(), ctypes.byref(params)) != 0:
            raise CourseError(f"llama.cpp could not quantize {show(source_file)} to {kind}")
    return out


def gguf_metadata(path: Path) -> dict:
    """The fields of a GGUF file a learner would check: architecture, tensor count, chat template, special tokens."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def field(name: str):
        found = reader.fields.get(name)
        return None if found is None else found.contents()

    return {"architecture": field("general.architecture"), "tensors": len(reader.tensors),
            "chat_template": field("tokenizer.chat_template"),
            "eos_token_id": field("tokenizer.ggml.eos_token_id"),
            "padding_token_id": field("tokenizer.ggml.padding_token_id"),
            "add_bos_token": field("tokenizer.ggml.add_bos_token")}


def llama_answers(path: Path, prompts: list[str], max_tokens: int, threads: int | None = None) -> tuple[list[str], float]:
    """Greedy answers from llama.cpp to chat-formatted prompts (its own tokenizer reads the special tokens)."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=512, n_threads=threads, n_threads_batch=threads, seed=0, verbose=False)
    started = time.perf_counter()
    answers = [llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0)["choices"][0]["text"].strip()
               for prompt in prompts]
    seconds = time.perf_counter() - started
    del llm
    return answers, seconds


def llama_tokens(path: Path, prompts: list[str]) -> list[list[int]]:
    """How llama.cpp tokenizes each prompt, beginning-of-sequence token included when the file asks for one."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=512, vocab_only=True, verbose=False)
    add_bos = llm._model.add_bos_token()
    return [llm.tokenize(p.encode("utf-8"), add_bos=add_bos, special=True) for p in prompts]


def export(model_dir: Path = MERGED_DIR, types: tuple[str, ...] = ("f16", "q8_0", "q4_k_m"), limit: int | None = None,
           threads: int | None = None, out_dir: Path = GGUF_DIR) -> dict:
    """Convert, answer the profile's test split from each file, and compare with the merged model, row by row."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from helpers.chat import prompt_messages
    from helpers.config import get_profile
    from helpers.evaluation import ANSWER_TOKENS, generate_answers, interval95, score
    from helpers.merging import agreement
    from helpers.training import load_split

    if not (Path(model_dir) / "config.json").is_file():
        raise CourseError(f"{show(model_dir)}: no merged model here; run chapter 7 (or `make course`) first")
    profile = get_profile()
    rows = load_split("test", profile)[:limit]  # limit None: every row
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    started = time.perf_counter()
    merged = generate_answers(model, tokenizer, [r["instruction"] for r in rows], progress=False)
    merged_seconds = time.perf_counter() - started
    del model
    prompts = [tokenizer.apply_chat_template(prompt_messages(r["instruction"]), tokenize=False,
                                             add_generation_prompt=True) for r in rows]
    hf_tokens = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]

    source = converter_source()
    files: dict[str, Path] = {}
    for kind in types:
        out = Path(out_dir) / f"{Path(model_dir).name}-{kind}.gguf"
        if kind in QUANTIZER_TYPES:
            f16 = files.get("f16") or convert(model_dir, Path(out_dir) / f"{Path(model_dir).name}-f16.gguf", "f16",
                                               source)
            files[kind] = quantize(f16, out, kind, threads)
        else:
            files[kind] = convert(model_dir, out, kind, source)

    def exact(answers: list[str]) -> dict:
        scores = score(rows, answers)
        correct = round(scores.exact_match * scores.n)
        low, high = interval95(correct, scores.n)
        return {"exact_match": round(scores.exact_match, 4), "ci95": [round(low, 4), round(high, 4)]}

    report = {"date": date.today().isoformat(), "profile": profile.name, "rows": len(rows),
              "llama_cpp_python": pinned_version(), "model": show(model_dir),
              "merged": exact(merged) | {"seconds_per_answer": round(merged_seconds / len(rows), 4)}, "files": {}}
    for kind, path in files.items():
        meta = gguf_metadata(path)
        answers, seconds = llama_answers(path, prompts, ANSWER_TOKENS, threads)
        same_tokens = sum(a == b for a, b in zip(llama_tokens(path, prompts), hf_tokens))
        report["files"][kind] = {
            "file": show(path), "megabytes": round(path.stat().st_size / 2**20, 1),
            "agreement_with_merged": agreement(merged, answers),
            "prompts_tokenized_identically": f"{same_tokens}/{len(prompts)}",
            "chat_template_carried": meta["chat_template"] == tokenizer.chat_template,
            "tensors": meta["tensors"], "seconds_per_answer": round(seconds / len(rows), 4),
        } | exact(answers)
    return report


def table(report: dict) -> str:
    lines = [f"{'model':<14} {'MB':>7} {'agrees with merged':>19} {'exact match (95 %)':>22} {'s/answer':>9}"]
    merged = report["merged"]
    lines.append(f"{'merged (fp32)':<14} {'':>7} {'':>19} "
                 f"{merged['exact_match']:>8.4f} ({merged['ci95'][0]:.3f}-{merged['ci95'][1]:.3f}) "
                 f"{merged['seconds_per_answer']:>9.3f}")
    for kind, row in report["files"].items():
        agree = row["agreement_with_merged"]
        lines.append(f"{'GGUF ' + kind:<14} {row['megabytes']:>7.1f} {agree['identical']:>9}/{agree['n']:<9} "
                     f"{row['exact_match']:>8.4f} ({row['ci95'][0]:.3f}-{row['ci95'][1]:.3f}) "
                     f"{row['seconds_per_answer']:>9.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from helpers.cli import Parser, existing_folder, integer

    parser = Parser(prog="python -m helpers.gguf_export",
                    description="Export the merged model to GGUF with llama.cpp's converter and check its answers.")
    parser.add_argument("--model", type=existing_folder, default=str(MERGED_DIR), help="a merged transformers folder")
    parser.add_argument("--types", nargs="+", choices=[*CONVERTER_TYPES, *QUANTIZER_TYPES],
                        default=["f16", "q8_0", "q4_k_m"], help="GGUF types to write and check")
    parser.add_argument("--limit", type=integer(1), help="answer only the first N test rows")
    parser.add_argument("--threads", type=integer(1), help="llama.cpp threads (default: its own choice)")
    args = parser.parse_args(argv)
    try:
        import llama_cpp  # noqa: F401  (compiled by `make export-gguf`, not part of the course's install)
    except ImportError:
        raise CourseError("llama-cpp-python is not installed: `make export-gguf` installs it "
                          "(requirements-gguf.txt; pip compiles llama.cpp, a few minutes)") from None

    from helpers import results
    from helpers.atomic import write_json
    from helpers.notebook import quiet

    quiet()
    report = export(Path(args.model), tuple(args.types), args.limit, args.threads)
    write_json(GGUF_DIR / "report.json", report)
    results.record("gguf", report)
    print(table(report))
    print(f"\n{report['rows']} test rows of the {report['profile']} profile, greedy; written to "
          f"{show(GGUF_DIR / 'report.json')} and under `gguf` in {show(results.RESULTS_FILE)}")
    return 0


if __name__ == "__main__":
    from helpers.errors import run_cli

    raise SystemExit(run_cli(main))
