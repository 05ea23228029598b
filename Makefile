# Herald top-level entry points. Every target installs what is missing first.
#   make run     build and start the broker on 127.0.0.1:9092 with data in ./data
#   make test    build, run the whole suite, then the unit tests under ASan+UBSan
#   make bench   benchmarks (bench/README.md)
#   make asan    unit tests of the lower layers and the SDK's stores/envelope under ASan + UBSan
#   make fuzz    libFuzzer targets (clang-14), FUZZ_SECONDS each

JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
CMAKE_FLAGS ?=
# e.g. CTEST_ARGS='-L integration' or '-R sdk'
CTEST_ARGS ?=

.PHONY: deps build run test asan bench fuzz clean demo demo-saga

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j $(JOBS)

run: build
	./build/herald serve --listen 127.0.0.1:9092 --data-dir ./data

test: build
	cd build && ctest --output-on-failure -j $(JOBS) --timeout 600 $(CTEST_ARGS)
	@$(MAKE) --no-print-directory asan

# Unit tests of the lower layers (the ones that parse untrusted bytes and own the data) and of
# the SDK's stores and envelope under ASan+UBSan. Only their targets are built, so this costs a
# fraction of a full second build.
ASAN_TESTS ?= ^((common|record|storage|protocol|broker|fuzz)_|sdk_(store_sqlite|envelope|uuid)$$)
asan: deps
	@cmake --preset asan >/dev/null
	@cd build-asan && targets=$$(ctest -N -L unit -R '$(ASAN_TESTS)' | awk '/Test +#/{print $$3}') && \
	  cmake --build . -j $(JOBS) --target $$targets
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) -L unit -R '$(ASAN_TESTS)'

bench: build
	@scripts/install-deps bench
	bench/run.sh

fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_batch fuzz_request
	tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf build build-asan build-fuzz build-debug

demo: build
	scripts/demo

demo-saga: build
	scripts/demo --saga
