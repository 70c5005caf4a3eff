# Gaussian Heads — the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)

.PHONY: setup test demo extension bench clean

setup: $(STAMP)

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (bpy 5.0.1 is built for it); set PYTHON=/path/to/python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

test: setup
	$(PY) -m pytest

demo: setup
	$(PY) tools/demo.py

# `make extension` builds every platform; `make extension PLATFORM=linux-x64` just one.
extension: setup
	$(PY) tools/build_extension.py $(if $(PLATFORM),--platform $(PLATFORM))

bench: setup
	$(PY) -m engine bench render
	$(PY) -m engine bench pose

clean:
	rm -rf out dist wheels/*.whl
