"""Chapter 1: curate raw instruction/response rows into train/val/test splits.

Usage::

    python -m helpers.curate data/raw/icd10_complaints_raw.jsonl --out outputs/data \
        --train-only data/raw/icd10_complaints_batch2.jsonl

Every input row is either kept (in exactly one split) or written to
``rejects.jsonl`` with its file, 1-based physical line, reason and raw text, so
``input_rows == kept + rejected`` always holds and nothing is lost silently.

Rules, applied in this order (each a small function below, each with tests):

1. read: by the rules of ``helpers.jsonl`` (UTF-8 with or without a BOM,
   LF, CRLF or CR line ends, JSONL or a JSON array); a row must be a JSON
   object with non-blank string ``instruction`` and ``response``. An empty
   file, or one with no parsable row, is refused; so is a run that keeps no row.
2. normalise: unicode NFKC and collapsed whitespace; the response must read
   ``DIAGNOSIS_CODE: <code>``.
3. code: the code must exist in the ICD-10-CM table and be billable; a stale
   code is remapped to its unambiguous successor or rejected (helpers.icd10).
4. PII: phone numbers, e-mails, IDs, full dates and introduced names are
   replaced by placeholders, and the row is kept (helpers.pii).
5. duplicates: exact duplicates, then one text with two different codes, then
   near duplicates (MinHash LSH from datasketch) keep only their first row.
6. length: rows longer than ``max_length`` tokens (the model's tokenizer and
   chat template) are rejected; ``max_length`` comes from the measured
   distribution unless given.
7. chat template: each row rendered by the model's template must end its
   answer with EOS, and the pad token must not be EOS.
8. split: stratified by code, no phrasing in two splits; then train rows that
   share content n-grams with a val/test row are removed (decontamination).

Files given as ``train_only`` (a batch collected after the held-out splits were
drawn) pass the same rules, but their rows go to train only and never remove or
move a row of the main inputs: val and test stay exactly what they were, so
scores measured before the batch arrived stay comparable with scores after.

Besides the splits it writes ``train_uncurated.jsonl``: the same raw rows,
normalised and PII-scrubbed but otherwise unchecked, with the val/test rows taken out, for chapter 4's
"quality versus quantity" comparison.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import re
import statistics
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from helpers import chat, jsonl, pii
from helpers.atomic import atomic_file, write_json
from helpers.chat import prompt_completion
from helpers.cli import SEED_MAX, Parser, integer, output_folder, readable_file
from helpers.errors import CourseError, run_cli, writing
from helpers.jsonl import FIELDS, PARSE_ERRORS, RULES, dump_rows, read_jsonl, read_values, row_problem
from helpers.paths import file_name, show
from helpers.pii import scrub

RESPONSE_RE = re.compile(r"^DIAGNOSIS_CODE:\s*(\S+)$")
SPLIT_FRACTIONS = {"val": 0.1, "test": 0.2}  # the rest is train
NEAR_DUP_THRESHOLD = 0.8  # Jaccard similarity of character 5-grams (see near_duplicates)
SHINGLE = 5
DECONTAM_N = 4  # words per n-gram in the decontamination check
DECONTAM_OVERLAP = 0.7  # share of the smaller row's content n-grams that makes two rows one complaint
BOILERPLATE_N, BOILERPLATE_CODES = 4, 3  # a word 4-gram seen under 3+ codes is instruction wording
MIN_ROWS_FOR_LIMIT = 20  # fewer rows than this say nothing about a length distribution ...
DEFAULT_MAX_LENGTH = 256  # ... so such small inputs get this limit


@dataclass
class Row:
    file: str
    line: int
    raw: str
    data: dict = field(default_factory=dict)
    code: str | None = None
    remapped_from: str | None = None
    tokens: int | None = None


@dataclass
class Reject:
    file: str
    line: int
    reason: str
    raw: str
    detail: str | None = None

    def as_dict(self) -> dict:
        out = {"file": self.file, "line": self.line, "reason": self.reason, "raw": scrub_raw(self.raw)}
        if self.detail:
            out["detail"] = _text(scrub(self.detail)[0])
        return out


def _text(value: str) -> str:
    """Writable UTF-8: undecodable bytes and lone surrogates become U+FFFD."""
    return value.encode("utf-8", "replace").decode("utf-8")


def _scrub_values(value):
    if isinstance(value, str):
        return scrub(_text(value))[0]
    if isinstance(value, list):
        return [_scrub_values(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_values(v) for k, v in value.items()}
    return value


def scrub_raw(raw: str) -> str:
    """A rejected row's text with PII removed.

    A row that parses is scrubbed value by value and written back as JSON, so
    an escape (``\\n`` before a name, ``\\u0040`` in an e-mail) cannot hide
    PII from the patterns; a row that does not parse is scrubbed as text, with
    its common escapes decoded first.
    """
    try:
        return json.dumps(_scrub_values(json.loads(raw)), ensure_ascii=False)
    except PARSE_ERRORS:
        text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), raw)
        text = _text(text.replace("\\n", "\n").replace("\\t", "\t"))
        return scrub(text)[0]


def reject(row: Row, reason: str, detail: str | None = None) -> Reject:
    return Reject(row.file, row.line, reason, row.raw, detail)


def where(other: Row, row: Row) -> str:
    """``other``'s place as ``row``'s reject detail gives it: its line, and its file when that is another."""
    return f"line {other.line}" if other.file == row.file else f"{other.file} line {other.line}"


# --- rule 1: read -----------------------------------------------------------------------------

def read_rows(path: Path) -> list[Row | Reject]:
    """Rule 1: a JSONL or JSON array file as rows and rejects, by the reading rules of :mod:`helpers.jsonl`."""
    name = file_name(path)
    results: list[Row | Reject] = []
    for item in read_values(path):
        reason = item.problem or row_problem(item.value)
        if reason:
            results.append(Reject(name, item.line, reason, item.raw))
        else:
            results.append(Row(name, item.line, item.raw, {key: item.value[key] for key in FIELDS}))
    unreadable = [r for r in results if isinstance(r, Reject) and r.reason in ("malformed_json", "not_utf8",
                                                                              "line_too_long")]
    if not results:
        raise CourseError(f"{name}: no rows (the file is empty)")
    if len(unreadable) == len(results):
        raise CourseError(f"{name}: no parsable JSON row (line {unreadable[0].line}: {RULES[unreadable[0].reason]}); "
                          "is it a JSONL or JSON array file?")
    return results


# --- rule 2: normalise and response format ----------------------------------------------------

def normalise(text: str) -> str:
    """NFKC (folds full-width and compatibility characters) and single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def phrasing_key(text: str) -> str:
    """What makes two instructions "the same phrasing": case, punctuation and spacing ignored."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def check_format(row: Row) -> str | None:
    """The response must be exactly ``DIAGNOSIS_CODE: <code>``."""
    match = RESPONSE_RE.match(row.data["response"])
    if not match:
        return "bad_response_format"
    row.code = match.group(1).upper()
    row.data["response"] = f"DIAGNOSIS_CODE: {row.code}"
    return None


# --- rule 3: the code -------------------------------------------------------------------------

def check_code(row: Row) -> str | None:
    """Valid and billable; a stale code is remapped when its successor is unambiguous."""
    from helpers import icd10  # imported when first needed: the code table takes seconds to load

    reason, new = icd10.check(row.code)
    if new and new.replace(".", "") == row.code.replace(".", ""):
        row.code = new  # the same code, written with its dot
        row.data["response"] = f"DIAGNOSIS_CODE: {new}"
    elif new:
        row.remapped_from, row.code = row.code, new
        row.data["response"] = f"DIAGNOSIS_CODE: {new}"
    return reason


# --- rule 4: PII ------------------------------------------------------------------------------

def scrub_row(row: Row) -> list[str]:
    """Replace PII in the instruction with placeholders; the kinds found."""
    row.data["instruction"], kinds = scrub(row.data["instruction"])
    return kinds


# --- rule 5: duplicates -----------------------------------------------------------------------

def exact_duplicates(rows: list[Row]) -> tuple[list[Row], list[Reject]]:
    """Same normalised instruction and same code: keep the first."""
    seen: dict[tuple[str, str], Row] = {}
    kept, rejects = [], []
    for row in rows:
        key = (row.data["instruction"], row.code)
        if key in seen:
            rejects.append(reject(row, "exact_duplicate", f"same as {where(seen[key], row)}"))
        else:
            seen[key] = row
            kept.append(row)
    return kept, rejects


def conflicting_labels(rows: list[Row], later: frozenset[str] = frozenset()) -> tuple[list[Row], list[Reject]]:
    """One phrasing with two different codes: nothing says which is right, so neither is kept.

    Rows from the ``later`` files (a train-only batch) cannot remove an earlier row: one that labels an
    earlier phrasing with another code is rejected alone, so a new batch never changes the held-out splits.
    """
    codes: dict[str, set[str]] = defaultdict(set)
    earlier: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        key = phrasing_key(row.data["instruction"])
        codes[key].add(row.code)
        if row.file not in later:
            earlier[key].add(row.code)
    kept, rejects = [], []
    for row in rows:
        key = phrasing_key(row.data["instruction"])
        found = codes[key] if row.file in later else earlier[key]
        if len(found) > 1:
            rejects.append(reject(row, "conflicting_labels", "same text labelled " + ", ".join(sorted(found))))
        else:
            kept.append(row)
    return kept, rejects


def shingles(text: str, k: int = SHINGLE) -> set[str]:
    key = phrasing_key(text)
    return {key[i:i + k] for i in range(max(1, len(key) - k + 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicates(rows: list[Row], threshold: float = NEAR_DUP_THRESHOLD,
                    num_perm: int = 128) -> tuple[list[Row], list[Reject], list[tuple[int, int, float]]]:
    """Rows whose character 5-grams overlap by Jaccard >= ``threshold`` with an earlier row of the same code.

    MinHash LSH (datasketch) finds candidate pairs without comparing every pair.
    LSH is probabilistic: tuned to ``threshold`` itself it misses a few pairs
    just above it, so it is asked for candidates down to ``threshold - 0.2``
    and each candidate is confirmed with the exact Jaccard similarity; the
    threshold then means what it says. Character shingles (not words) make a typo
    cost a few shingles instead of whole words. Pairs that are near-identical
    but carry different codes ("right knee" / "left knee") are not duplicates:
    they are returned for review and both rows stay.
    """
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=max(0.1, threshold - 0.2), num_perm=num_perm)
    sets: list[set[str]] = []
    kept, rejects, cross_code = [], [], []
    for index, row in enumerate(rows):
        grams = shingles(row.data["instruction"])
        sets.append(grams)
        signature = MinHash(num_perm=num_perm, seed=1)
        signature.update_batch([g.encode() for g in grams])
        duplicate_of = None
        for other in sorted(lsh.query(signature)):
            similarity = jaccard(grams, sets[other])
            if similarity < threshold:
                continue
            if rows[other].code == row.code:
                duplicate_of = (other, similarity)
                break
            cross_code.append((rows[other].line, row.line, round(similarity, 3)))
        if duplicate_of:
            other, similarity = duplicate_of
            rejects.append(reject(row, "near_duplicate", f"Jaccard {similarity:.2f} with {where(rows[other], row)}"))
        else:
            lsh.insert(index, signature)
            kept.append(row)
    return kept, rejects, cross_code


# --- rules 6 and 7: tokens and chat template ---------------------------------------------------

def _ids(encoded) -> list[int]:
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def token_length(row: dict, tokenizer) -> int:
    """Tokens of one training example: prompt and completion rendered by the chat template."""
    return len(_ids(tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True)))


def token_lengths(rows: list[dict], tokenizer) -> list[int]:
    return [token_length(row, tokenizer) for row in rows]


def choose_max_length(lengths: list[int], quantile: float = 0.99, headroom: float = 1.25, multiple: int = 32) -> int:
    """The 99th percentile plus a quarter, rounded up to a multiple of 32.

    The 99th percentile barely moves when a few pasted transcripts (a fraction
    of a percent of rows) are added, unlike the maximum; the headroom keeps
    the real long tail of rambling complaints just past it; a multiple of 32
    suits the hardware. Chapter 1 plots the distribution with this line on it:
    on the course's raw file the legitimate rows stop well below it and the
    junk starts far above.
    """
    cut = statistics.quantiles(lengths, n=100, method="inclusive")[round(quantile * 100) - 1]
    return int(math.ceil(cut * headroom / multiple) * multiple)


def check_tokenizer(tokenizer) -> None:
    """Padding with EOS hides the EOS label from the loss: the model then never learns to stop."""
    if tokenizer.eos_token_id is None:
        raise CourseError("the tokenizer has no EOS token, so answers could never end")
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise CourseError(
            f"the tokenizer pads with its EOS token {tokenizer.eos_token!r}; give it another pad token "
            "(helpers.models.fix_padding) or the fine-tuned model will not stop"
        )


def template_problem(row: dict, tokenizer) -> str | None:
    """Render a row as TRL will and check the answer ends with EOS.

    TRL tokenizes the prompt (with the generation prompt) and the whole
    conversation, and trains on the tokens after the prompt. Those must be the
    answer followed by EOS. Text that contains the template's own control
    tokens (``<|im_end|>`` typed into a complaint) breaks that, as does a
    template that does not close the assistant turn with EOS.
    """
    special = [t for t in tokenizer.all_special_tokens if t]
    if any(t in row["instruction"] or t in row["response"] for t in special):
        return "special_token_in_text"
    prompt_ids = _ids(tokenizer.apply_chat_template(row["prompt"], tokenize=True, add_generation_prompt=True))
    full_ids = _ids(tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True))
    if full_ids[: len(prompt_ids)] != prompt_ids:
        return "template_prefix_mismatch"
    completion = full_ids[len(prompt_ids):]
    if tokenizer.eos_token_id not in completion:
        return "no_eos_after_response"
    answer = tokenizer.decode(completion[: completion.index(tokenizer.eos_token_id)])
    return None if answer.strip() == row["response"] else "no_eos_after_response"


def render(row: dict, tokenizer) -> str:
    """The exact text the model is trained on for one row."""
    return tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)


# --- rule 8: split and decontaminate ----------------------------------------------------------

def split(rows: list[Row], seed: int = 0) -> dict[str, list[Row]]:
    """Stratified by code; rows with the same phrasing move together, so no phrasing is in two splits.

    Every code with 3+ phrasings lands in all three splits.
    """
    by_code: dict[str, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_code[row.code][phrasing_key(row.data["instruction"])].append(row)
    rng = random.Random(seed)
    splits: dict[str, list[Row]] = {"train": [], "val": [], "test": []}
    for code in sorted(by_code):
        groups = list(by_code[code].values())
        rng.shuffle(groups)
        n = len(groups)
        n_test = max(1, round(n * SPLIT_FRACTIONS["test"])) if n >= 3 else 0
        n_val = max(1, round(n * SPLIT_FRACTIONS["val"])) if n >= 3 else 0
        for name, chunk in (("test", groups[:n_test]), ("val", groups[n_test:n_test + n_val]),
                            ("train", groups[n_test + n_val:])):
            splits[name] += [row for group in chunk for row in group]
    for rows_ in splits.values():
        rows_.sort(key=lambda r: (r.file, r.line))
    return splits


def ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def boilerplate(rows: list[Row], n: int = BOILERPLATE_N, min_codes: int = BOILERPLATE_CODES) -> set[tuple[str, ...]]:
    """Word n-grams that occur under ``min_codes`` or more codes: instruction wording, not a complaint."""
    codes: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for row in rows:
        for gram in ngrams(phrasing_key(row.data["instruction"]).split(), n):
            codes[gram].add(row.code)
    return {gram for gram, found in codes.items() if len(found) >= min_codes}


def content_words(text: str, common: set[tuple[str, ...]], n: int = BOILERPLATE_N) -> list[str]:
    """The words of ``text`` left once every boilerplate n-gram is cut out."""
    words = phrasing_key(text).split()
    covered = [False] * len(words)
    for i, gram in enumerate(ngrams(words, n)):
        if gram in common:
            covered[i:i + n] = [True] * n
    return [word for word, cut in zip(words, covered) if not cut]


def content_grams(text: str, common: set[tuple[str, ...]], n: int = DECONTAM_N) -> set[tuple[str, ...]]:
    words = content_words(text, common)
    return set(ngrams(words, n)) if len(words) >= n else ({tuple(words)} if words else set())


def decontaminate(splits: dict[str, list[Row]], n: int = DECONTAM_N,
                  min_overlap: float = DECONTAM_OVERLAP) -> list[Reject]:
    """Remove train rows whose complaint is (nearly) a val or test complaint.

    The split keeps identical phrasings together, but the same complaint in a
    different instruction wording ("Patient says: ...") is a different text
    and can land in train while its twin is in test: a leak that inflates test
    scores. So we cut the instruction wording out of every row (word 4-grams
    seen under 3+ codes), take word ``n``-grams of what remains, and remove a
    train row when it shares at least ``min_overlap`` of the smaller row's
    n-grams with one val/test row. A shared common phrase ("when I get out of
    bed") is one n-gram among many and stays below that bar. On the course's
    raw file this finds every planted leak that straddles the split and
    nothing else (chapter 1 shows the measurement).
    """
    common = boilerplate([r for rows in splits.values() for r in rows])
    held_out: dict[tuple[str, ...], list[tuple[str, Row, int]]] = defaultdict(list)
    for name in ("val", "test"):
        for row in splits[name]:
            grams = content_grams(row.data["instruction"], common, n)
            for gram in grams:
                held_out[gram].append((name, row, len(grams)))
    kept, rejects = [], []
    for row in splits["train"]:
        grams = content_grams(row.data["instruction"], common, n)
        shared: Counter = Counter()
        sizes: dict[int, tuple[str, Row, int]] = {}
        for gram in grams:
            for name, other, size in held_out.get(gram, ()):
                shared[id(other)] += 1
                sizes[id(other)] = (name, other, size)
        best = max(((count / min(len(grams), sizes[key][2]), key) for key, count in shared.items()), default=None)
        if best and best[0] >= min_overlap:
            name, twin, _ = sizes[best[1]]
            rejects.append(reject(row, "overlaps_eval",
                                  f"{best[0]:.0%} of its complaint n-grams are in {name} {where(twin, row)}"))
        else:
            kept.append(row)
    splits["train"] = kept
    return rejects


def nearest_similarity(rows: list[dict]) -> list[float]:
    """For each row, the Jaccard similarity of its closest other row of the same code.

    Chapter 1 plots these for the kept rows next to the planted near
    duplicates, to show where the 0.8 threshold falls. Exact pairwise
    comparison is fine here (about 20 rows per code); MinHash is what makes the
    pipeline itself scale.
    """
    by_code: dict[str, list[set[str]]] = defaultdict(list)
    for r in rows:
        by_code[r["code"]].append(shingles(r["instruction"]))
    best = []
    for sets in by_code.values():
        for i, a in enumerate(sets):
            best.append(max((jaccard(a, b) for j, b in enumerate(sets) if j != i), default=0.0))
    return best


# --- the pipeline -----------------------------------------------------------------------------

def _example(row: Row) -> dict:
    out = {**row.data, "code": row.code, **prompt_completion(row.data), "source": f"{row.file}:{row.line}"}
    if row.remapped_from:
        out["remapped_from"] = row.remapped_from
    return out


#: any ICD-10-CM-shaped token, for reading the code an uncurated answer meant ("The code is R05.9")
LOOSE_CODE = re.compile(r"\b[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?\b")


def intended_code(response: str) -> str | None:
    """The billable code a raw answer stands for, however it is written: a stale code becomes its successor.

    Only for sorting uncurated rows by code (chapter 4b trains on some codes): None when the answer holds
    no code that is, or maps to, a billable one.
    """
    from helpers import icd10

    found = LOOSE_CODE.search(response.upper())
    if found is None:
        return None
    reason, new = icd10.check(found.group())
    return None if reason else (new or found.group())


def uncurated_train(parsed: list[Row | Reject], splits: dict[str, list[Row]], held_out: tuple = ()) -> list[dict]:
    """Every readable raw row except the held-out phrasings and codes, with only PII scrubbed.

    This is what training "on everything we collected" looks like: duplicates,
    stale and invalid codes, answers in the wrong format and leaked test
    complaints included. PII is scrubbed even here: privacy is not a quality knob.
    Each row says which code its answer meant (``code``, see :func:`intended_code`), answer as written.
    """
    held = {phrasing_key(r.data["instruction"]) for name in ("val", "test", "fresh") for r in splits[name]}
    rows = []
    for item in parsed:
        if isinstance(item, Reject):
            continue
        original = json.loads(item.raw)  # as written: the rules above changed item.data in place
        instruction = scrub(normalise(original["instruction"]))[0]
        response = scrub(normalise(original["response"]))[0]
        code = intended_code(response)
        if phrasing_key(instruction) in held or code in held_out:
            continue
        data = {"instruction": instruction, "response": response}
        rows.append({**data, "code": code, **prompt_completion(data), "source": f"{item.file}:{item.line}"})
    return rows


def tokenizer_digest(tokenizer) -> str:
    """What of a tokenizer shapes curated rows: its chat template, special tokens and vocabulary.

    Rule 6 measures rows in its tokens and rule 7 renders them with its chat
    template, so splits curated for one model family are stale for another.
    """
    digest = hashlib.sha256()
    digest.update(str(tokenizer.chat_template).encode())
    digest.update(json.dumps([tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, len(tokenizer)]).encode())
    digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    return digest.hexdigest()[:16]


def fingerprint(inputs: list[Path], train_only: list[Path] = (), tokenizer=None, held_out: tuple = ()) -> str:
    """What curated splits are made from: the input files, the tokenizer, the prompt format and the curation rules.

    Each split row stores its prompt (system turn included) and passes the
    length and template checks for that prompt and tokenizer, so splits
    curated before a change to any of these are stale. The report records
    this digest and ``helpers.training.ensure_curated`` curates again when it
    differs. ``tokenizer=None`` stands for the embedded model's.
    """
    from importlib.metadata import version

    from helpers import icd10

    digest = hashlib.sha256()
    for path in inputs:
        digest.update(Path(path).read_bytes())
    for path in train_only:  # the same bytes as a train-only batch are other splits
        digest.update(b"\0train-only\0" + Path(path).read_bytes())
    # the prompt format and the rules, as code: these rules, how files are read, the code table's, the PII patterns
    for source in (chat.__file__, __file__, jsonl.__file__, icd10.__file__, pii.__file__):
        digest.update(Path(source).read_bytes())
    # the libraries the rules stand on: the ICD-10-CM release, phone-number formats, MinHash
    digest.update(" ".join(version(name) for name in ("simple_icd_10_cm", "phonenumbers", "datasketch")).encode())
    if tokenizer is None:
        from helpers.models import load_tokenizer

        tokenizer = load_tokenizer()
    digest.update(tokenizer_digest(tokenizer).encode())
    digest.update(json.dumps(sorted(held_out)).encode())
    return digest.hexdigest()[:16]


def curate(inputs: list[Path], out_dir: Path, seed: int = 0, tokenizer=None, max_length: int | None = None,
           near_dup_threshold: float = NEAR_DUP_THRESHOLD, train_only: list[Path] = (),
           held_out: tuple[str, ...] = ()) -> dict:
    """Run every rule over ``inputs`` and write the splits, rejects and report to ``out_dir``.

    ``train_only`` files are read after ``inputs`` and checked by the same rules; their rows go to train
    and leave val and test exactly as ``inputs`` alone make them (see the module's docstring).

    ``tokenizer``: the one the rows will be trained with (rules 6 and 7); None takes the active profile's model.

    ``held_out`` codes are kept out of training altogether, as if they arrived after the model was trained:
    their held-out rows go to ``fresh.jsonl`` and their training rows to ``fresh_train.jsonl`` (labelled
    examples a knowledge base may add later), and every other row lands where it would without them.
    """
    inputs, train_only = [Path(p) for p in inputs], [Path(p) for p in train_only]
    for path in {p.resolve() for p in inputs} & {p.resolve() for p in train_only}:
        raise CourseError(f"{file_name(path)}: given both as an input and as a train-only file; name it once")
    # rows are told apart by the name their file gets in the outputs, so two files must not share one
    main_names = {file_name(p) for p in inputs}
    for path in train_only:
        if file_name(path) in main_names:
            raise CourseError(f"{file_name(path)}: a train-only file named like an input; rename one")
    parsed: list[Row | Reject] = []  # every file read before the tokenizer loads: a bad file costs no wait
    for path in inputs:
        parsed += read_rows(path)
    later = frozenset(file_name(path) for path in train_only)
    for path in train_only:
        parsed += read_rows(path)
    if tokenizer is None:
        from helpers.config import get_profile
        from helpers.models import load_tokenizer

        tokenizer = load_tokenizer(get_profile().model_id)
    check_tokenizer(tokenizer)
    held_out = tuple(sorted(held_out))
    if held_out:
        from helpers import icd10

        unknown = [code for code in held_out if not icd10.is_billable(code)]
    if held_out and unknown:
        raise CourseError(f"held-out codes must be billable ICD-10-CM codes: {', '.join(unknown)}")
    rejects: list[Reject] = [item for item in parsed if isinstance(item, Reject)]
    rows: list[Row] = []
    pii: Counter = Counter()
    remapped: Counter = Counter()
    for row in (item for item in parsed if isinstance(item, Row)):                    # rules 2-4
        row.data = {key: normalise(value) for key, value in row.data.items()}
        reason = check_format(row) or check_code(row)
        if reason:
            rejects.append(reject(row, reason, f"code {row.code}" if row.code else None))
            continue
        if row.remapped_from:
            remapped[f"{row.remapped_from} -> {row.code}"] += 1
        pii.update(scrub_row(row))
        rows.append(row)

    rows, dropped = exact_duplicates(rows)                                            # rule 5
    rejects += dropped
    rows, dropped = conflicting_labels(rows, later)
    rejects += dropped
    rows, dropped, cross_code = near_duplicates(rows, near_dup_threshold)
    rejects += dropped

    for row in rows:                                                                  # rule 6
        row.tokens = token_length(prompt_completion(row.data), tokenizer)
    # the limit is measured on the main inputs only: a train-only batch must not move a held-out row
    lengths = [row.tokens for row in rows if row.file not in later]
    from_data = max_length is None and len(lengths) >= MIN_ROWS_FOR_LIMIT
    limit = max_length or (choose_max_length(lengths) if from_data else DEFAULT_MAX_LENGTH)
    kept: list[Row] = []
    for row in rows:
        if row.tokens > limit:
            rejects.append(reject(row, "too_long", f"{row.tokens} tokens > max_length {limit}"))
            continue
        problem = template_problem({**row.data, **prompt_completion(row.data)}, tokenizer)  # rule 7
        if problem:
            rejects.append(reject(row, problem))
        else:
            kept.append(row)

    splits = split([r for r in kept if r.file not in later], seed=seed)               # rule 8
    removed = decontaminate(splits)
    if later:
        # the batch is checked against the held-out rows on its own, after the main rows: it joins train
        # and cannot change what the main inputs alone make of any split
        batch = {"train": [r for r in kept if r.file in later], "val": splits["val"], "test": splits["test"]}
        removed += decontaminate(batch)
        splits["train"] += batch["train"]
    rejects += removed
    # codes held out of training: decided after the split, so every other row is where it would be without them
    splits["fresh"] = [r for name in ("val", "test") for r in splits[name] if r.code in held_out]
    splits["fresh_train"] = [r for r in splits["train"] if r.code in held_out]
    for name in ("train", "val", "test"):
        splits[name] = [r for r in splits[name] if r.code not in held_out]

    rejects.sort(key=lambda r: (r.file, r.line))
    uncurated = uncurated_train(parsed, splits, held_out)
    kept_rows = [row for split_rows in splits.values() for row in split_rows]
    if not kept_rows:
        first = rejects[0]
        raise CourseError(f"{', '.join(file_name(p) for p in [*inputs, *train_only])}: no row was kept "
                          f"({len(rejects)} rejected, the first at {first.file}:{first.line} as {first.reason}); "
                          "nothing written")
    report = {
        "inputs": [show(p) for p in inputs],
        "train_only_inputs": [show(p) for p in train_only],
        "input_rows": len(parsed),
        "kept": len(kept_rows),
        "rejected": len(rejects),
        "by_reason": dict(sorted(Counter(r.reason for r in rejects).items())),
        "remapped": dict(sorted(remapped.items())),
        "pii_scrubbed": dict(sorted(pii.items())),
        "near_duplicates": {"threshold": near_dup_threshold, "shingle_chars": SHINGLE,
                            "near_pairs_with_different_codes": cross_code},
        # min and median are the main inputs' (the rows the limit is chosen from), max_kept is every kept row's
        "tokens": {"max_length": limit, "chosen_from_data": from_data,
                   "min": min(lengths, default=0), "median": statistics.median(lengths) if lengths else 0,
                   "max_kept": max((r.tokens for r in kept_rows), default=0)},
        "chat_template": {"eos_token": tokenizer.eos_token, "pad_token": tokenizer.pad_token,
                          "rows_checked": len(kept) + sum(r.reason in ("special_token_in_text", "template_prefix_mismatch",
                                                                       "no_eos_after_response") for r in rejects)},
        "decontamination": {"ngram_words": DECONTAM_N, "min_overlap": DECONTAM_OVERLAP,
                            "removed_from_train": len(removed)},
        "splits": {name: len(split_rows) for name, split_rows in splits.items()},
        # what became of the train-only rows: how many were read, how many joined train, why the rest did not
        "train_only": {"rows": sum(1 for item in parsed if item.file in later),
                       "kept": sum(1 for name in ("train", "fresh_train") for row in splits[name] if row.file in later),
                       "held_out": sum(1 for row in splits["fresh_train"] if row.file in later),
                       "by_reason": dict(sorted(Counter(r.reason for r in rejects if r.file in later).items()))},
        "codes": len({row.code for row in kept_rows}),
        "held_out_codes": list(held_out),
        "uncurated_train_rows": len(uncurated),
        "tokenizer": tokenizer_digest(tokenizer),
        "fingerprint": fingerprint(inputs, train_only, tokenizer, held_out),
        # what ensure_curated passes again when it curates stale splits anew
        "settings": {"seed": seed, "max_length": max_length, "near_dup_threshold": near_dup_threshold,
                     "held_out": list(held_out)},
    }
    if report["input_rows"] != report["kept"] + report["rejected"]:
        raise AssertionError(f"rows lost: {report['input_rows']} read, {report['kept']} kept, {report['rejected']} rejected")
    write_outputs(out_dir, {**{f"{name}.jsonl": map(_example, split_rows) for name, split_rows in splits.items()},
                            "rejects.jsonl": (r.as_dict() for r in rejects), "train_uncurated.jsonl": uncurated},
                  report)
    return report


#: what a curation writes besides ``report.json``: ``helpers.training.ensure_curated`` takes a folder only with all
OUTPUT_FILES = ("train.jsonl", "val.jsonl", "test.jsonl", "fresh.jsonl", "fresh_train.jsonl", "rejects.jsonl",
                "train_uncurated.jsonl")


def write_outputs(out_dir: Path, files: dict[str, Iterable[dict]], report: dict) -> None:
    """Write the curated files, then the report that vouches for them, so a report never stands beside half a set.

    Every file is written in full under a temporary name first (``helpers.atomic``): a full disk or a kill
    while writing leaves the old set and its report as they were. The old ``report.json`` goes just before
    the first file is renamed into place, and the new one is written after the last: a run cut short
    between the renames leaves a folder without a report, which ``ensure_curated`` curates again.
    """
    out_dir = Path(out_dir)
    with writing(out_dir), contextlib.ExitStack() as stack:
        for name, rows in files.items():
            with writing(out_dir / name):
                fh = stack.enter_context(atomic_file(out_dir / name))
                dump_rows(rows, fh)
                fh.flush()
                os.fsync(fh.fileno())  # a full disk shows here, while every old file is still in place
        (out_dir / "report.json").unlink(missing_ok=True)
    with writing(out_dir / "report.json"):
        write_json(out_dir / "report.json", report)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m helpers.curate", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=readable_file, help="JSONL or JSON-array files")
    parser.add_argument("--out", required=True, type=output_folder, help="output directory")
    parser.add_argument("--seed", type=integer(0, SEED_MAX), default=0)
    parser.add_argument("--train-only", action="append", default=[], type=readable_file, metavar="FILE",
                        help="a later batch: its rows go to train only and leave val/test as the inputs make them "
                             "(repeatable)")
    parser.add_argument("--max-length", type=integer(1), default=None,
                        help="token limit per row (default: chosen from the measured distribution)")
    parser.add_argument("--hold-out", action="append", default=[], metavar="CODE",
                        help="a code kept out of training: its rows go to fresh.jsonl and fresh_train.jsonl "
                             "(repeatable)")
    parser.add_argument("--model", default=None,
                        help="the model whose tokenizer and chat template the rows are checked with "
                             "(default: the active profile's; 'embedded' for the course's own)")
    args = parser.parse_args(argv)
    tokenizer = None
    if args.model:
        from helpers.config import EMBEDDED_MODEL
        from helpers.models import load_tokenizer

        tokenizer = load_tokenizer(EMBEDDED_MODEL if args.model == "embedded" else args.model)
    report = curate(args.inputs, args.out, seed=args.seed, max_length=args.max_length, train_only=args.train_only,
                    tokenizer=tokenizer, held_out=tuple(args.hold_out))
    print(
        f"{report['input_rows']} rows read: {report['kept']} kept, {report['rejected']} rejected "
        f"-> {show(args.out)} (train {report['splits']['train']}, val {report['splits']['val']}, "
        f"test {report['splits']['test']}; max_length {report['tokens']['max_length']})"
    )
    return 0



def rejects_table(out_dir: Path, reasons: list[str] | None = None, width: int = 100, file: Path | None = None):
    """``rejects.jsonl`` as a DataFrame (raw text shortened to ``width``), optionally only some reasons or one file."""
    import pandas as pd

    columns = ["line", "reason", "detail", "raw"]
    table = pd.DataFrame(read_jsonl(Path(out_dir) / "rejects.jsonl"), columns=["file", *columns])
    if reasons:
        table = table[table["reason"].isin(reasons)]
    if file is not None:
        table = table[table["file"] == file_name(file)]
    table["raw"] = table["raw"].str.slice(0, width)
    return table[columns].fillna("")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
