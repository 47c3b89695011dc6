# bulkhead: the set-up commands. Everything a target needs is installed by the target itself
# (Debian packages, only those missing).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

BUILD ?= build
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 5
CLANG_CXX ?= clang++-14
CLANG_CC ?= clang-14

BUILD_PACKAGES := cmake g++ make pkg-config libseccomp-dev libgtest-dev libgmock-dev libbenchmark-dev \
	libtomlplusplus-dev nlohmann-json3-dev libsodium-dev libsqlite3-dev libzstd-dev
FUZZ_PACKAGES := clang-14 libclang-rt-14-dev
BENCH_PACKAGES := bubblewrap hyperfine python3

.PHONY: all deps fuzz-deps bench-deps build test demo bench fuzz fuzz-build sanitize format tidy clean

all: build

# Installs with apt-get only what is missing; `apt-get update` only when something is.
define apt_install
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps:
	$(call apt_install,$(BUILD_PACKAGES))

fuzz-deps:
	$(call apt_install,$(FUZZ_PACKAGES))

bench-deps:
	$(call apt_install,$(BENCH_PACKAGES))

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

# Privileged tests share the host's cgroups and run one at a time; then every fuzz target briefly.
test: build fuzz-build
	ctest --test-dir $(BUILD) --output-on-failure -j1
	tests/fuzz/run.sh build-fuzz $(FUZZ_SMOKE_SECONDS)

demo: build
	./$(BUILD)/bulkhead demo

bench: bench-deps build
	bench/run $(BUILD)

fuzz-build: deps fuzz-deps
	CC=$(CLANG_CC) CXX=$(CLANG_CXX) cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DBULKHEAD_FUZZ=ON -DBULKHEAD_TESTS=OFF >/dev/null
	cmake --build build-fuzz -j$(JOBS)

fuzz: fuzz-build
	tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

sanitize: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DBULKHEAD_SANITIZE=ON >/dev/null
	cmake --build build-asan -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir build-asan --output-on-failure -j1

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

tidy: build
	clang-tidy -p $(BUILD) --quiet $$(git ls-files 'src/*.cpp')

clean:
	rm -rf build build-fuzz build-asan
