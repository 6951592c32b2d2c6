package remote

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/spf13/pflag"

	"github.com/ipp-hpc/ipp/internal/shellwords"
	"github.com/ipp-hpc/ipp/launchers"
)

// OptionArgs turns a launcher's settings into the flags that set them on
// the remote ipcluster: the settings' json names are their flag names, and
// a fresh flag set of the same launcher says whether a list is a
// repeatable flag (--directive) or one flag of shell words (--mpi-args).
// Settings equal to their default are left out.
func OptionArgs(launcher string, o launchers.Options) ([]string, error) {
	if o == nil {
		return nil, nil
	}
	fresh, err := launchers.NewOptions(launcher)
	if err != nil || fresh == nil {
		return nil, err
	}
	fs := pflag.NewFlagSet("remote", pflag.ContinueOnError)
	fresh.BindFlags(fs)
	values, err := jsonFields(o)
	if err != nil {
		return nil, err
	}
	defaults, err := jsonFields(fresh)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var args []string
	for _, k := range keys {
		v := values[k]
		if d, ok := defaults[k]; ok && bytes.Equal(d, v) {
			continue
		}
		f := fs.Lookup(k)
		if f == nil {
			return nil, fmt.Errorf("launcher %s: setting %q has no flag of that name", launcher, k)
		}
		var list []string
		if json.Unmarshal(v, &list) == nil {
			if _, repeat := f.Value.(pflag.SliceValue); repeat {
				for _, item := range list {
					args = append(args, "--"+k+"="+item)
				}
			} else {
				args = append(args, "--"+k+"="+shellwords.Quote(list...))
			}
			continue
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			args = append(args, "--"+k+"="+s)
			continue
		}
		// Numbers and booleans print as the flags parse them.
		args = append(args, "--"+k+"="+string(v))
	}
	return args, nil
}

func jsonFields(v any) (map[string]json.RawMessage, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	m := map[string]json.RawMessage{}
	return m, json.Unmarshal(data, &m)
}
