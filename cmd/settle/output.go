package main

import (
	"io"
	"os"
	"time"
)

// timeLayout is how the command line prints a time for people: to the
// second, with the offset of the zone it is shown in.
const timeLayout = "2006-01-02 15:04:05 -07:00"

// localTime prints t in loc, the configured time_zone (config.Location), as
// every text output of the command line shows times:
// "2026-12-07 14:03:11 +09:00". JSON output keeps RFC 3339.
func localTime(t time.Time, loc *time.Location) string {
	return t.In(loc).Format(timeLayout)
}

// isTerminal reports whether w is a character device (a terminal): progress
// bars are drawn only there; bench prints a line every few seconds anywhere
// else.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// ANSI colours of the text output.
const (
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	plain  = "\x1b[39m" // the terminal's own colour
	reset  = "\x1b[0m"
)

// wordColours are the words of the text output that carry a colour:
// failures red, what went through green, what needs a look yellow.
var wordColours = map[string]string{
	"FAILED": red, "DEAD": red, "REFUSED": red, "VIOLATION": red, "ERROR": red,
	"SETTLED": green, "DONE": green, "SUCCEEDED": green, "COMPENSATED": green, "RESOLVED": green, "ok": green,
	"UNKNOWN": yellow, "UNREACHABLE": yellow, "COMPENSATING": yellow, "OPEN": yellow, "NEW": yellow,
}

// colours paints the words of wordColours when on.
type colours struct{ on bool }

// coloursFor is on when w is a terminal and NO_COLOR is unset or empty
// (no-color.org): never when the output is piped or written to a file, and
// JSON output never asks for it.
func coloursFor(w io.Writer) colours {
	return colours{on: isTerminal(w) && os.Getenv("NO_COLOR") == ""}
}

// paint returns word in its colour. When on, a word without a colour is
// wrapped in the terminal's own, so that every cell of a column paint fills
// is as much longer as the others and text/tabwriter keeps it aligned;
// paint its header too.
func (c colours) paint(word string) string {
	if !c.on {
		return word
	}
	if col, ok := wordColours[word]; ok {
		return col + word + reset
	}
	return plain + word + reset
}
