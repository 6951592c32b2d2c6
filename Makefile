# Two commands do everything on a fresh Debian machine with Go installed:
#   make demo   builds bin/ipcluster, starts a local cluster, runs the examples, stops it
#   make test   installs what the tests need (apt, as root) and runs every test
GO      ?= go
BIN     := bin/ipcluster
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build deps demo services test test-mpi lint bench clean fuzz fuzz-short cross release

# build links the MPI library it finds (Open MPI first, else MPICH, else
# none), so that engines started by mpiexec or srun can be MPI ranks. The
# binary must then be started by that library's mpiexec.
build:
	@if pkg-config --exists ompi; then tags=ompi; \
	elif pkg-config --exists mpich; then tags=mpich; \
	else tags=; fi; \
	if [ -n "$$tags" ]; then echo "build: $(BIN) with MPI (-tags $$tags)"; \
	else echo "build: $(BIN) without MPI (install libopenmpi-dev or libmpich-dev for MPI engines)"; fi; \
	$(GO) build $${tags:+-tags $$tags} -o $(BIN) ./cmd/ipcluster

# Client binaries build anywhere: without cgo (so without libzmq and MPI)
# the pure-Go transport is the default, which is all a client needs. cross
# compiles ipcluster and every example program (each imports package ipp)
# for the platforms a laptop or a login node may have; make test runs it.
CROSS_TARGETS := linux/amd64 linux/arm64 darwin/arm64 darwin/amd64 windows/amd64
CROSS_PKGS    := ./cmd/ipcluster ./examples/...
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

cross:
	@for t in $(CROSS_TARGETS); do echo "cross: CGO_ENABLED=0 $$t"; \
		CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build $(CROSS_PKGS) || exit 1; \
	done

# release writes dist/ipcluster-<os>-<arch>[.exe] (client builds, see
# cross) stamped with VERSION, and dist/SHA256SUMS. Engines need cgo and
# libzmq: build those with make build on the machine that runs them.
release:
	rm -rf dist && mkdir -p dist
	@for t in $(CROSS_TARGETS); do os=$${t%/*}; arch=$${t#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		out=dist/ipcluster-$$os-$$arch$$ext; echo "release: $$out ($(VERSION))"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath \
			-ldflags "-s -w -X github.com/ipp-hpc/ipp/internal/cli.Version=$(VERSION)" \
			-o $$out ./cmd/ipcluster || exit 1; \
	done
	@cd dist && if command -v sha256sum >/dev/null; then sha256sum ipcluster-*; else shasum -a 256 ipcluster-*; fi > SHA256SUMS
	@echo "release: dist/SHA256SUMS"; cat dist/SHA256SUMS

deps:
	scripts/install-deps.sh test

demo: deps build
	scripts/demo.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# services starts the single-node Slurm and Grid Engine the launcher tests
# submit to, the loopback sshd of the SSH tests and the "login node" network
# namespace of the tunnel tests (nothing happens when they already answer).
# Tests find them by their fixed bases (/tmp/ipp-slurm, /tmp/ipp-sge,
# /tmp/ipp-sshd): nothing is exported.
services:
	scripts/batch-systems.sh start
	scripts/sshd.sh start
	scripts/netns-login.sh start

# The conformance suite (./conformance) prints its table only when it
# fails or runs with -v; the copy it writes is shown either way.
CONFORMANCE_TABLE ?= $(or $(TMPDIR),/tmp)/ipp-conformance-table.md

test: deps lint cross services test-mpi fuzz-short
	IPP_CONFORMANCE_TABLE=$(CONFORMANCE_TABLE) $(GO) test -count=1 -timeout 40m ./...
	@echo "Python conformance table (docs/python-interop.md holds a copy):"; cat $(CONFORMANCE_TABLE)

# The mpi package against each MPI library that is installed (both are in
# CI): its tests re-run themselves as ranks under that library's mpiexec.
test-mpi:
	@if pkg-config --exists ompi; then \
		$(GO) vet -tags ompi ./mpi ./engine && $(GO) test -count=1 -timeout 20m -tags ompi ./mpi ./engine; \
	else echo "test-mpi: Open MPI not installed, skipping (CI installs it)"; fi
	@if pkg-config --exists mpich; then \
		$(GO) vet -tags mpich ./mpi ./engine && $(GO) test -count=1 -timeout 20m -tags mpich ./mpi ./engine; \
	else echo "test-mpi: MPICH not installed, skipping (CI installs it)"; fi

# Native Go fuzzing of the message parser and of every controller handler,
# FUZZTIME each (seed corpora in each package's testdata/fuzz). Inputs that
# gain coverage are minimized for at most 5 s: the controller's handlers
# keep state, so a minimizer often cannot reproduce an input alone and
# would spend its whole default minute on it while fuzzing stands still.
FUZZTIME ?= 10m
FUZZ_TARGETS := ./internal/wire:FuzzParse ./controller:FuzzHandlers

fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz: $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $$pkg || exit 1; \
	done

# The CI run: a minute per target.
fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=60s

# The Slurm start measure uses SLURM_CONF, else /tmp/ipp-slurm/etc/slurm.conf;
# scripts/batch-systems.sh (when present) starts that Slurm first. Without a
# reachable Slurm the bench says so and runs the rest. BENCH_ARGS go to
# go run ./bench: BENCH_ARGS=-quick for a check in a few minutes, or fewer
# points (-startup-sizes, -task-sizes, -data-mb, -ours-startup-sizes ''; see
# bench/main.go). The report lands in bench/results/<date>T<time>-<host>/.
BENCH_ARGS ?=
bench: build
	scripts/install-deps.sh bench
	scripts/batch-systems.sh start || echo "bench: the batch systems did not start; the Slurm measure will be skipped"
	scripts/sshd.sh start || echo "bench: the loopback sshd did not start; the tunnel measure will be skipped"
	eval "$$(scripts/batch-systems.sh env)"; $(GO) run ./bench $(BENCH_ARGS)
	@if pkg-config --exists ompi || pkg-config --exists mpich; then bench/mpi/run.sh; \
	else echo "bench: no MPI installed (libopenmpi-dev or libmpich-dev), skipping the MPI benchmark"; fi

clean:
	rm -rf bin dist
