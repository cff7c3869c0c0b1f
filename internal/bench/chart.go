package bench

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	chartW      = 960.0
	panelH      = 230.0
	marginL     = 72.0
	marginR     = 24.0
	marginTop   = 86.0
	panelGap    = 70.0
	chartBottom = 48.0
)

// series line of a panel.
type chartLine struct {
	name, color string
	ys          []float64
}

type chartPanel struct {
	title string
	lines []chartLine
}

// WriteChart draws the run over time as SVG: settlements detected and
// settled per second, and the p50 and p99 detection → settled latency of
// the settlements that ended in each second.
func WriteChart(w io.Writer, r *Result) error {
	xs := make([]float64, len(r.Series))
	var detected, settled, p50, p99 []float64
	for i, p := range r.Series {
		xs[i] = p.T
		detected = append(detected, float64(p.Detected))
		settled = append(settled, float64(p.Settled))
		p50 = append(p50, p.P50MS)
		p99 = append(p99, p.P99MS)
	}
	panels := []chartPanel{
		{title: "settlements per second", lines: []chartLine{
			{"detected (created by the poll)", "#9aa5b1", detected},
			{"settled", "#1f6feb", settled},
		}},
		{title: "detection → settled latency of the settlements settled in each second (ms)", lines: []chartLine{
			{"p50", "#2da44e", p50},
			{"p99", "#cf222e", p99},
		}},
	}
	height := marginTop + float64(len(panels))*panelH + float64(len(panels)-1)*panelGap + chartBottom
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n",
		chartW, height, chartW, height)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(bw, `<text x="%.0f" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", marginL, esc(chartTitle(r)))
	fmt.Fprintf(bw, `<text x="%.0f" y="44" fill="#57606a">%s</text>`+"\n", marginL, esc(chartSubtitle(r)))
	xMax := niceCeil(lastOr(xs, 1))
	for i, p := range panels {
		top := marginTop + float64(i)*(panelH+panelGap)
		drawPanel(bw, p, xs, xMax, top)
	}
	fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#57606a">seconds since the engine started</text>`+"\n",
		marginL+(chartW-marginL-marginR)/2, height-12)
	fmt.Fprintln(bw, `</svg>`)
	return bw.Flush()
}

func drawPanel(w io.Writer, p chartPanel, xs []float64, xMax, top float64) {
	plotW := chartW - marginL - marginR
	yMax := 0.0
	for _, l := range p.lines {
		for _, y := range l.ys {
			yMax = math.Max(yMax, y)
		}
	}
	yMax = niceCeil(math.Max(yMax, 1))
	x := func(v float64) float64 { return marginL + v/xMax*plotW }
	y := func(v float64) float64 { return top + panelH - v/yMax*panelH }
	fmt.Fprintf(w, `<text x="%.0f" y="%.1f" font-weight="bold">%s</text>`+"\n", marginL, top-10, esc(p.title))
	fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#d0d7de"/>`+"\n", marginL, top, plotW, panelH)
	for _, v := range ticks(yMax) {
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eaeef2"/>`, marginL, y(v), marginL+plotW, y(v))
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#57606a">%s</text>`+"\n", marginL-6, y(v)+4, num(v))
	}
	for _, v := range ticks(xMax) {
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#57606a">%s</text>`+"\n", x(v), top+panelH+16, num(v))
	}
	for i, l := range p.lines {
		var pts strings.Builder
		for j, v := range l.ys {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(xs[j]), y(v))
		}
		fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="1.5" stroke-linejoin="round" points="%s"/>`+"\n", l.color, strings.TrimSpace(pts.String()))
		lx := marginL + plotW - 260
		ly := top + 16 + float64(i)*16
		fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="14" height="3" fill="%s"/><text x="%.1f" y="%.1f">%s</text>`+"\n",
			lx, ly-4, l.color, lx+20, ly, esc(l.name))
	}
}

func chartTitle(r *Result) string {
	mode := "in-process"
	if r.Params.Processes > 0 {
		mode = fmt.Sprintf("%d worker processes", r.Params.Processes)
	}
	deposits := "all paid at once"
	if r.Params.ArrivalRate > 0 {
		deposits = fmt.Sprintf("%g deposits/s", r.Params.ArrivalRate)
	}
	return fmt.Sprintf("settle bench: %d customers (%s), concurrency %d, bank latency %s ms, %s", r.Params.Customers,
		deposits, r.Params.Concurrency, r.Params.Latency, mode)
}

func chartSubtitle(r *Result) string {
	return fmt.Sprintf("%.0f settlements/s (steady %.0f), %.0f steps/s; detection → settled p50 %.0f ms, p99 %.0f ms; credit → settled p99 %.0f s; %d CPUs",
		r.SettlementsPerSec, r.SteadySettlementsPerSec, r.StepsPerSec, r.LatencyP50MS, r.LatencyP99MS, r.DepositLatencyP99MS/1000, r.Machine.CPUs)
}

// ticks are 0 and multiples of a 1-2-5 step up to top (about 5 of them).
func ticks(top float64) []float64 {
	step := niceStep(top / 5)
	var out []float64
	for v := 0.0; v <= top*1.0000001; v += step {
		out = append(out, v)
	}
	return out
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// niceCeil rounds v up to a multiple of a 1-2-5 step.
func niceCeil(v float64) float64 {
	step := niceStep(v / 5)
	return math.Ceil(v/step) * step
}

func lastOr(xs []float64, def float64) float64 {
	if len(xs) == 0 || xs[len(xs)-1] <= 0 {
		return def
	}
	return xs[len(xs)-1]
}

func num(v float64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.0fk", v/1000)
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

func esc(s string) string { return html.EscapeString(s) }
