"""Exact match of ICD-10-CM codes, as a local `evaluate` module.

`evaluate.load("exact_match")` fetches its script from the Hugging Face Hub,
which the course cannot rely on (CI and the default run are offline), so the
course ships its metrics as local modules: `evaluate.load(<this directory>)`.

A prediction counts when the code it contains equals the reference code.
Codes are compared without surrounding whitespace and case-insensitively;
a prediction with no code in it (``None`` or empty) is wrong.
"""
import datasets
import evaluate

_DESCRIPTION = "Share of predictions whose ICD-10-CM code equals the reference code."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str or None): codes extracted from model answers.
    references (list of str): gold codes.
Returns:
    exact_match (float): share of exact matches, in [0, 1].
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DiagnosisExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        if not references:
            return {"exact_match": 0.0}
        hits = sum(
            (p or "").strip().upper() == r.strip().upper() and bool((p or "").strip())
            for p, r in zip(predictions, references)
        )
        return {"exact_match": hits / len(references)}
