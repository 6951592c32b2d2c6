package cli

import (
	"slices"
	"testing"
)

// Job ids sort by number: a queue whose counter crossed 9 -> 10 listed
// "10 9" when they sorted as text.
func TestCompareJobIDs(t *testing.T) {
	ids := []string{"10", "9", "100.pbs", "9.pbs", "abc", "11"}
	slices.SortFunc(ids, compareJobIDs)
	want := []string{"9", "9.pbs", "10", "11", "100.pbs", "abc"}
	if !slices.Equal(ids, want) {
		t.Fatalf("sorted %v, want %v", ids, want)
	}
}
