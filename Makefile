# ringline — the front door.
#   make          build everything (library, examples, Lua module, Python shim)
#   make test     install missing Debian packages, build, run every suite (ctest)
#   make demo     install, build, and run the demo: real traffic through ringline
#   make bench    the benchmark suite (minutes); see BENCHMARKS.md
#   make bench-storage  4 KiB random reads vs fio: O_DIRECT file, NVMe in a VM
#   make install  cmake --install into PREFIX (default /usr/local)

BUILD   ?= build
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all build deps test demo bench bench-storage install clean

all: build

deps:
	@sh tools/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

test: deps
	@$(MAKE) --no-print-directory build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

demo: deps
	@$(MAKE) --no-print-directory build
	@bash examples/demo.sh $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory build
	@bash bench/run.sh $(BUILD)

bench-storage: deps
	@$(MAKE) --no-print-directory build
	@bash bench/storage.sh $(BUILD)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)
