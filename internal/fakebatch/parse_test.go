//go:build unix

package fakebatch

import (
	"slices"
	"testing"
)

func TestDirectives(t *testing.T) {
	// ipyparallel's LSF template indents its last directives: they are
	// comments, and the first command ends the directives.
	text := "#!/bin/sh\n#BSUB -J \"ipengine[1-4]\"\n#BSUB -q q1 # queue\n\n    #BSUB -env all\necho hi\n#BSUB -n 4\n"
	got, err := directives(text, "#BSUB")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"-J", "ipengine[1-4]"}, {"-q", "q1"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("directives = %q, want %q", got, want)
	}
	if _, err := directives("#PBS -N 'open\n", "#PBS"); err == nil {
		t.Error("an unterminated quote was accepted")
	}
}

func TestCondorArgs(t *testing.T) {
	for _, c := range []struct {
		in, sep string
		want    []string
	}{
		{`"3 'two words' 'it''s' ""q"""`, " ", []string{"3", "two words", "it's", `"q"`}},
		{`a b  c`, " ", []string{"a", "b", "c"}},
		{`"A=1 B='x y'"`, ";", []string{"A=1", "B=x y"}},
		{`A=1;B=2`, ";", []string{"A=1", "B=2"}},
	} {
		if got := condorArgs(c.in, c.sep); !slices.Equal(got, c.want) {
			t.Errorf("condorArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	attrs := map[string]string{"base": "/p/$(Cluster)"}
	if got := condorExpand("$(base).$(Process).$(ProcId)", attrs, 7, 2); got != "/p/7.2.2" {
		t.Errorf("condorExpand = %q", got)
	}
}

func TestIndexRange(t *testing.T) {
	for in, want := range map[string][]int{"1-3": {1, 2, 3}, "1-7:3": {1, 4, 7}, "1,3,5%2": {1, 3, 5}, "4": {4}} {
		if got, err := indexRange(in); err != nil || !slices.Equal(got, want) {
			t.Errorf("indexRange(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "3-1", "a-b", "1-4:0", "0-100000"} {
		if _, err := indexRange(bad); err == nil {
			t.Errorf("indexRange(%q) accepted", bad)
		}
	}
}
