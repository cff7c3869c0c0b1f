package store_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// What a customer's settlement came to: the settlement and step statuses,
// the obligation, the ledger, the attempts and the events.
func outcomeOf(t *testing.T, db *store.DB, target store.PollTarget, settlementID int64) string {
	t.Helper()
	var out string
	err := db.SQL().QueryRowContext(context.Background(), `
		SELECT s.status || ' steps ' || (SELECT string_agg(kind || ':' || status || ':' || attempts, ',' ORDER BY seq) FROM steps WHERE settlement_id = s.id)
		       || ' attempts ' || (SELECT string_agg(t.status || ':' || t.attempt, ',' ORDER BY st.seq) FROM transfers t JOIN steps st ON st.id = t.step_id WHERE st.settlement_id = s.id)
		       || ' journals ' || (SELECT count(*) FROM journals WHERE settlement_id = s.id)
		       || ' ledger ' || (SELECT string_agg(regexp_replace(p.account, '(one|batch)[0-9]+', 'C', 'g') || '=' || p.amount, ',' ORDER BY j.id, p.id)
		                           FROM journals j JOIN postings p ON p.journal_id = j.id WHERE j.settlement_id = s.id)
		       || ' obligation ' || o.outstanding || '/' || o.repaid_total || '/' || o.held_total
		       || ' events ' || (SELECT count(*) FROM customer_events WHERE settlement_id = s.id)
		       || ' va held ' || (va.held_until IS NOT NULL)
		  FROM settlements s JOIN obligations o ON o.customer_id = s.customer_id JOIN virtual_accounts va ON va.id = s.va_id
		 WHERE s.id = $1`, settlementID).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Claims and records made in batches leave exactly what the same steps
// claimed and recorded one at a time leave: the same statuses, attempts,
// journals, obligations and events, customer by customer, with batches
// that mix first steps, middle steps, last money steps and NOTIFY. A step
// that is not claimable is left out of a batch's claims, and a record whose
// fence moved is refused while the others of its batch are written.
func TestBatchedClaimsAndRecordsMatchOneAtATime(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	obligations := []pipeline.Obligations{
		{Outstanding: 300_000, Hold: 50_000, FeeFixed: 1_000},
		{Outstanding: 900_000},
		{Hold: 20_000, FeeBPS: 100},
		{},
		{Outstanding: 100_000, FeeFixed: 500},
	}
	type customer struct {
		target  store.PollTarget
		created store.Created
	}
	seed := func(prefix string) []customer {
		var cs []customer
		for i, ob := range obligations {
			target, created := seedSettlement(t, db, fmt.Sprintf("%s%d", prefix, i), 500_000+int64(i)*1_000, ob)
			cs = append(cs, customer{target, created})
		}
		return cs
	}
	single, batched := seed("one"), seed("batch")

	for _, c := range single {
		completeAll(t, db, c.created.HeadStepID)
	}

	// Customer i starts i rounds late, so the batches mix steps of every
	// position; each round claims what is READY in one statement and
	// records it in one statement.
	next := map[int64]int64{} // settlement → its next step
	notClaimable := int64(1 << 40)
	for round := 0; ; round++ {
		var ids []int64
		for i, c := range batched {
			if i == round {
				next[c.created.SettlementID] = c.created.HeadStepID
			}
		}
		for _, id := range next {
			if id != 0 {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 && round >= len(batched) {
			break
		}
		if len(ids) == 0 {
			continue
		}
		slices.Sort(ids)
		claims, err := db.ClaimBatch(ctx, append(slices.Clone(ids), notClaimable), time.Minute)
		if err != nil {
			t.Fatalf("round %d: claim batch: %v", round, err)
		}
		if got := slices.Sorted(maps.Keys(claims)); !slices.Equal(got, ids) {
			t.Fatalf("round %d: claimed %v, want %v", round, got, ids)
		}
		var cs []pipeline.Claim
		for _, id := range ids {
			cs = append(cs, claims[id])
		}
		// In the second round, the first customer's record comes from a
		// claim whose fence has moved on: it must write nothing.
		if round == 1 {
			stale := cs[0]
			stale.Fence--
			got, err := db.CompleteBatch(ctx, []pipeline.Claim{stale, cs[1]})
			if err != nil {
				t.Fatalf("record with a stale fence: %v", err)
			}
			if _, held := got[stale.StepID]; held || len(got) != 1 {
				t.Fatalf("records %v: the stale fence of step %d held, or the other record was lost", got, stale.StepID)
			}
			next[cs[1].SettlementID] = got[cs[1].StepID].ID
			cs = slices.Delete(cs, 1, 2)
		}
		done, err := db.CompleteBatch(ctx, cs)
		if err != nil {
			t.Fatalf("round %d: record batch: %v", round, err)
		}
		if len(done) != len(cs) {
			t.Fatalf("round %d: %d of %d records held", round, len(done), len(cs))
		}
		for _, c := range cs {
			next[c.SettlementID] = done[c.StepID].ID
		}
	}

	for i := range batched {
		want := outcomeOf(t, db, single[i].target, single[i].created.SettlementID)
		got := outcomeOf(t, db, batched[i].target, batched[i].created.SettlementID)
		if got != want {
			t.Errorf("customer %d batched:\n %s\none at a time:\n %s", i, got, want)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM settlements WHERE status <> 'SETTLED'`); n != 0 {
		t.Fatalf("%d settlements not SETTLED", n)
	}
	mustVerify(t, db)
}

// A batch of records whose connection is cut while its statement waits
// (the third step's row is locked, the backend terminated) commits none of
// them: cut mid-statement, the batch is one transaction. database/sql then
// runs it again on a new connection, or the caller records again; either
// way each step ends DONE with one journal and one SUCCEEDED attempt.
func TestBatchOfRecordsCutMidStatementCommitsNothingOrAll(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	var heads []int64
	for i := range 3 {
		_, created := seedSettlement(t, db, fmt.Sprintf("cut%d", i), 500_000, pipeline.Obligations{Outstanding: 100_000})
		heads = append(heads, created.HeadStepID)
	}
	claims, err := db.ClaimBatch(ctx, heads, time.Minute)
	if err != nil || len(claims) != 3 {
		t.Fatalf("claim batch: %v, %d claims", err, len(claims))
	}
	var cs []pipeline.Claim
	for _, id := range heads {
		cs = append(cs, claims[id])
	}

	lock, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback() }()
	if _, err := lock.ExecContext(ctx, `SELECT 1 FROM steps WHERE id = $1 FOR UPDATE`, heads[2]); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		done map[int64]pipeline.StepRef
		err  error
	}
	recorded := make(chan outcome, 1)
	go func() {
		done, err := db.CompleteBatch(ctx, cs)
		recorded <- outcome{done, err}
	}()
	terminated := 0
	for deadline := time.Now().Add(10 * time.Second); terminated == 0; {
		if time.Now().After(deadline) {
			select {
			case got := <-recorded:
				t.Fatalf("no backend waited on the locked step within 10s; the record returned %v, %v", got.done, got.err)
			default:
				t.Fatal("no backend waited on the locked step within 10s")
			}
		}
		// Not from the locking transaction: it would see one snapshot of
		// pg_stat_activity for as long as it lasts.
		if err := db.SQL().QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`).Scan(&terminated); err != nil {
			t.Fatal(err)
		}
	}
	// The cut statement wrote nothing that shows: the lock is still held.
	if n := count(t, db, `SELECT count(*) FROM journals WHERE step_id = ANY($1)`, pq.Array(heads)); n != 0 {
		t.Fatalf("%d journals of the cut batch are visible", n)
	}
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	got := <-recorded
	t.Logf("the cut record returned %v (nil: database/sql ran it again on a new connection)", got.err)
	if got.err != nil {
		if n := count(t, db, `SELECT count(*) FROM steps WHERE id = ANY($1) AND status = 'RUNNING'`, pq.Array(heads)); n != 3 {
			t.Fatalf("record failed (%v) with %d of 3 steps still RUNNING: part of the batch committed", got.err, n)
		}
		if got.done, got.err = db.CompleteBatch(ctx, cs); got.err != nil {
			t.Fatalf("record again: %v", got.err)
		}
	}
	if len(got.done) != 3 {
		t.Fatalf("records held for %v, want the 3 steps", got.done)
	}
	if n := count(t, db, `SELECT count(*) FROM steps s WHERE s.id = ANY($1) AND s.status = 'DONE'
	                       AND (SELECT count(*) FROM journals j WHERE j.step_id = s.id) = 1
	                       AND (SELECT count(*) FROM transfers t WHERE t.step_id = s.id AND t.status = 'SUCCEEDED') = 1`,
		pq.Array(heads)); n != 3 {
		t.Fatalf("%d of 3 steps DONE with one journal and one SUCCEEDED attempt", n)
	}
	mustVerify(t, db)
}
