package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// An actor with spaces or control characters is a usage error that
// changes nothing; an applied command's audit entry shows what it changed
// in the text list, with its place in the chain; verify finds the chain
// intact, and names the entry an owner changed behind the append-only
// trigger's back.
func TestAuditListShowsChangesAndVerifyChecksTheChain(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	ctx := context.Background()
	_, cs := e.seeded(t, 1)
	ref := cs[0].Ref
	for _, actor := range []string{"kim lee", "kim\x1b[31m", "", strings.Repeat("k", 129)} {
		out := e.cli(t, 2, "customers", "update", ref, "--status", "SUSPENDED", "--reason", "customer asked", "--actor", actor)
		if !strings.Contains(out, "--actor") || !strings.Contains(out, "nothing was changed") {
			t.Errorf("--actor %q: %s", actor, out)
		}
	}
	if out := e.cli(t, 0, "audit", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("a refused actor wrote audit rows:\n%s", out)
	}
	if c, err := e.db.GetCustomer(ctx, ref); err != nil || c.Status != "ACTIVE" {
		t.Fatalf("a refused actor changed the customer: %+v %v", c, err)
	}

	e.cli(t, 0, "customers", "update", ref, "--status", "SUSPENDED", "--hold", "5000", "--reason", "customer asked", "--actor", "kim@ops.example")
	e.cli(t, 1, "customers", "payday", ref, "--day", "40", "--reason", "typo", "--actor", "kim@ops.example")
	text := e.cli(t, 0, "audit", "list")
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "SEQ") || !strings.HasSuffix(strings.TrimSpace(lines[0]), "CHANGES") ||
		!strings.HasPrefix(lines[1], "2 ") || !strings.HasPrefix(lines[2], "1 ") {
		t.Fatalf("audit list, newest first with its seq:\n%s", text)
	}
	for _, want := range []string{"status: ACTIVE → SUSPENDED", "hold: 0 → 5000", "kim@ops.example"} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("the update's entry does not show %q:\n%s", want, lines[2])
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(lines[1]), " -") {
		t.Errorf("a refused command's entry shows changes:\n%s", lines[1])
	}
	if out := e.cli(t, 0, "verify"); !strings.Contains(out, "all invariants hold") {
		t.Fatalf("verify of an intact chain:\n%s", out)
	}

	var id int64
	if err := e.db.SQL().QueryRowContext(ctx, `SELECT id FROM audit_log WHERE seq = 1`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only`,
		`UPDATE audit_log SET reason = 'routine' WHERE seq = 1`,
		`ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only`,
	} {
		if _, err := e.db.SQL().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	out := e.cli(t, 3, "verify")
	if want := fmt.Sprintf("VIOLATION audit_chain_intact settlement=0: audit_log row %d (seq 1): its content does not match its hash", id); !strings.Contains(out, want) {
		t.Fatalf("verify after an entry was changed:\n%s\nwant %q", out, want)
	}
}
