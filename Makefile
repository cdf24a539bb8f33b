# tradeguard: the two commands are `make demo` and `make test`; both install what is missing.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

TG_PORT ?= 5499
TG_HOME ?= /var/lib/tradeguard-demo
TG_TEST_DIR ?= /var/tmp/tradeguard-test
export TG_PORT TG_HOME TG_TEST_DIR

.PHONY: setup build install demo demo-stop test test-unit test-pg test-regress lint bench reliability clean

setup:
	bash scripts/setup.sh

build: setup
	cargo build --release

install: setup
	cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config

demo: setup
	bash scripts/demo.sh

demo-stop:
	bash scripts/demo.sh stop

test: setup
	bash scripts/test.sh all

test-unit: setup
	bash scripts/test.sh unit

test-pg: setup
	bash scripts/test.sh pg

test-regress: setup
	bash scripts/test.sh regress

lint: setup
	cargo clippy --features "pg15 pg_test" --no-deps --all-targets -- -D warnings

bench: setup
	bash bench/run.sh

reliability: setup
	bash scripts/reliability.sh

clean:
	cargo clean
	rm -rf pg_test/results pg_test/regression.* $(TG_TEST_DIR)
