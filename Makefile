# The two set-up commands of the README live here:
#   make run    install what is missing, build, start the local cluster
#   make test   install what is missing, build, run every test
# Everything else is a step they share. The build itself is CMake's.

BUILD     ?= build
SAN_BUILD ?= build-asan
JOBS      ?= $(shell nproc)

.PHONY: deps configure build run test test-sanitize bench fuzz clean

deps:
	./scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRINGKV_WERROR=ON

build: configure
	cmake --build $(BUILD) -j$(JOBS)

run: build
	./scripts/run-local-cluster.sh $(BUILD)

# Every test in the optimised build, then the unit tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer.
test: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)
	$(MAKE) test-sanitize

test-sanitize: deps
	cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRINGKV_WERROR=ON \
	      -DRINGKV_SANITIZE="address;undefined" -DRINGKV_BENCH=OFF
	cmake --build $(SAN_BUILD) -j$(JOBS)
	ctest --test-dir $(SAN_BUILD) -L unit --output-on-failure -j$(JOBS)

# Every benchmark, each beside its peer where one exists: raw nng for the
# RPC layer and IDs, Redis for the rate limiter (the script installs it),
# LevelDB and RocksDB for the LSM engine (likewise). Never part of test.
bench: build
	$(BUILD)/bin/bench-rpc
	$(BUILD)/bin/bench-idgen
	./bench/ratelimit/run.sh $(BUILD)
	./bench/lsm/run.sh $(BUILD)

# libFuzzer targets (clang), each run for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
fuzz:
	./scripts/install-deps.sh --fuzz
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	      -DRINGKV_FUZZ=ON -DRINGKV_SANITIZE="address;undefined" \
	      -DRINGKV_TESTS=OFF -DRINGKV_BENCH=OFF
	cmake --build build-fuzz -j$(JOBS) --target fuzz-rpc-request fuzz-gossip \
	      fuzz-lsm-log fuzz-lsm-block fuzz-lsm-table
	mkdir -p build-fuzz/corpus/rpc-request build-fuzz/corpus/gossip \
	      build-fuzz/corpus/lsm-log build-fuzz/corpus/lsm-block \
	      build-fuzz/corpus/lsm-table
	build-fuzz/bin/fuzz-rpc-request -max_total_time=$(FUZZ_SECONDS) \
	      build-fuzz/corpus/rpc-request
	build-fuzz/bin/fuzz-gossip -max_total_time=$(FUZZ_SECONDS) \
	      build-fuzz/corpus/gossip
	for t in log block table; do \
	  build-fuzz/bin/fuzz-lsm-$$t -max_total_time=$(FUZZ_SECONDS) -close_fd_mask=2 \
	      build-fuzz/corpus/lsm-$$t || exit 1; done

clean:
	rm -rf $(BUILD) $(SAN_BUILD) build-fuzz
