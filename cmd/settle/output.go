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
