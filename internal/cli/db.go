package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/ipp-hpc/ipp/controller"
)

// DBFlags choose the controller's task database, on `ipcluster
// controller` and passed through by `ipcluster start`.
type DBFlags struct {
	// DB is --db: sqlite, memory or none.
	DB string
	// MaxRecords is --db-max-records.
	MaxRecords int
}

func (d *DBFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&d.DB, "db", controller.DBSQLite,
		"task database: sqlite (records and results written behind to security/ipcontroller[-<cluster id>]-tasks.db, "+
			"kept over a controller restart), memory (lost with the controller) or none (results not kept after delivery)")
	fs.IntVar(&d.MaxRecords, "db-max-records", controller.DefaultDBMaxRecords,
		"task records kept; beyond it the oldest finished ones are deleted (from the file too)")
}

func (d DBFlags) check() error {
	switch d.DB {
	case "", controller.DBSQLite, controller.DBMemory, controller.DBNone:
	default:
		return fmt.Errorf("--db must be sqlite, memory or none, not %q", d.DB)
	}
	if d.MaxRecords < 0 {
		return fmt.Errorf("--db-max-records must be positive, not %d", d.MaxRecords)
	}
	return nil
}

// apply sets the task database in a controller configuration.
func (d DBFlags) apply(cfg *controller.Config) error {
	if err := d.check(); err != nil {
		return err
	}
	cfg.DB, cfg.DBMaxRecords = d.DB, d.MaxRecords
	if cfg.DB == "" {
		// Options built without the flags (tests, other programs): the
		// flag's default.
		cfg.DB = controller.DBSQLite
	}
	return nil
}

// args are the flags for a controller started by a launcher, those that
// differ from the defaults.
func (d DBFlags) args() []string {
	var out []string
	if d.DB != "" && d.DB != controller.DBSQLite {
		out = append(out, "--db="+d.DB)
	}
	if d.MaxRecords != 0 && d.MaxRecords != controller.DefaultDBMaxRecords {
		out = append(out, "--db-max-records="+strconv.Itoa(d.MaxRecords))
	}
	return out
}
