# Two commands for a newcomer:
#   make course   run the whole course on the embedded model (profile auto-detected; on a CPU, two chapters at a time)
#   make test     unit tests + every notebook and solution executed under nbval (ci profile), side by side
# Both set up .venv first; a second run skips what is already installed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.course-installed

# Tests and the default run never touch the Hugging Face Hub.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
NBVAL   := --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg --nbval-cell-timeout 1800

.PHONY: course test unit notebooks setup clean badges eval-full bench export-gguf

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	@touch $(STAMP)

course: $(STAMP)
	$(OFFLINE) PYTHONPATH=$(CURDIR) $(PY) -m helpers.course

# The tests write into outputs/test, so a course run in outputs/ survives `make test` untouched.
TESTENV := $(OFFLINE) COURSE_PROFILE=ci COURSE_OUTPUTS=$(CURDIR)/outputs/test PYTHONPATH=$(CURDIR)
# The chapters run beside the unit tests, one thread each on a 2-core machine (each in its own outputs folder):
# most unit tests wait on one thread or on processes they start, so side by side takes about half the time.
# When the unit tests end, every chapter that starts afterwards takes all the cores (helpers.notebook.use_freed_cores).
NBTHREADS := outputs/test-notebooks.threads
NBENV   := $(OFFLINE) COURSE_PROFILE=ci COURSE_OUTPUTS=$(CURDIR)/outputs/test-notebooks PYTHONPATH=$(CURDIR) \
	COURSE_THREADS_FILE=$(CURDIR)/$(NBTHREADS)
NBLOG   := outputs/test-notebooks.log

test: $(STAMP)
	@mkdir -p outputs && rm -f $(NBTHREADS)
	@echo "chapters and solutions under nbval, beside the unit tests: their report follows the unit tests' ($(NBLOG))"
	@OMP_NUM_THREADS=1 $(NBENV) $(PY) -m pytest notebooks solutions $(NBVAL) --durations=10 -p no:cacheprovider \
		> $(NBLOG) 2>&1 & chapters=$$!; \
	OMP_NUM_THREADS=1 $(TESTENV) $(PY) -m pytest tests --durations=10; units=$$?; \
	nproc > $(NBTHREADS); wait $$chapters; notebooks=$$?; cat $(NBLOG); \
	echo "unit tests: exit $$units; chapters and solutions: exit $$notebooks"; \
	test $$units -eq 0 && test $$notebooks -eq 0

unit: $(STAMP)
	$(TESTENV) $(PY) -m pytest tests

notebooks: $(STAMP)  ## maintainers: refresh the outputs stored in notebooks/ from a real run
	$(OFFLINE) PYTHONPATH=$(CURDIR) $(PY) -m helpers.course --inplace

# Not part of `make test`: the course's training recipe against TRL's defaults, lever by lever, full FT vs LoRA vs
# QLoRA (outputs/bench.json and a table; about 15-25 min on 2 cores, each setup in its own process, at low priority).
# BENCH_ARGS passes options on, e.g. BENCH_ARGS="--threads 1" on a machine shared with other work.
bench: $(STAMP)
	$(OFFLINE) PYTHONPATH=$(CURDIR) nice -n 10 $(PY) -m helpers.bench $(BENCH_ARGS)

badges: $(STAMP)  ## point every badge, first cell and binder/ at a fork: make badges REPO=owner/name
	PYTHONPATH=$(CURDIR) $(PY) -m helpers.publish $(REPO)

# All 14,042 MMLU questions on chapter 4's adapter and on its base model (22-46 min per model on 2 cores; a GPU in
# minutes).
eval-full: $(STAMP)
	$(OFFLINE) PYTHONPATH=$(CURDIR) $(PY) -m helpers.mmlu --benchmark mmlu_full

# Not part of `make course` or `make test`: chapter 7's merged model as GGUF (f16, q8_0, q4_k_m) for llama.cpp and
# Ollama, each file's answers on the test split checked against the merged model's (helpers/gguf_export.py).
# pip compiles llama.cpp for llama-cpp-python first (requirements-gguf.txt), the once, a few minutes on 2 cores.
GGUF_CMAKE := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
	-DLLAMA_BUILD_SERVER=OFF
export-gguf: $(STAMP)
	CMAKE_ARGS="$(GGUF_CMAKE)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install --quiet -r requirements-gguf.txt
	$(OFFLINE) PYTHONPATH=$(CURDIR) $(PY) -m helpers.gguf_export $(GGUF_ARGS)

clean:
	rm -rf outputs

# Maintainers, before moving the pins: the API surface and unit tests on the newest releases of the libraries the
# course reaches into, in a throwaway venv (standard library only, so no .venv needed); see helpers/upgrade_check.py.
.PHONY: upgrade-check
upgrade-check:
	PYTHONPATH=$(CURDIR) $(PYTHON) -m helpers.upgrade_check
