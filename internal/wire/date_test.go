package wire

import (
	"testing"
	"time"
)

// FuzzParseDate: whatever the fast date parser accepts, the general one
// reads as the same instant.
func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"2026-12-07T10:00:00.123456Z", "2026-12-07T10:00:00Z", "2024-02-29T23:59:59.999999Z",
		"2023-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-12-07T24:00:00Z", "0000-01-01T00:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fast, ok := parseDateFast(s)
		if !ok {
			return
		}
		slow, err := parseDateSlow(s)
		if err != nil {
			t.Fatalf("%q: fast %v, slow refused: %v", s, fast, err)
		}
		if !fast.Equal(slow) || fast.Location() != slow.Location() {
			t.Fatalf("%q: fast %v, slow %v", s, fast, slow)
		}
	})
}

func TestParseDateFastPath(t *testing.T) {
	for _, s := range []string{FormatDate(time.Date(2026, 12, 7, 10, 0, 0, 123456000, time.UTC)), "2026-12-07T10:00:00Z"} {
		if _, ok := parseDateFast(s); !ok {
			t.Errorf("fast path refused %q", s)
		}
	}
	for _, s := range []string{"2023-02-29T00:00:00Z", "2026-12-07T24:00:00Z", "2026-12-07T10:00:00+00:00", "2026-12-07 10:00:00Z"} {
		if _, ok := parseDateFast(s); ok {
			t.Errorf("fast path accepted %q", s)
		}
	}
}
