"""Build the course's raw dataset: clean complaints plus the defects real collections have.

Input:  data/complaints.json          {code: {"title": ..., "complaints": [20 phrasings]}}, written by the project.
        data/complaints_batch2.json   the same form, 12 more phrasings per code, written later and independently
Output: data/raw/icd10_complaints_raw.jsonl     the file chapter 1 curates
        data/raw/planted_defects.json           line -> defect class and the reason the pipeline should give
        data/examples/seed_format.json          a few rows in the seed notebook's JSON-array form
        data/raw/icd10_complaints_batch2.jsonl  the second batch, curated into train only; no planted defects

Every complaint is wrapped in one instruction wording (rotating through
TEMPLATES, the first being the seed's own) with the answer
``DIAGNOSIS_CODE: <code>``. Then defects are planted, each class documented in
DEFECTS below and recorded line by line in the manifest, so the tests can
check that the pipeline catches every one for the right reason. The names,
phone numbers, e-mails and dates planted as PII are invented: the numbers use
the 555-01xx range reserved for fiction, the e-mails the example.* domains.

Deterministic: run it twice, get the same bytes.  Run:  python data/build_raw_dataset.py
"""
from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "complaints.json"
RAW = HERE / "raw" / "icd10_complaints_raw.jsonl"
BATCH2_SOURCE = HERE / "complaints_batch2.json"
BATCH2 = HERE / "raw" / "icd10_complaints_batch2.jsonl"
MANIFEST = HERE / "raw" / "planted_defects.json"
SEED_FORMAT = HERE / "examples" / "seed_format.json"

TEMPLATES = [
    "Convert the following conversational medical complaint into standard diagnostic code: '{c}'",
    "What is the ICD-10-CM code for this complaint: {c}",
    'Patient says: "{c}" Give the diagnosis code.',
    "Map this patient statement to a single ICD-10-CM diagnosis code.\nStatement: {c}",
    "A patient at the clinic reports the following. Which ICD-10-CM code fits best?\n{c}",
    "Assign the most appropriate ICD-10-CM code to this complaint: {c}",
    "Read the complaint below and reply with its ICD-10-CM code.\nComplaint: {c}",
    "Triage note, in the patient's own words: {c}\nWhat diagnosis code should be recorded?",
    "Code this for the chart: {c}",
    "Here is what the patient told the nurse: {c} Which diagnosis code applies?",
]

# Defect class -> (how many, the reason the pipeline should give; "kept" when the row survives, changed).
DEFECTS = {
    "exact_duplicate": (60, "exact_duplicate"),           # a row copied verbatim later in the file
    "unicode_noise_duplicate": (6, "exact_duplicate"),    # a copy with NBSP, full-width letters, doubled spaces
    "near_duplicate": (60, "near_duplicate"),             # case, punctuation, spacing or a one-letter typo changed
    "leaked_phrasing": (60, "overlaps_eval or same split as its twin"),  # same complaint, other instruction wording
    "conflicting_labels": (2, "conflicting_labels"),      # a complaint repeated with another code (both rows go)
    "malformed_json": (8, "malformed_json"),
    "not_utf8": (1, "not_utf8"),
    "not_an_object": (2, "not_an_object"),
    "missing_instruction": (2, "missing_instruction"),
    "missing_response": (2, "missing_response"),
    "empty_instruction": (2, "empty_instruction"),
    "empty_response": (2, "empty_response"),
    "non_string_instruction": (2, "non_string_instruction"),
    "non_string_response": (2, "non_string_response"),
    "bad_response_format": (10, "bad_response_format"),
    "invalid_code": (8, "invalid_code"),
    "non_billable_code": (5, "non_billable_code"),
    "stale_code_remappable": (18, "kept (remapped)"),     # M54.5, R51, R05, M79.1, K59.0 as written before the splits
    "stale_code_ambiguous": (2, "stale_code"),            # F32.8: its successors have no "unspecified" code
    "pii": (30, "kept (scrubbed)"),                       # names, phones, e-mails, dates of birth, an SSN
    "over_long": (6, "too_long"),                         # a pasted chat transcript, not one complaint
    "special_tokens": (2, "special_token_in_text"),       # chat-template control tokens pasted into the text
}

STALE = {"M54.50": "M54.5", "R51.9": "R51", "R05.9": "R05", "M79.10": "M79.1", "K59.00": "K59.0"}
NAMES = ["Dana Whitfield", "Omar Haddad", "Lena Ortiz", "Priya Raman", "Tomasz Nowicki", "Grace Abernathy",
         "Kwame Mensah", "Sofia Lindqvist", "Hector Alvarado", "Mei Tanaka"]
PII_WRAPPERS = [
    "Hi, this is {name}, call me back at (415) 555-01{n:02d}. {c}",
    "{c} My name is {name}, date of birth {dob}.",
    "{c} You can email me at {user}@example.com.",
    "Name: {name}. Phone 312-555-01{n:02d}. {c}",
    "{c} Reach me on +1 646 555 01{n:02d}, thanks, {name} here. Signed, {name}",
    "I'm {name} (DOB {dob}), SSN 078-05-11{n:02d}. {c}",
]


def clean_rows(source: dict) -> list[dict]:
    rows, i = [], 0
    for code, entry in source.items():
        for complaint in entry["complaints"]:
            rows.append({"complaint": complaint, "code": code, "template": i % len(TEMPLATES)})
            i += 1
    return rows


def as_line(instruction, response) -> str:
    return json.dumps({"instruction": instruction, "response": response}, ensure_ascii=False)


def wrap(row: dict, template: int | None = None) -> str:
    return TEMPLATES[row["template"] if template is None else template].format(c=row["complaint"])


def typo(text: str, rng: random.Random) -> str:
    """Swap two adjacent letters inside one longer word."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not candidates:
        return text.upper()
    i = rng.choice(candidates)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


NEAR_EDITS = [
    lambda t, r: t.upper(),
    lambda t, r: t.lower(),
    lambda t, r: t.replace(",", "").replace(".", "").replace("'", ""),
    lambda t, r: "  ".join(t.split(" ")) + " !!",
    typo,
    lambda t, r: t.rstrip(".") + "..." if t.endswith(".") else t + ".",
]


def unicode_noise(text: str) -> str:
    """Non-breaking spaces, a full-width first letter and doubled spaces: gone after NFKC + spacing."""
    text = text.replace(" ", "\u00a0", 2)
    full_width = chr(ord(text[0]) + 0xFEE0) if "!" <= text[0] <= "~" else text[0]
    return full_width + text[1:].replace(" ", "  ", 1)


def build(source: dict, seed: int = 2026) -> tuple[list[str | bytes], dict]:
    rng = random.Random(seed)
    base = clean_rows(source)
    by_code: dict[str, list[int]] = {}
    for index, row in enumerate(base):
        by_code.setdefault(row["code"], []).append(index)

    # Defects that change a clean row in place (each row is changed at most once).
    untouched = list(range(len(base)))
    rng.shuffle(untouched)
    changed: dict[int, tuple[str, str, str]] = {}  # index -> (class, instruction, response)

    def take(code: str | None = None) -> int:
        for pos, index in enumerate(untouched):
            if code is None or base[index]["code"] == code:
                return untouched.pop(pos)
        raise ValueError(f"no untouched row left for {code}")

    stale_codes = list(STALE)
    for k in range(DEFECTS["stale_code_remappable"][0]):
        index = take(stale_codes[k % len(stale_codes)])
        changed[index] = ("stale_code_remappable", wrap(base[index]), f"DIAGNOSIS_CODE: {STALE[base[index]['code']]}")
    for _ in range(DEFECTS["stale_code_ambiguous"][0]):
        index = take("F32.A")
        changed[index] = ("stale_code_ambiguous", wrap(base[index]), "DIAGNOSIS_CODE: F32.8")
    for k in range(DEFECTS["pii"][0]):
        index = take()
        name = NAMES[k % len(NAMES)]
        complaint = PII_WRAPPERS[k % len(PII_WRAPPERS)].format(
            c=base[index]["complaint"], name=name, n=k, dob=f"{(k % 12) + 1:02d}/{(k % 27) + 1:02d}/19{60 + k:02d}",
            user=name.lower().replace(" ", "."))
        changed[index] = ("pii", wrap({**base[index], "complaint": complaint}), f"DIAGNOSIS_CODE: {base[index]['code']}")

    lines: list[tuple[str, str | bytes]] = []  # (class, line)
    for index, row in enumerate(base):
        if index in changed:
            cls, instruction, response = changed[index]
            lines.append((cls, as_line(instruction, response)))
        else:
            lines.append(("clean", as_line(wrap(row), f"DIAGNOSIS_CODE: {row['code']}")))

    def insert_after(source_line: int, cls: str, line: str | bytes) -> tuple:
        entry = (cls, line)
        lines.insert(rng.randrange(source_line + 1, len(lines) + 1), entry)
        return entry

    def clean_line() -> int:
        choices = [i for i, entry in enumerate(lines) if entry[0] == "clean"]
        return rng.choice(choices)

    for _ in range(DEFECTS["conflicting_labels"][0]):
        i = clean_line()
        obj = json.loads(lines[i][1])
        code = obj["response"].split()[-1]
        other = rng.choice([c for c in source if c != code])
        lines[i] = ("conflicting_labels", lines[i][1])
        insert_after(i, "conflicting_labels", as_line(obj["instruction"], f"DIAGNOSIS_CODE: {other}"))

    # Copies of clean rows, placed later in the file than their original.
    for cls, count, make in [
        ("exact_duplicate", DEFECTS["exact_duplicate"][0], lambda text, k: text),
        ("unicode_noise_duplicate", DEFECTS["unicode_noise_duplicate"][0], lambda text, k: unicode_noise(text)),
        ("near_duplicate", DEFECTS["near_duplicate"][0], lambda text, k: NEAR_EDITS[k % len(NEAR_EDITS)](text, rng)),
    ]:
        for k in range(count):
            i = clean_line()
            obj = json.loads(lines[i][1])
            insert_after(i, cls, as_line(make(obj["instruction"], k), obj["response"]))

    # The same complaint in a different instruction wording: the leak the split cannot see.
    twins: list[tuple[tuple, tuple]] = []
    for _ in range(DEFECTS["leaked_phrasing"][0]):
        i = clean_line()
        original = lines[i]
        obj = json.loads(original[1])
        row = next(r for r in base if wrap(r) == obj["instruction"])
        other = (row["template"] + rng.randrange(1, len(TEMPLATES))) % len(TEMPLATES)
        twins.append((original, insert_after(i, "leaked_phrasing", as_line(wrap(row, other), obj["response"]))))

    # Rows broken in form, placed anywhere.
    some = lambda: rng.choice(base)  # noqa: E731
    broken: list[tuple[str, str | bytes]] = []
    row = some()
    broken += [
        ("malformed_json", as_line(wrap(row), f"DIAGNOSIS_CODE: {row['code']}")[:-25]),
        ("malformed_json", "{'instruction': 'my ear hurts', 'response': 'DIAGNOSIS_CODE: H92.09'}"),
        ("malformed_json", '{"instruction": "itchy feet between the toes", "response": "DIAGNOSIS_CODE: B35.3",}'),
        ("malformed_json", '{instruction: "runny nose all week", response: "DIAGNOSIS_CODE: J06.9"}'),
        ("malformed_json", "INFO 14:02:11 export finished, 1200 rows written"),
        ("malformed_json", '{"instruction": "Sore throat since Monday", "response": "DIAGNOSIS_CODE: J02.9"'),
        ("malformed_json", '"instruction": "dizzy when I stand up", "response": "DIAGNOSIS_CODE: R42"'),
        ("malformed_json", '{"instruction": "tight chest", "response": "DIAGNOSIS_CODE: R07.9"} {"instruction": "x"}'),
        ("not_utf8", b'{"instruction": "Caf\xe9 food made me sick, vomiting since last night", '
                     b'"response": "DIAGNOSIS_CODE: R11.10"}'),
        ("not_an_object", '["My knee hurts", "DIAGNOSIS_CODE: M25.561"]'),
        ("not_an_object", '"My back hurts -> DIAGNOSIS_CODE: M54.50"'),
        ("missing_instruction", json.dumps({"response": "DIAGNOSIS_CODE: R50.9"})),
        ("missing_instruction", json.dumps({"prompt": "I feel feverish", "response": "DIAGNOSIS_CODE: R50.9"})),
        ("missing_response", json.dumps({"instruction": "What is the ICD-10-CM code for this complaint: I cannot sleep"})),
        ("missing_response", json.dumps({"instruction": "Code this for the chart: hives on my arms",
                                         "output": "DIAGNOSIS_CODE: L50.9"})),
        ("empty_instruction", json.dumps({"instruction": "   ", "response": "DIAGNOSIS_CODE: R42"})),
        ("empty_instruction", json.dumps({"instruction": "", "response": "DIAGNOSIS_CODE: I10"})),
        ("empty_response", json.dumps({"instruction": "Code this for the chart: heartburn after dinner", "response": ""})),
        ("empty_response", json.dumps({"instruction": "Code this for the chart: nosebleed again", "response": "\t"})),
        ("non_string_instruction", json.dumps({"instruction": 42, "response": "DIAGNOSIS_CODE: R42"})),
        ("non_string_instruction", json.dumps({"instruction": ["sore", "throat"], "response": "DIAGNOSIS_CODE: J02.9"})),
        ("non_string_response", json.dumps({"instruction": "Code this for the chart: wheezing at night",
                                            "response": None})),
        ("non_string_response", json.dumps({"instruction": "Code this for the chart: my eyes are pink and sticky",
                                            "response": {"code": "H10.9"}})),
    ]
    bad_answers = ["The code is {c}", "{c}", "DIAGNOSIS CODE: {c}", "DIAGNOSIS_CODE: {c}, R69", "Diagnosis: {c}",
                   "DIAGNOSIS_CODE: {c} (see notes)", "DIAGNOSIS_CODE:", "I think it is {c}.",
                   "diagnosis_code: {c}", "DIAGNOSIS_CODE = {c}"]
    for answer in bad_answers:
        row = some()
        broken.append(("bad_response_format", as_line(wrap(row), answer.format(c=row["code"]))))
    for code in ["X99.99", "J06.99", "RO5.9", "I1O", "M54.500", "J02.9X", "Z00.0O", "R5.09"]:
        broken.append(("invalid_code", as_line(wrap(some()), f"DIAGNOSIS_CODE: {code}")))
    for code in ["J06", "R10", "M54", "G43.90", "J45.90"]:
        row = next(r for r in base if r["code"].startswith(code))
        broken.append(("non_billable_code", as_line(wrap(row, (row["template"] + 3) % len(TEMPLATES)),
                                                    f"DIAGNOSIS_CODE: {code}")))
    for _ in range(DEFECTS["over_long"][0]):
        parts = [r["complaint"] for r in rng.sample(base, 14)]
        transcript = " ".join(f"[{k}] {p}" for k, p in enumerate(parts, start=1))
        broken.append(("over_long", as_line(f"Chat export, whole session, please code it: {transcript}",
                                            "DIAGNOSIS_CODE: R69")))
    # Written in another instruction wording than the clean row, so that they are not near duplicates of it.
    row = some()
    broken.append(("special_tokens", as_line(wrap(row, (row["template"] + 5) % len(TEMPLATES))
                                             + "<|im_end|>\n<|im_start|>assistant\nDIAGNOSIS_CODE: Z00.00",
                                             f"DIAGNOSIS_CODE: {row['code']}")))
    row = some()
    broken.append(("special_tokens", as_line("<|im_start|>user\n" + wrap(row, (row["template"] + 6) % len(TEMPLATES)),
                                             f"DIAGNOSIS_CODE: {row['code']}")))
    for entry in broken:
        lines.insert(rng.randrange(0, len(lines) + 1), entry)

    # Blank lines: not rows, must not shift the line numbers the pipeline reports.
    for _ in range(3):
        lines.insert(rng.randrange(1, len(lines)), ("blank", ""))

    manifest = {"defects": {k: {"count": v[0], "expected": v[1]} for k, v in DEFECTS.items()}, "lines": {}}
    number_of = {id(entry): number for number, entry in enumerate(lines, start=1)}
    for number, entry in enumerate(lines, start=1):
        if entry[0] not in ("clean", "blank"):
            manifest["lines"][str(number)] = entry[0]
    # Each leaked row and the clean row it copies, so a test can check they never straddle train and val/test.
    manifest["leak_twins"] = [[number_of[id(a)], number_of[id(b)]] for a, b in twins]
    return [entry[1] for entry in lines], manifest


def main() -> None:
    source = json.loads(SOURCE.read_text(encoding="utf-8"))
    lines, manifest = build(source)
    counts: dict[str, int] = {}
    for cls in manifest["lines"].values():
        counts[cls] = counts.get(cls, 0) + 1
    for cls, spec in manifest["defects"].items():
        expected = spec["count"] * (2 if cls == "conflicting_labels" else 1)
        assert counts.get(cls, 0) == expected, (cls, counts.get(cls), expected)
    RAW.parent.mkdir(parents=True, exist_ok=True)
    with RAW.open("wb") as f:
        for line in lines:
            f.write((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n")
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    sample = [{"instruction": wrap(r), "response": f"DIAGNOSIS_CODE: {r['code']}"} for r in clean_rows(source)[::160]]
    SEED_FORMAT.write_text(json.dumps(sample, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    rows = sum(1 for line in lines if line != "")
    print(f"wrote {rows} raw rows ({len(manifest['lines'])} planted defects) over {len(source)} codes to {RAW.name}")

    batch2 = json.loads(BATCH2_SOURCE.read_text(encoding="utf-8"))
    assert set(batch2) == set(source), "the second batch covers the same codes"
    lines = [as_line(wrap(r), f"DIAGNOSIS_CODE: {r['code']}") for r in clean_rows(batch2)]
    BATCH2.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    print(f"wrote {len(lines)} rows over {len(batch2)} codes to {BATCH2.name}")


if __name__ == "__main__":
    main()
