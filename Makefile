# The two commands: `make run` and `make test`. Each installs what is missing first.
.PHONY: run test test-long bootstrap infra-up infra-down lint types docs manifests bench clean

bootstrap:
	@deploy/local/bootstrap.sh

run: bootstrap
	@.venv/bin/python deploy/local/run.py $(if $(BOT),--bot)

test: bootstrap manifests
	@deploy/local/test.sh -m "not slow_soak"

test-long: bootstrap manifests
	@deploy/local/test.sh

infra-up: bootstrap
	@.venv/bin/python deploy/local/infra.py start --profile run

infra-down:
	@.venv/bin/python deploy/local/infra.py stop --profile run

lint: bootstrap
	@.venv/bin/ruff check .

types: bootstrap
	@.venv/bin/mypy --strict -p parley_common $(foreach s,ingest contacts router outbound media hooks,-p parley_$(s).domain) -p faq_bot

docs: bootstrap
	@.venv/bin/python -m parley_common.schemas docs/events

manifests: bootstrap
	@deploy/k8s/validate.sh

clean:
	rm -rf .run .venv
