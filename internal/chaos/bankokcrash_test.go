package chaos

import (
	"context"
	"testing"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/openbanking"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/pipeline"
)

// A worker killed after the bank applied a transfer and before it recorded
// it, on each dialect: the process exits 137 at after_bank_ok mid-payday
// with the transfer at the bank and not in PostgreSQL. After a restart the
// sweep's status call records it: each transfer reached the bank once (the
// sandbox's sent_again is empty: nothing was sent again), and every account
// matches the bank.
func TestKilledAfterBankApplied(t *testing.T) {
	if testing.Short() {
		t.Skip("process-kill run skipped with -short")
	}
	for _, tc := range []struct {
		dialect     string
		openbanking int
		provider    string
		attemptKey  func(string) (string, bool)
	}{
		{"rest", 0, "sandbox", rest.AttemptKey},
		{"openbanking", 10, "legacy", openbanking.AttemptKey},
	} {
		t.Run(tc.dialect, func(t *testing.T) {
			h := newHarness(t, settings{seed: 11, customers: 10, workers: 1, openbanking: tc.openbanking})
			cs := h.seed(t)
			deposits := h.payAll(t, cs)
			// One step at a time: the tasks a killed worker had dequeued and
			// not claimed wait for Asynq's recoverer (a known limit); the
			// crashed step itself is taken over by the sweep.
			runUntilCrash(t, h, pipeline.PointAfterBankOK, "SETTLE_WORKER_CONCURRENCY=1")

			unrecorded := appliedNotRecorded(t, h, tc.attemptKey)
			if len(unrecorded) == 0 {
				t.Fatal("the worker crashed after the bank applied a transfer, yet every applied transfer is recorded")
			}
			h.startWorkers(t, false)
			h.waitQuiet(t, deposits)
			h.stopWorkers(t)
			h.check(t, cs, deposits)
			for _, key := range unrecorded {
				var status string
				if err := h.db.SQL().QueryRowContext(context.Background(), `SELECT t.status || '/' || s.status
					FROM transfers t JOIN steps s ON s.id = t.step_id WHERE t.idempotency_key = $1`, key).Scan(&status); err != nil {
					t.Fatal(err)
				}
				if status != "SUCCEEDED/DONE" {
					t.Errorf("attempt %s applied before the crash is %s after the restart, want SUCCEEDED/DONE", key, status)
				}
			}
			st, err := h.bank.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(st.SentAgain) != 0 {
				t.Errorf("keys sent to the bank more than once: %v", st.SentAgain)
			}
			t.Logf("%s: killed with %d applied transfers unrecorded (%v); after the restart each recorded, none sent again",
				tc.dialect, len(unrecorded), unrecorded)
		})
	}
}

// appliedNotRecorded lists the attempt keys the bank applied that the
// engine does not record as succeeded.
func appliedNotRecorded(t *testing.T, h *harness, attemptKey func(string) (string, bool)) []string {
	t.Helper()
	ctx := context.Background()
	journal, err := h.bank.Journal(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range banksim.BankTransfers(journal, attemptKey) {
		var recorded bool
		if err := h.db.SQL().QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM transfers
			WHERE idempotency_key = $1 AND status = 'SUCCEEDED')`, b.Key).Scan(&recorded); err != nil {
			t.Fatal(err)
		}
		if !recorded {
			out = append(out, b.Key)
		}
	}
	return out
}
