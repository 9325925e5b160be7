# Two commands on a fresh Debian machine:
#   make demo   set everything up and diarize the bundled recording
#   make test   set everything up and run the whole test suite
# Both depend on `make setup`, which is idempotent.

CARGO ?= cargo
DEMO_AUDIO ?= audio-fixtures/pyannote_sample.wav

.PHONY: setup build demo test bench

setup:
	./tools/setup.sh

build: setup
	$(CARGO) build --locked --release -p diarist

demo: build
	./target/release/diarist diarize --format text $(DEMO_AUDIO)

test: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked -p diarist-models --features cuda -- -D warnings
	$(CARGO) test --locked

bench: build
	./target/release/diarist bench ../shared/eval/ami --ref ../shared/eval/ami
