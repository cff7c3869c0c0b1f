package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// Colours only on a terminal (a character device: /dev/null is one) and
// only while NO_COLOR is unset or empty; painted, a table reads exactly
// as it does plain once the escapes are taken out, so its columns stay
// aligned.
func TestColoursOnlyOnATerminal(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	var buf bytes.Buffer
	if coloursFor(&buf).on {
		t.Fatal("colours on for a buffer (a pipe or a file)")
	}
	tty, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	if !coloursFor(tty).on {
		t.Fatal("colours off on a character device with NO_COLOR empty")
	}
	t.Setenv("NO_COLOR", "1")
	if coloursFor(tty).on {
		t.Fatal("colours on with NO_COLOR=1")
	}

	at := time.Date(2026, 12, 7, 5, 3, 11, 0, time.UTC)
	rows := []store.SettlementRow{
		{ID: 1, CustomerRef: "c-1", Status: pipeline.SettlementFailed, Amount: 3_760_000, Currency: "KRW", CreatedAt: at},
		{ID: 2, CustomerRef: "c-22", Status: pipeline.SettlementSettled, Amount: 10_000, Currency: "KRW", CreatedAt: at},
		{ID: 3, CustomerRef: "c-333", Status: pipeline.SettlementRunning, Amount: 5, Currency: "KRW", CreatedAt: at},
	}
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	var plainOut, painted bytes.Buffer
	if err := printSettlements(&plainOut, rows, seoul, colours{}); err != nil {
		t.Fatal(err)
	}
	if err := printSettlements(&painted, rows, seoul, colours{on: true}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plainOut.String(), "\x1b") {
		t.Errorf("colours off, yet escapes:\n%q", plainOut.String())
	}
	for _, want := range []string{red + "FAILED" + reset, green + "SETTLED" + reset, plain + "RUNNING" + reset, "3,760,000 KRW", "2026-12-07 14:03:11 +09:00"} {
		if !strings.Contains(painted.String(), want) {
			t.Errorf("painted list lacks %q:\n%s", want, painted.String())
		}
	}
	if stripped := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(painted.String(), ""); stripped != plainOut.String() {
		t.Errorf("painted and plain differ but for the escapes:\n%s\n%s", stripped, plainOut.String())
	}
}
