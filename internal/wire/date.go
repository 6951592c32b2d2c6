package wire

import (
	"fmt"
	"regexp"
	"time"
)

// FormatDate writes t the way Python's isoformat does for an aware UTC
// datetime with "+00:00" replaced by "Z": microseconds, omitted when zero.
func FormatDate(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05Z")
	}
	return t.Format("2006-01-02T15:04:05.000000Z")
}

var dateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?$`)

// ParseDate reads the date forms Python peers write: with or without the
// fraction, with "Z", a numeric offset, or none (taken as UTC).
func ParseDate(s string) (time.Time, error) {
	if !dateRE.MatchString(s) {
		return time.Time{}, fmt.Errorf("wire: not an ISO 8601 date: %q", s)
	}
	for _, layout := range []string{
		time.RFC3339Nano,
		"2006-01-02T15:04:05.999999999Z0700",
		"2006-01-02T15:04:05.999999999",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("wire: cannot parse date %q", s)
}
