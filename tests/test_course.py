import helpers.course as course
from helpers.config import get_profile


def test_the_course_converts_the_model_before_the_first_notebook(monkeypatch, capsys):
    # Stored notebook outputs must not depend on whether the model cache existed when a notebook ran.
    events = []
    monkeypatch.setattr(course, "base_model_dir", lambda model_id: events.append(("convert", model_id)))
    monkeypatch.setattr(course, "execute", lambda path, out: events.append(("run", path.name)) or 0.0)
    monkeypatch.setattr(course, "summary", lambda: "")
    assert course.main(["--only", "01", "02"]) == 0
    assert events == [("convert", get_profile().model_id), ("run", "01_curation.ipynb"),
                      ("run", "02_quantized_loading.ipynb")]
    assert "running 01_curation.ipynb" in capsys.readouterr().out


def test_every_notebook_set_up_converts_the_model_before_any_checked_cell(monkeypatch):
    # `pytest notebooks` alone, on a clone without the model cache, must not print the conversion in a checked cell.
    import helpers.models
    from helpers.notebook import setup

    converted = []
    monkeypatch.setattr(helpers.models, "base_model_dir", lambda model_id: converted.append(model_id))
    profile = setup()
    assert converted == [profile.model_id]
