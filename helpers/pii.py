"""Chapter 1, rule 4: find personal information in free text and replace it.

Policy: **scrub, then keep**. A complaint that mentions the patient's phone
number is still a good example of how people describe a sore throat; what must
not survive is the number itself. Each span found is replaced by a typed
placeholder (``[PHONE]``, ``[EMAIL]``, ``[DATE]``, ``[ID]``, ``[NAME]``), so the
row stays readable and a reviewer can see what was removed. The same scrubber
runs over the ``raw`` text of every reject and over the uncurated training set,
so no output of the pipeline holds PII verbatim (as far as these patterns find it; see "names" below).

What does the finding:

* phone numbers: Google's ``phonenumbers`` library (the maintained port of
  libphonenumber), which knows the numbering plans of every country;
* e-mail addresses, US social security numbers and calendar dates: regular
  expressions (no maintained offline library does these better; presidio and
  scrubadub wrap the same kind of patterns but need an NER model download for
  names, which this course cannot fetch offline);
* names: **context patterns only** ("my name is ...", "this is ...", "Mr./Dr.
  ...", "Name: ..."). A name dropped into a sentence with no cue ("Maria has a
  cough") is not found. That is the honest limit of a pattern scrubber; a team
  handling real patient text should add an NER model (for example presidio with
  a spaCy pipeline) on top of these rules.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

PLACEHOLDERS = {"phone": "[PHONE]", "email": "[EMAIL]", "date": "[DATE]", "id": "[ID]", "name": "[NAME]"}

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
MRN = re.compile(r"\b(?:MRN|medical record(?: number)?|patient id)\s*[:#]?\s*[A-Z0-9-]{4,}\b", re.IGNORECASE)
_MONTHS = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
           r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
# A full calendar date (day, month and year) identifies a person far more than
# "since Tuesday" does, so only complete dates are treated as PII.
DATE = re.compile(
    r"\b(?:\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)\d{2}"  # 03/14/1982, 14.03.1982
    r"|(?:19|20)\d{2}-\d{1,2}-\d{1,2}"  # 1982-03-14
    rf"|{_MONTHS}\.? \d{{1,2}}(?:st|nd|rd|th)?,? (?:19|20)\d{{2}}"  # March 14, 1982
    rf"|\d{{1,2}}(?:st|nd|rd|th)? (?:of )?{_MONTHS}\.?,? (?:19|20)\d{{2}})\b",  # 14 March 1982
    re.IGNORECASE,
)
# Letters of any alphabet ("José", "Łukasz", "O'Brien", "McDonald"), ending at a word boundary;
# whether a word is capitalised is checked in code, since re has no class for capital letters.
_NAME = r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*(?![\w'])"
_FULL_NAME = rf"{_NAME}(?: [^\W\d_]\.)?(?: {_NAME})?"
# Cue words are matched case-insensitively; the name itself must be capitalised.
# Strong cues introduce a name by definition, so one word is enough; weak cues
# ("I'm", "this is") precede ordinary words too, so they need a first and a last name.
NAME_CUES = [
    re.compile(rf"(?i:\bmy name is|\bmy name's|\bname\s*:|\bsigned,?|\bregards,?|\b(?:patient|pt)\s*:)\s*({_FULL_NAME})"),
    re.compile(rf"(?i:\b(?:mr|mrs|ms|miss|dr|doctor)\.?)\s+({_NAME}(?: {_NAME})?)"),
    re.compile(rf"(?i:\bthis is|\bi am|\bi'm|\bit's)\s+({_NAME} {_NAME})"),
    re.compile(rf"({_NAME} {_NAME})(?= here\b)"),  # "thanks, Dana Whitfield here"
]
# Capitalised words a cue may precede that are not names ("I'm Not sure", "this is Monday").
NOT_NAMES = frozenset(
    "I Im It The This That Not So Just Really Very Still Also Here There Now Today Tomorrow Yesterday Monday Tuesday "
    "Wednesday Thursday Friday Saturday Sunday Worried Sorry Back Home Pregnant Diabetic Allergic Feeling Having "
    "Getting Going Trying Told Taking Having Sure Fine Okay Ok Well Better Worse Tired Sick New".split()
)


@dataclass(frozen=True)
class Span:
    kind: str
    start: int
    end: int


# Numbers written without a country code are read in each of these numbering
# plans; "+44 20 ..." style numbers are found whatever the list.
PHONE_REGIONS = ("US", "GB", "IN", "AU")


def find_pii(text: str) -> list[Span]:
    """Non-overlapping PII spans in ``text``, in order."""
    spans: list[Span] = []
    for region in PHONE_REGIONS:
        spans += [Span("phone", m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(text, region)]
    for kind, pattern in (("email", EMAIL), ("id", SSN), ("id", MRN), ("date", DATE)):
        spans += [Span(kind, m.start(), m.end()) for m in pattern.finditer(text)]
    for weak, pattern in zip((False, False, True, True), NAME_CUES):
        for match in pattern.finditer(text):
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
    names = {text[s.start:s.end] for s in spans if s.kind == "name"}
    for part in {word for name in names for word in name.split() if len(word) >= 3}:
        spans += [Span("name", m.start(), m.end()) for m in re.finditer(rf"\b{re.escape(part)}\b", text)]
    return _non_overlapping(spans)


def _non_overlapping(spans: list[Span]) -> list[Span]:
    """Longest span wins where two overlap (a date inside an ID, a phone inside an e-mail)."""
    chosen: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -(s.end - s.start))):
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
