# The two commands a new user needs: `make lab` and `make test`. Both go through `make install`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.install-stamp
PORT   ?= 8888

.PHONY: install lab test test-fast release bench site site-instructor clean

install: $(STAMP)

# Re-installs only when the project's requirements change; `touch pyproject.toml` forces it.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,site]'
	@touch $(STAMP)

# JupyterLab refuses to start as root (Docker, cloud VMs) without --allow-root: pass it then.
# jupyter-config/ holds the course's JupyterLab defaults (no "official Jupyter news?" pop-up).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: install
	@echo "Starting JupyterLab on notebooks/ (the URL with its token is printed below)."
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter-config$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" $(VENV)/bin/jupyter lab --notebook-dir=notebooks \
		--port=$(PORT) --no-browser $(ALLOW_ROOT)

# JOBS pytest-xdist workers (2: CI's cores); a notebook's cells and a test file's tests stay
# together on one worker (--dist loadscope), in order.
JOBS ?= 2
test: install
	$(PY) -m pytest -ra $(if $(filter-out 1,$(JOBS)),-n $(JOBS) --dist loadscope) tests solutions --nbval-lax --nbval-cell-timeout=300

test-fast: install
	$(PY) -m pytest -ra -m "not slow" tests

release: install
	$(VENV)/bin/course release

# The course as a website (no network, no execution): the student edition in build/site/;
# `make site SITE=instructor` (or `make site-instructor`) builds build/site-instructor/ with solutions.
SITE ?= student
site: install
	$(PY) -m course.site $(if $(filter instructor,$(SITE)),--instructor)

site-instructor:
	$(MAKE) site SITE=instructor

# The speed budget (counter, explorer, import, notebooks): one table; not part of `make test`.
bench: install
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
