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
	if t, ok := parseDateFast(s); ok {
		return t, nil
	}
	return parseDateSlow(s)
}

// parseDateFast reads the form FormatDate writes, the one on every
// header of ours and of Python peers (2026-12-07T10:00:00.123456Z, the
// fraction optional), without the regular expression and layout search
// that were a few percent of the controller's CPU per task. Anything
// else, out-of-range fields included, is left to parseDateSlow.
func parseDateFast(s string) (time.Time, bool) {
	if len(s) != len("2006-01-02T15:04:05Z") && len(s) != len("2006-01-02T15:04:05.000000Z") {
		return time.Time{}, false
	}
	if s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[len(s)-1] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, n int) (int, bool) {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	hour, ok4 := num(11, 2)
	minute, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return time.Time{}, false
	}
	micro := 0
	if len(s) > 20 {
		var ok bool
		if micro, ok = num(20, 6); !ok || s[19] != '.' {
			return time.Time{}, false
		}
	}
	// time.Date normalises out-of-range fields where time.Parse refuses
	// them: check, and leave the refusal to the slow path.
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 ||
		day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, micro*1000, time.UTC), true
}

func parseDateSlow(s string) (time.Time, error) {
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
