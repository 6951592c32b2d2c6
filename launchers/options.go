package launchers

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ipp-hpc/ipp/internal/shellwords"
)

// Options are one launcher's own settings (the mpiexec program, a batch
// job's partition and walltime...). Each catalog entry that has settings
// names a struct type for them; a pointer to it travels in Config.Options
// and is saved with every engine set in the cluster file, so `ipcluster
// engines` can start more engines the same way.
//
// The struct's json field names are its flag names, which is what lets
// MergeOptions lay the flags a user gave over the recorded settings.
type Options interface {
	// BindFlags declares the settings as command-line flags of fs.
	BindFlags(fs *pflag.FlagSet)
}

// optionKeyAnnotation marks an alias flag (--partition) with the json
// name of the setting it sets (queue).
const optionKeyAnnotation = "ipp-option-key"

// NewOptions returns fresh settings (defaults filled in) for the named
// launcher, or nil when it has none.
func NewOptions(name string) (Options, error) {
	e, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if e.Options == nil {
		return nil, nil
	}
	return e.Options(), nil
}

// OptionsFlags binds the settings of every launcher in the catalog to one
// flag set. Launchers that share a settings type (all batch systems share
// BatchOptions) share one value, so each flag is declared once.
type OptionsFlags struct {
	fs     *pflag.FlagSet
	byType map[reflect.Type]Options
}

// BindOptionsFlags declares every launcher's flags on fs.
func BindOptionsFlags(fs *pflag.FlagSet) *OptionsFlags {
	of := &OptionsFlags{fs: fs, byType: map[reflect.Type]Options{}}
	for _, e := range catalog {
		if e.Options == nil {
			continue
		}
		o := e.Options()
		t := reflect.TypeOf(o)
		if _, ok := of.byType[t]; ok {
			continue
		}
		of.byType[t] = o
		o.BindFlags(fs)
	}
	return of
}

// For returns the settings the flags filled in for launcher name (nil
// when it has none).
func (of *OptionsFlags) For(name string) (Options, error) {
	fresh, err := NewOptions(name)
	if fresh == nil || err != nil || of == nil {
		return fresh, err
	}
	return of.byType[reflect.TypeOf(fresh)], nil
}

// Given reports whether any flag of launcher name's settings was set on
// the command line.
func (of *OptionsFlags) Given(name string) bool {
	if of == nil {
		return false
	}
	o, err := of.For(name)
	if o == nil || err != nil {
		return false
	}
	changed := of.changed()
	for key := range jsonKeys(o) {
		if changed[key] {
			return true
		}
	}
	return false
}

// changed lists the settings (json names) set on the command line,
// through their own flag or an alias.
func (of *OptionsFlags) changed() map[string]bool {
	keys := map[string]bool{}
	of.fs.Visit(func(f *pflag.Flag) {
		if a := f.Annotations[optionKeyAnnotation]; len(a) > 0 {
			keys[a[0]] = true
			return
		}
		keys[f.Name] = true
	})
	return keys
}

// Merged returns launcher name's settings: recorded (a saved engine set's
// settings, may be nil) with every flag given on the command line laid
// over it.
func (of *OptionsFlags) Merged(name string, recorded json.RawMessage) (Options, error) {
	given, err := of.For(name)
	if given == nil || err != nil {
		return nil, err
	}
	var changed map[string]bool
	if of != nil {
		changed = of.changed()
	}
	return MergeOptions(name, recorded, given, func(key string) bool { return changed[key] })
}

// MergeOptions decodes recorded into fresh settings for launcher name and
// copies over it the fields of given whose json names changed says were
// set. This is how `ipcluster engines --walltime 2:00:00` keeps the
// partition the cluster was started with.
func MergeOptions(name string, recorded json.RawMessage, given Options, changed func(key string) bool) (Options, error) {
	out, err := NewOptions(name)
	if out == nil || err != nil {
		return nil, err
	}
	if len(recorded) > 0 && string(recorded) != "null" {
		if err := json.Unmarshal(recorded, out); err != nil {
			return nil, fmt.Errorf("recorded %s settings: %w", name, err)
		}
	}
	if given == nil {
		return out, nil
	}
	all, err := json.Marshal(given)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(all, &fields); err != nil {
		return nil, err
	}
	for k := range fields {
		if !changed(k) {
			delete(fields, k)
		}
	}
	sub, _ := json.Marshal(fields)
	if err := json.Unmarshal(sub, out); err != nil {
		return nil, err
	}
	return out, nil
}

// jsonKeys lists the json names of a settings struct's fields.
func jsonKeys(o Options) map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeOf(o)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
}

// wordsValue is a flag holding a command line split into words the way a
// POSIX shell would (quotes and backslashes, no expansions).
type wordsValue struct{ w *[]string }

// WordsVar declares a flag whose value is split with SplitWords.
func WordsVar(fs *pflag.FlagSet, p *[]string, name, usage string) {
	fs.Var(wordsValue{p}, name, usage)
}

func (v wordsValue) String() string {
	if v.w == nil {
		return ""
	}
	return strings.Join(*v.w, " ")
}

func (v wordsValue) Set(s string) error {
	w, err := SplitWords(s)
	if err != nil {
		return err
	}
	*v.w = w
	return nil
}

func (v wordsValue) Type() string { return "words" }

// SplitWords splits a command line into words the way a POSIX shell would,
// without expansions (see shellwords.Split).
func SplitWords(s string) ([]string, error) { return shellwords.Split(s) }

// ShellQuote quotes words for a POSIX shell, leaving plain words alone.
func ShellQuote(words ...string) string { return shellwords.Quote(words...) }
