# Two commands do everything on a fresh Debian machine with Go installed:
#   make demo   builds bin/ipcluster, starts a local cluster, runs the examples, stops it
#   make test   installs what the tests need (apt, as root) and runs every test
GO      ?= go
BIN     := bin/ipcluster
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build deps demo test lint bench clean

build:
	$(GO) build -o $(BIN) ./cmd/ipcluster

deps:
	scripts/install-deps.sh test

demo: deps build
	scripts/demo.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

test: deps lint
	$(GO) test -count=1 -timeout 40m ./...

bench: build
	scripts/install-deps.sh bench
	$(GO) run ./bench

clean:
	rm -rf bin
