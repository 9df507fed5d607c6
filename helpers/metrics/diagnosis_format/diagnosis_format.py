"""Format compliance of model answers, as a local `evaluate` module.

An answer complies when it is exactly ``DIAGNOSIS_CODE: <code>`` with a
well-formed ICD-10-CM code (a letter, two characters, optionally a dot and up
to four more), surrounding whitespace aside. Whether the code is *right* or
even *exists* is for the exact-match and billable-code metrics: this one asks
only whether a program could read the answer.
"""
import re

import datasets
import evaluate

ANSWER = re.compile(r"^DIAGNOSIS_CODE:\s*[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?$")

_DESCRIPTION = "Share of answers that are exactly 'DIAGNOSIS_CODE: <code>'."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): raw model answers.
Returns:
    format_compliance (float): share of answers in the format, in [0, 1].
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DiagnosisFormat(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(self, predictions):
        if not predictions:
            return {"format_compliance": 0.0}
        ok = sum(bool(ANSWER.match((p or "").strip())) for p in predictions)
        return {"format_compliance": ok / len(predictions)}
