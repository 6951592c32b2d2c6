package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/ipp-hpc/ipp/controller"
)

// TestDBFlags: the controller role defaults to the sqlite task database in
// the profile; start passes only what differs, and the controller reads
// it back; bad values name the flag.
func TestDBFlags(t *testing.T) {
	var got *ControllerOptions
	capture := func(o *ControllerOptions) error { got = o; return nil }
	if err := run(NewCmdController(&Factory{}, capture), "--profile-dir", "/p", "--cluster-id", "c1"); err != nil {
		t.Fatal(err)
	}
	cfg, err := got.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DB != controller.DBSQLite || cfg.DBMaxRecords != controller.DefaultDBMaxRecords {
		t.Errorf("defaults: %q %d", cfg.DB, cfg.DBMaxRecords)
	}
	if want := "/p/security/ipcontroller-c1-tasks.db"; controller.DBFile("/p", "c1") != want {
		t.Errorf("DBFile = %q, want %q", controller.DBFile("/p", "c1"), want)
	}

	var st *StartOptions
	if err := run(NewCmdStart(&Factory{}, func(o *StartOptions) error { st = o; return nil })); err != nil {
		t.Fatal(err)
	}
	if args := st.DBFlags.args(); len(args) != 0 {
		t.Errorf("defaults pass %q, want nothing", args)
	}
	if err := run(NewCmdStart(&Factory{}, func(o *StartOptions) error { st = o; return nil }), "--db", "none", "--db-max-records", "50"); err != nil {
		t.Fatal(err)
	}
	want := []string{"--db=none", "--db-max-records=50"}
	if args := st.DBFlags.args(); !slices.Equal(args, want) {
		t.Fatalf("start passes %q, want %q", args, want)
	}
	if err := run(NewCmdController(&Factory{}, capture), append([]string{"--profile-dir", "/p"}, want...)...); err != nil {
		t.Fatal(err)
	}
	if cfg, err = got.config(); err != nil || cfg.DB != controller.DBNone || cfg.DBMaxRecords != 50 {
		t.Errorf("round trip: %q %d %v", cfg.DB, cfg.DBMaxRecords, err)
	}
	for _, bad := range [][]string{{"--db", "mongodb"}, {"--db-max-records", "-1"}} {
		err := run(NewCmdController(&Factory{}, capture), append([]string{"--profile-dir", "/p"}, bad...)...)
		if err == nil {
			_, err = got.config()
		}
		if err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%q: %v, want an error naming the flag", bad, err)
		}
	}
}
