# The README's two commands. Each installs what it needs on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# torch==2.13.0 (pinned in python/requirements.txt) is the CPU build; GPU hosts use Dockerfile.gpu.

.PHONY: demo test install test-servers test-ts test-py typecheck bench soak clean

install: node_modules/.installed $(VENV)/.installed

# The servers the integration tests start on loopback (a one-node Slurm cluster, ...), from Debian packages.
test-servers:
	bash scripts/install-test-servers.sh

# chromium: the headless browser the `peftctl report` tests drive through puppeteer-core (a devDependency),
# installed with the node packages so that a checkout whose package.json gained it gets it too
node_modules/.installed: package.json package-lock.json
	command -v chromium >/dev/null || { apt-get update && apt-get install -y --no-install-recommends chromium; }
	npm ci --no-audit --no-fund
	touch $@

# requirements-eval.txt: the metrics of `peftctl score` (nltk, pycocoevalcap's METEOR 1.5 jar, which needs java)
$(VENV)/.installed: python/requirements.txt python/requirements-dev.txt python/requirements-eval.txt python/requirements-trackers.txt
	command -v java >/dev/null || { apt-get update && apt-get install -y --no-install-recommends default-jre-headless; }
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r python/requirements-dev.txt -r python/requirements-eval.txt
	touch $@

demo: install
	./bin/peftctl.js run configs/smoke.yaml
	./bin/peftctl.js eval smoke
	./bin/peftctl.js table smoke

test: install test-servers typecheck test-py test-ts

typecheck: node_modules/.installed
	npx tsc --noEmit

test-py: $(VENV)/.installed
	$(PY) -m pytest -q python/tests

test-ts: install test-servers
	npx vitest run

bench: install
	npx tsx bench/plan.ts
	npx tsx bench/schedule.ts
	$(PY) bench/throughput.py
	$(PY) bench/generate.py

# The long robustness suite (not part of test; under 30 minutes on 2 cores; needs root for its tmpfs).
# SOAK_ARGS: e.g. --quick, --only kills,hub, --seed N
soak: install
	npx tsx soak/main.ts $(SOAK_ARGS)

clean:
	rm -rf node_modules $(VENV) .cache
