package interp

import (
	"fmt"
	"go/parser"
	"go/token"
	"path"
	"reflect"
	"strings"

	yaegi "github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib/generic"
)

// A namespace is opened on an engine's first exec, and what yaegi did to
// open one was most of that exec's CPU (3.6 ms per engine, 3.6 s over
// 1,000 engines): it copied every symbol of every package it was given
// into its own maps, and compiled the Go source of the generic standard
// packages (cmp, maps, slices), for packages most snippets never import.
// So a namespace gives yaegi a package's symbols, and compiles the
// generic sources, only when a snippet first imports that package (or a
// package the generic sources define). What yaegi must have from the
// start stays eager: the packages every snippet has (Builtins, Preload),
// those yaegi rewires to the namespace's streams when it loads the
// standard library (fixStdlib: fmt, flag, log, os, math/bits), and its
// own special entries.

// fixedByYaegi are the packages yaegi's Use rewires when it is given the
// standard library; they must be in that same call.
var fixedByYaegi = []string{"fmt", "flag", "log", "os", "math/bits"}

// deferredPkg is one table's symbols for a package yaegi has not been
// given yet.
type deferredPkg struct {
	key  string // "import/path/name", as in yaegi.Exports
	syms map[string]reflect.Value
}

// useTables gives yaegi the tables' eager packages, in order, and keeps
// the others in n.deferred. Every package's name is learned now, so that
// importPackage knows what exists. A nil eager means all of them.
func (n *Namespace) useTables(tables []yaegi.Exports, eager map[string]bool) error {
	for _, t := range tables {
		now := yaegi.Exports{}
		for k, v := range t {
			dir := path.Dir(k)
			if dir != "." {
				n.pkgNames[dir] = path.Base(k)
			}
			if eager == nil || dir == "." || eager[dir] || strings.HasPrefix(dir, "github.com/traefik/yaegi") {
				now[k] = v
				continue
			}
			n.deferred[dir] = append(n.deferred[dir], deferredPkg{k, v})
		}
		if err := n.yi.Use(now); err != nil {
			return fmt.Errorf("interp: %w", err)
		}
	}
	return nil
}

// loadPackage gives yaegi the deferred symbols of import path p, in the
// order their tables were added.
func (n *Namespace) loadPackage(p string) error {
	for _, d := range n.deferred[p] {
		if err := n.yi.Use(yaegi.Exports{d.key: d.syms}); err != nil {
			return fmt.Errorf("interp: %w", err)
		}
	}
	delete(n.deferred, p)
	return nil
}

// genericSources are yaegi's generic sources, in its order (slices uses
// cmp); genericPkgs the names of the packages they define. They are taken
// out of yaegi's list when this package starts: yaegi then compiles an
// empty main package in their place.
var genericSources, genericPkgs = takeGenericSources()

func takeGenericSources() ([]string, map[string]bool) {
	srcs := append([]string(nil), generic.Sources[:]...)
	pkgs := map[string]bool{}
	for _, src := range srcs {
		f, err := parser.ParseFile(token.NewFileSet(), "", src, parser.PackageClauseOnly)
		if err != nil {
			// Unreadable here means yaegi changed; leave its list alone.
			return nil, nil
		}
		pkgs[f.Name.Name] = true
	}
	for i := range generic.Sources {
		generic.Sources[i] = "package main"
	}
	return srcs, pkgs
}

// loadGenerics compiles the generic sources into the interpreter before
// the first import of a package they define (p is its import path). They
// import other standard packages through yaegi itself, not importPackage,
// so every deferred package is loaded first.
func (n *Namespace) loadGenerics(p string) error {
	if n.genericsLoaded || !genericPkgs[path.Base(p)] {
		return nil
	}
	for dir := range n.deferred {
		if err := n.loadPackage(dir); err != nil {
			return err
		}
	}
	for _, src := range genericSources {
		if _, err := n.yi.Compile(src); err != nil {
			return fmt.Errorf("interp: the generic standard library: %w", err)
		}
	}
	n.genericsLoaded = true
	return nil
}
