# synclayer: the host, its plugins, and everything to build, run and test them.

GO        ?= go
BIN       := $(CURDIR)/bin
TOOLS     := $(CURDIR)/.tools
PLUGINS   := $(notdir $(wildcard plugins/*))
CONFIG    ?= configs/demo.hcl
BENCH_RECORDS ?= 1000000

# Pinned code generators for `make proto` (protoc itself comes from Debian's
# protobuf-compiler package).
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.0

.PHONY: all build run test test-deps test-short fuzz proto lint bench clean screenshot

all: build

# Plugins are linked static (CGO_ENABLED=0: no dynamic loader, no libc, the
# pure-Go DNS resolver, which Go uses on Linux anyway) and without symbol
# table and DWARF (-s -w; panics still name functions and lines): a plugin
# starts for each source, and that start is measured (plugin_start_ratio,
# BENCH.md). Static alone took ~0.6 ms off each start on a 2-core machine,
# -s -w ~0.3 ms more (fewer pages to map); -trimpath keeps build paths out.
# -tags grpcnotrace leaves out gRPC's request tracing (golang.org/x/net/trace
# with html/template and text/template, which a plugin never serves): the
# generator plugin goes from 13.3 to 9.8 MB and starts ~0.3 ms sooner.
PLUGIN_BUILDFLAGS ?= -trimpath -tags grpcnotrace -ldflags='-s -w'

# Each plugin is linked to a hidden file, then copied into place (renamed
# over the old binary, which a running plugin may still be executing). The
# Go linker writes its output through a memory map, and a binary whose
# page cache was filled that way started ~1.2 ms slower, on every start,
# than the same bytes written with write() (cp, install, a package
# manager): exec of the generator plugin to exit, medians of 400
# alternating runs, 6.9 ms against 5.5 ms (Linux 6.18, ext4). Copying
# makes the binaries `make build` leaves behave as installed ones do.
build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/synclayer ./core/cmd/synclayer
	@for p in $(PLUGINS); do \
		echo "CGO_ENABLED=0 $(GO) build $(PLUGIN_BUILDFLAGS) -o $(BIN)/synclayer-plugin-$$p ./plugins/$$p" ; \
		CGO_ENABLED=0 $(GO) build $(PLUGIN_BUILDFLAGS) -o $(BIN)/.link-$$p ./plugins/$$p && \
		cp $(BIN)/.link-$$p $(BIN)/.copy-$$p && mv -f $(BIN)/.copy-$$p $(BIN)/synclayer-plugin-$$p && \
		rm -f $(BIN)/.link-$$p || exit 1 ; \
	done

run: build
	$(BIN)/synclayer serve --config $(CONFIG)

# Every test: unit tests with the race detector, then the end-to-end tests
# that build and drive the real binaries. scripts/test-deps first installs
# what the tests need from Debian's packages (or says the one command to
# run). SYNCLAYER_BIN lets the tests copy the binaries `build` just made
# instead of linking each again (internal/testbin).
test: test-deps build
	$(GO) vet ./...
	SYNCLAYER_BIN=$(BIN) $(GO) test -race -count=1 ./core/... ./plugin-sdk/... ./plugins/... ./proto/... ./examples/...
	SYNCLAYER_BIN=$(BIN) $(GO) test -count=1 -timeout 20m ./integration/...
	SYNCLAYER_BIN=$(BIN) $(MAKE) fuzz FUZZTIME=3s FUZZ_TARGETS="$(FUZZ_QUICK)"

test-deps:
	@scripts/test-deps

test-short:
	$(GO) test -count=1 ./...

# Each fuzz target for FUZZTIME (`make fuzz FUZZTIME=2m` for a real hunt).
# Their seeds also run with every `go test`; an input that fails is written
# to the package's testdata/fuzz/<Target>/ and replays from then on.
FUZZTIME ?= 5s
FUZZ_TARGETS := \
	FuzzLoad:./core/config \
	FuzzRecordsQuery:./core/api \
	FuzzHooks:./core/api \
	FuzzDecodeEntry:./core/store/badger \
	FuzzEncodeEntry:./core/store/badger \
	FuzzDecodeIndex:./core/store/badger \
	FuzzValidObject:./core/store/internal/jsonvalid \
	FuzzParseCursor:./core/store/badger \
	FuzzScanObject:./core/graphql \
	FuzzEndpoint:./core/graphql

# make test fuzzes each of these for 3 s. core/api's two targets drive a
# live engine through the whole HTTP stack: in 3 s they do not even finish
# gathering their baseline, so they fuzz nothing there (their seeds run with
# the unit tests); `make fuzz` hunts with them.
# FuzzEndpoint compares every answer with graphql-go's own executor: it hunts
# in `make fuzz`, and its seeds (with what it found) run with the unit tests.
FUZZ_QUICK := $(filter-out %:./core/api FuzzEndpoint:%,$(FUZZ_TARGETS))

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		name=$${t%%:*}; pkg=$${t#*:}; \
		echo "$(GO) test -run='^\$$' -fuzz='^$$name\$$' -fuzztime=$(FUZZTIME) $$pkg"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg || \
		{ echo "fuzz: $$name failed; once more (a real finding was saved to testdata and fails again; Go's fuzzer can also time out stopping its workers on a loaded machine)"; \
		  $(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; }; \
	done

$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

proto: $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc
	@command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler"; exit 1; }
	PATH=$(TOOLS):$$PATH protoc -I proto/connector/v1 \
		--go_out=proto/connector/v1 --go_opt=paths=source_relative \
		--go-grpc_out=proto/connector/v1 --go-grpc_opt=paths=source_relative \
		proto/connector/v1/connector.proto

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench: build
	SYNCLAYER_BIN=$(BIN) BENCH_RECORDS=$(BENCH_RECORDS) $(GO) run ./integration/cmd/bench

# The README's picture of the dashboard's overview (docs/img/dashboard.png),
# taken by the browser test in a real headless Chromium.
screenshot:
	SYNCLAYER_SCREENSHOT=$(CURDIR)/docs/img/dashboard.png $(GO) test -count=1 -run '^TestBrowser$$' ./core/ui

clean:
	rm -rf $(BIN) $(TOOLS)
