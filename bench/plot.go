package main

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// systems are the lines of every chart, ours first.
var systems = []string{"ipp", "ipyparallel", "dask"}

// valueOf returns system's value of key in r ("floor" is Run.Floor).
func valueOf(r *Run, system, key string) (float64, bool) {
	var m results
	switch system {
	case "ipp":
		m = r.Ours
	case "floor":
		m = r.Floor
	default:
		m = r.Peers[system]
	}
	v, ok := m[key]
	return v, ok && v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v)
}

// drawCurve writes c's chart into dir: a line per system (and per Extra
// series) over the points measured; both axes on a log scale, with the
// measured points as the x ticks. It reports false when no system has
// two points (nothing to draw).
func drawCurve(dir string, c Curve, r *Run) (bool, error) {
	xs := c.Xs(r.Opts)
	p := plot.New()
	p.Title.Text = c.Title
	p.X.Label.Text, p.Y.Label.Text = c.XLabel, c.YLabel
	p.X.Scale = plot.LogScale{}
	var ticks []plot.Tick
	for _, x := range xs {
		ticks = append(ticks, plot.Tick{Value: float64(x), Label: strconv.Itoa(x)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	if c.LogY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	type line struct {
		label, system string
		key           func(int) string
	}
	var lines []line
	for _, s := range systems {
		lines = append(lines, line{s, s, c.Key})
	}
	for _, e := range c.Extra {
		lines = append(lines, line{e.Label, "floor", e.Key})
	}
	drawn := false
	for i, l := range lines {
		var pts plotter.XYs
		for _, x := range xs {
			if v, ok := valueOf(r, l.system, l.key(x)); ok {
				pts = append(pts, plotter.XY{X: float64(x), Y: v})
			}
		}
		if len(pts) == 0 {
			continue
		}
		ln, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return false, err
		}
		col := plotutil.Color(i)
		if l.system == "floor" {
			col = color.Gray{Y: uint8(60 + 60*(i-len(systems)))}
			ln.Dashes = plotutil.Dashes(1 + i - len(systems))
		}
		ln.Color, sc.Color, sc.Shape = col, col, plotutil.Shape(i)
		p.Add(ln, sc)
		p.Legend.Add(l.label, ln, sc)
		drawn = drawn || len(pts) > 1
	}
	if !drawn {
		return false, nil
	}
	// Room above the lines for the legend (a decade on a log axis).
	if c.LogY {
		p.Y.Max *= 10
	} else {
		p.Y.Max *= 1.3
	}
	if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, filepath.Join(dir, c.File)); err != nil {
		return false, fmt.Errorf("chart %s: %w", c.File, err)
	}
	return true, nil
}
