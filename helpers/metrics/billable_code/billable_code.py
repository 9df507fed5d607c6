"""Billable-code validity of predicted codes, as a local `evaluate` module.

A fine-tuned model can write a code in perfect format that does not exist, or
that is a category header no claim can carry. This metric counts the
predicted codes that are billable (leaves) in the April-2026 ICD-10-CM table
shipped by ``simple-icd-10-cm``; a missing prediction counts as not billable.
"""
import datasets
import evaluate
import simple_icd_10_cm as icd

_DESCRIPTION = "Share of predicted ICD-10-CM codes that exist and are billable."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str or None): codes extracted from model answers.
Returns:
    billable_rate (float): share of billable codes, in [0, 1].
"""


def is_billable(code):
    code = (code or "").strip().upper()
    # a childless block such as "C00-C96" counts as a leaf in the table, but is no code
    return bool(code) and icd.is_valid_item(code) and not icd.is_chapter_or_block(code) and icd.is_leaf(code)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BillableCode(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(self, predictions):
        if not predictions:
            return {"billable_rate": 0.0}
        return {"billable_rate": sum(is_billable(p) for p in predictions) / len(predictions)}
