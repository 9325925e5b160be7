# Two commands on a fresh Debian machine:
#   make demo   set everything up and diarize the bundled recording
#   make test   set everything up and run the whole test suite
# Both depend on `make setup`, which is idempotent.
#   make dist   the release tarball, dist/diarist-<version>-linux-x86_64.tar.gz
#   make deb    the Debian package, dist/diarist_<version>_amd64.deb
#   make wheel  the Python wheel, dist/diarist-<version>-cp311-abi3-<platform>.whl
#   make test-ray  diarist.ray on a three-node Ray cluster on 127.0.0.1 (part of `make test`)

CARGO ?= cargo
DEMO_AUDIO ?= audio-fixtures/pyannote_sample.wav

.PHONY: setup build demo test bench dist deb wheel test-ray

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
	./tools/check_deploy.sh
	$(CARGO) test --locked
	$(MAKE) dist deb
	./tools/test_release.sh
	./tools/test_python.sh
	./tools/test_ray.sh

# The release packages, from the one release build; tools/test_release.sh installs and runs them.
dist: build
	./tools/dist.sh tarball

deb: dist
	./tools/dist.sh deb

# The Python package (crates/diarist-py) with its models and ONNX Runtime; tools/test_python.sh
# installs it into a fresh virtual environment and runs its tests.
wheel: setup
	./tools/wheel.sh

# diarist.ray (the wheel's `ray` extra) on a real Ray cluster of three nodes on 127.0.0.1, one of
# them removed mid-run; about 100 s with the wheel built.
test-ray: setup
	./tools/test_ray.sh

bench: build
	./target/release/diarist bench ../shared/eval/ami --ref ../shared/eval/ami
