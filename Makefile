# Two commands for users:  `make lab` (set up, then open the kit)  and  `make test` (set up, then run every test).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The offline teacher the lab installs: qwen2.5-coder-1.5b (1.1 GB, can teach) or smollm2-135m (100 MB, for < 3 GB RAM).
LOCAL_MODEL ?= qwen2.5-coder-1.5b
# llama-cpp-python is built from source; these flags give a build that runs on any x86-64 CPU (about 7 minutes, once).
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF
# The book: BOOK_PATH if set, else data/pg1342.txt, else the copy CI keeps beside the checkout.
export BOOK_PATH ?= $(abspath $(firstword $(wildcard data/pg1342.txt ../shared/data/pg1342.txt)))

.PHONY: setup lab test test-fast course clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

lab: setup
	$(BIN)/python -m lecture_utils teacher install $(LOCAL_MODEL)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# The suite, then the committed notebooks under nbval on the recorded (replay) teacher, in a run directory of their own.
test: setup
	$(BIN)/python -m lecture_utils teacher install smollm2-135m
	$(BIN)/python -m pytest
	rm -rf runs/nbval
	KIT_RUN_DIR=$(CURDIR)/runs/nbval TEACHER=replay CURATION_DECISIONS=$(CURDIR)/data/demo_decisions.jsonl \
		$(BIN)/python -m pytest --nbval-lax notebooks

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not browser"

course: setup
	$(BIN)/python -m lecture_utils run-course --teacher replay --out runs/course

clean:
	rm -rf $(VENV) runs slides/build test-artifacts
