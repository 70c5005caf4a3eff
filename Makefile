# Gaussian Heads — the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
LAM_WEB := tools/lam_web/node_modules/.package-lock.json

.PHONY: setup test demo extension bench clean

setup: $(STAMP)

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (bpy 5.0.1 is built for it); set PYTHON=/path/to/python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

test: setup $(LAM_WEB)
	$(PY) -m pytest

# tests/engine/test_lam_web.py plays our LAM zip in LAM's web renderer: the npm packages pinned in
# tools/lam_web (installed when npm is present; without them, or without chromium, the test skips).
$(LAM_WEB): tools/lam_web/package-lock.json
	@if command -v npm >/dev/null; then (cd tools/lam_web && npm ci --no-audit --no-fund --loglevel=error) \
		|| echo "npm ci failed in tools/lam_web: the LAM web check will skip"; \
	else echo "npm not found: the LAM web check (tests/engine/test_lam_web.py) will skip"; fi

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
