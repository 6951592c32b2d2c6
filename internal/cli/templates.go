package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ipp-hpc/ipp/templates"
)

// TemplatesOptions are the options of `ipcluster templates list|show`.
type TemplatesOptions struct {
	F *Factory
	ClusterFlags
	// Action is "list" or "show".
	Action string
	// Name is the template show prints ("slurm-engines").
	Name string
	// Default shows the built-in template even when the profile has its own.
	Default bool
}

// NewCmdTemplates builds `ipcluster templates`. runF replaces
// templatesRun in tests.
func NewCmdTemplates(f *Factory, runF func(*TemplatesOptions) error) *cobra.Command {
	opts := &TemplatesOptions{F: f}
	run := func() error {
		if runF != nil {
			return runF(opts)
		}
		return templatesRun(opts)
	}
	cmd := &cobra.Command{
		Use:   "templates",
		Short: "List and print the batch-script templates",
		Long: `The batch launchers (slurm, sge, pbs, lsf, htcondor) render a job script
from a Go text/template for each role: <system>-engines and
<system>-controller. A file <profile>/templates/<name>.sh.tmpl replaces the
built-in template of that name; 'show' prints what would be used, for
editing. Fields the templates see are documented in the package
github.com/ipp-hpc/ipp/templates (type Job).`,
		Example: `  ipcluster templates list
  mkdir -p ~/.ipython/profile_default/templates
  ipcluster templates show slurm-engines > ~/.ipython/profile_default/templates/slurm-engines.sh.tmpl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Like the root command: no subcommand lists them and fails.
			cmd.SetOut(f.IO.ErrOut)
			_ = cmd.Usage()
			return errSilent
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the templates, marking those the profile overrides",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Action = "list"
			return run()
		},
	}
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Print a template (the profile's copy if it has one)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Action, opts.Name = "show", args[0]
			return run()
		},
	}
	opts.ClusterFlags.bind(list.Flags(), false)
	opts.ClusterFlags.bind(show.Flags(), false)
	show.Flags().BoolVar(&opts.Default, "default", false, "print the built-in template even when the profile overrides it")
	cmd.AddCommand(list, show)
	return cmd
}

func templatesRun(o *TemplatesOptions) error {
	dir, err := o.Dir()
	if err != nil {
		return err
	}
	out, errOut := o.F.IO.Out, o.F.IO.ErrOut
	switch o.Action {
	case "list":
		for _, name := range templates.Names() {
			_, override, err := templates.Source(dir, name)
			if err != nil {
				return err
			}
			if override != "" {
				fmt.Fprintf(out, "%s\t(overridden by %s)\n", name, override)
			} else {
				fmt.Fprintln(out, name)
			}
		}
		return nil
	case "show":
		if o.Default {
			dir = ""
		}
		text, override, err := templates.Source(dir, o.Name)
		if err != nil {
			return err
		}
		if override != "" {
			fmt.Fprintf(errOut, "ipcluster: %s is the profile's own copy (the built-in one: ipcluster templates show --default %s)\n", override, o.Name)
		}
		_, err = io.WriteString(out, text)
		return err
	}
	return fmt.Errorf("templates: unknown action %q", o.Action)
}
