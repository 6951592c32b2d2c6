package ipp

import (
	"slices"
	"strings"
	"testing"
)

// world returns the infos of n MPI engines of world w, ids from base.
func world(w string, n, base int) []EngineInfo {
	out := make([]EngineInfo, n)
	for r := range out {
		out[r] = EngineInfo{ID: base + r, MPIRank: r, MPISize: n, MPIWorld: w, MPIFlavor: "openmpi"}
	}
	return out
}

func TestCheckMPIView(t *testing.T) {
	two := append(world("W1", 4, 0), world("W2", 2, 10)...)
	plain := []EngineInfo{{ID: 20}, {ID: 21}}
	infos := append(slices.Clone(two), plain...)
	// Ranks out of id order: rank 0 is engine 31.
	infos = append(infos,
		EngineInfo{ID: 30, MPIRank: 1, MPISize: 2, MPIWorld: "W3"},
		EngineInfo{ID: 31, MPIRank: 0, MPISize: 2, MPIWorld: "W3"})
	// A corrupt report: two engines claiming rank 0 of one world.
	infos = append(infos,
		EngineInfo{ID: 40, MPIRank: 0, MPISize: 2, MPIWorld: "W4"},
		EngineInfo{ID: 41, MPIRank: 0, MPISize: 2, MPIWorld: "W4"})

	for _, tc := range []struct {
		name    string
		targets []int
		byRank  []int
		errHas  []string
	}{
		{"complete world", []int{0, 1, 2, 3}, []int{0, 1, 2, 3}, nil},
		{"complete world, any order", []int{3, 1, 0, 2}, []int{0, 1, 2, 3}, nil},
		{"rank order differs from ids", []int{30, 31}, []int{31, 30}, nil},
		{"partial view", []int{0, 2}, nil, []string{"MPI collective refused", "engines [0 2] (ranks [0 2]) of world W1 (size 4)", "all 4 ranks", "deadlock"}},
		{"two worlds", []int{0, 1, 2, 3, 10, 11}, nil, []string{"MPI collective refused", "mixes MPI worlds", "W1", "W2"}},
		{"two worlds of one size", []int{10, 30}, nil, []string{"mixes MPI worlds"}},
		{"non-MPI engine", []int{20, 21}, nil, []string{"engine 20 is not an MPI rank"}},
		{"MPI and non-MPI", []int{10, 11, 20}, nil, []string{"engine 20 is not an MPI rank"}},
		{"unknown engine", []int{10, 99}, nil, []string{"engine 99 is not registered"}},
		{"duplicate rank", []int{40, 41}, nil, []string{"each rank once"}},
		{"duplicate target", []int{10, 10}, nil, []string{"each rank once"}},
		{"no engines", nil, nil, []string{"no engines"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			byRank, err := checkMPIView(tc.targets, infos)
			if tc.errHas == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !slices.Equal(byRank, tc.byRank) {
					t.Errorf("engine of each rank %v, want %v", byRank, tc.byRank)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted (engines by rank %v), want an error", byRank)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// TestCheckMPIViewMissingWorld: an engine that reports a rank but no world
// (an older engine) cannot be checked, so it is refused.
func TestCheckMPIViewMissingWorld(t *testing.T) {
	infos := []EngineInfo{{ID: 0, MPIRank: 0, MPISize: 1}}
	if _, err := checkMPIView([]int{0}, infos); err == nil || !strings.Contains(err.Error(), "does not report its MPI world") {
		t.Errorf("got %v, want a refusal naming the missing world", err)
	}
}
