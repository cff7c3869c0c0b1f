package banksim

import (
	"container/heap"
	"fmt"
	"strconv"
	"time"
)

// transferStatus is where a transfer stands.
type transferStatus string

const (
	// statusSucceeded: the money moved and the journal has the transfer.
	statusSucceeded transferStatus = "succeeded"
	// statusPending: accepted, to be applied or refused later.
	statusPending transferStatus = "pending"
	// statusFailed: refused for good; no money moved.
	statusFailed transferStatus = "failed"
)

// refusal is why the bank refused a transfer, in the core's own words; each
// dialect maps it to its codes.
type refusal string

const (
	refusedNoSuchAccount      refusal = "no_such_account"
	refusedAccountClosed      refusal = "account_closed"
	refusedAccountFrozen      refusal = "account_frozen"
	refusedHolderNameMismatch refusal = "holder_name_mismatch"
	refusedInsufficientFunds  refusal = "insufficient_funds"
)

// transferRequest is a transfer as any dialect asks for it. Key is the
// idempotency key, unique within its Dialect; which of the other fields the
// key is bound to is the dialect's idempotency rule.
type transferRequest struct {
	Key      string
	From     string
	To       string
	Holder   string // empty: no holder-name check
	Amount   int64
	Currency string
	Memo     string
	Dialect  string // which dialect sent it: its idempotency rule and the journal
	Day      string // the dialect's transaction date (YYYYMMDD), if it keys by date; never content
}

// sameContent reports whether every field but the key and the day match.
func (r transferRequest) sameContent(o transferRequest) bool {
	return r.From == o.From && r.To == o.To && r.Holder == o.Holder &&
		r.Amount == o.Amount && r.Currency == o.Currency && r.Memo == o.Memo
}

// idempotency is one dialect's rule for a key it has seen before.
type idempotency struct {
	// same reports whether req repeats the transfer first recorded under its
	// key (answer the first outcome) or conflicts with it.
	same func(first, req transferRequest) bool
	// settleOnAsk settles a pending transfer as soon as anyone asks about it
	// (its status, or sending it again); otherwise it stays pending until due.
	settleOnAsk bool
}

// idempotencyRules holds each dialect's rule; the handler files define them.
var idempotencyRules = map[string]idempotency{
	dialectRest:        restIdempotency,
	dialectOpenBanking: openBankingIdempotency,
}

// idempotencyOf returns a dialect's rule; an unknown dialect gets the
// strictest, rest's.
func idempotencyOf(dialect string) idempotency {
	if r, ok := idempotencyRules[dialect]; ok {
		return r
	}
	return restIdempotency
}

// transferKey names an idempotency record: each dialect has its own keys.
type transferKey struct {
	dialect string
	key     string
}

// transfer is the bank's record of one idempotency key.
type transfer struct {
	ID        string
	Req       transferRequest
	Status    transferStatus
	Failure   refusal // when failed
	CreatedAt time.Time
	dueAt     time.Time // when pending: resolved by then at the latest
	seq       int64     // arrival order
	heapIndex int       // position in the pending queue, or -1
}

// transfer applies or refuses req, or records it as pending until
// pendingUntil when that is not zero. A key its dialect has seen before with
// the same content (by the dialect's rule) returns the record as it stands
// (replayed is true) and moves no money; with other content it returns
// errKeyConflict. Invalid requests return errInvalid and are not remembered.
func (c *core) transfer(req transferRequest, pendingUntil time.Time) (t transfer, replayed bool, err error) {
	if err := validateTransfer(req); err != nil {
		return transfer{}, false, err
	}
	rule := idempotencyOf(req.Dialect)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleDueLocked()
	c.sent[transferKey{req.Dialect, req.Key}]++
	if old, ok := c.transfers[transferKey{req.Dialect, req.Key}]; ok && old.Status == statusFailed && c.forgetRefusals {
		delete(c.transfers, transferKey{req.Dialect, req.Key})
	}
	if old, ok := c.transfers[transferKey{req.Dialect, req.Key}]; ok {
		if !rule.same(old.Req, req) {
			return transfer{}, false, errKeyConflict
		}
		if rule.settleOnAsk {
			c.resolveLocked(old)
		}
		return *old, true, nil
	}
	if err := c.checkCurrencyLocked(req); err != nil {
		return transfer{}, false, err
	}
	return *c.recordLocked(req, pendingUntil), false, nil
}

// transferByKey returns the record of a dialect's key. A pending transfer is
// settled by being asked about when the dialect's rule says so; otherwise it
// stays pending until due.
func (c *core) transferByKey(dialect, key string) (transfer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleDueLocked()
	t, ok := c.transfers[transferKey{dialect, key}]
	if !ok {
		return transfer{}, false
	}
	if idempotencyOf(dialect).settleOnAsk {
		c.resolveLocked(t)
	}
	return *t, true
}

func (c *core) recordLocked(req transferRequest, pendingUntil time.Time) *transfer {
	c.nextTr++
	t := &transfer{
		ID:        "tr_" + strconv.FormatInt(c.nextTr, 10),
		Req:       req,
		Status:    statusPending,
		CreatedAt: c.now().UTC(),
		dueAt:     pendingUntil,
		seq:       c.nextTr,
		heapIndex: -1,
	}
	c.transfers[transferKey{req.Dialect, req.Key}] = t
	if pendingUntil.IsZero() {
		c.resolveLocked(t)
	} else {
		heap.Push(&c.pending, t)
	}
	return t
}

// settleDueLocked resolves the pending transfers whose time has come.
func (c *core) settleDueLocked() {
	now := c.now()
	for len(c.pending) > 0 && !c.pending[0].dueAt.After(now) {
		c.resolveLocked(heap.Pop(&c.pending).(*transfer))
	}
}

// resolveLocked applies or refuses a pending transfer; it does nothing to a
// transfer that is already resolved.
func (c *core) resolveLocked(t *transfer) {
	if t.Status != statusPending {
		return
	}
	if t.heapIndex >= 0 && t.heapIndex < len(c.pending) && c.pending[t.heapIndex] == t {
		heap.Remove(&c.pending, t.heapIndex)
	}
	if why := c.refusalLocked(t.Req); why != "" {
		t.Status, t.Failure = statusFailed, why
		return
	}
	c.applyLocked(t)
}

// refusalLocked returns why req must be refused, or "" when it may be
// applied.
func (c *core) refusalLocked(req transferRequest) refusal {
	to, from := c.accounts[req.To], c.accounts[req.From]
	switch {
	case to == nil || from == nil:
		return refusedNoSuchAccount
	case to.Currency != req.Currency || from.Currency != req.Currency:
		return refusedNoSuchAccount // no account in that currency
	}
	if why := stateRefusal(to.State); why != "" {
		return why
	}
	if why := stateRefusal(from.State); why != "" {
		return why
	}
	if req.Holder != "" && req.Holder != to.HolderName {
		return refusedHolderNameMismatch
	}
	if from.Balance < req.Amount {
		return refusedInsufficientFunds
	}
	return ""
}

func stateRefusal(s AccountState) refusal {
	switch s {
	case StateFrozen:
		return refusedAccountFrozen
	case StateClosed:
		return refusedAccountClosed
	}
	return ""
}

// applyLocked moves the money, writes both statement lines and the journal
// entry. The caller has checked the refusal rules, so nothing can fail here.
func (c *core) applyLocked(t *transfer) {
	req := t.Req
	from, to := c.accounts[req.From], c.accounts[req.To]
	from.Balance -= req.Amount
	to.Balance += req.Amount
	c.appendTxLocked(from, req.Amount, "debit", req.To, req.Key)
	c.appendTxLocked(to, req.Amount, "credit", req.From, req.Key)
	t.Status = statusSucceeded
	c.journal.append(JournalEntry{
		Seq:            int64(c.journal.len()) + 1,
		IdempotencyKey: req.Key,
		From:           req.From,
		To:             req.To,
		Amount:         req.Amount,
		Currency:       req.Currency,
		Dialect:        req.Dialect,
		AppliedAt:      c.now().UTC(),
	})
}

// reapply applies the succeeded transfer of a dialect's key once more: the
// money moves again and the journal gets a second entry under the same key.
// It returns errNoTransfer for a key the bank never saw, and errNotApplied
// for a transfer that did not succeed or that the refusal rules now refuse
// (the source account may be short of the amount: credit it first).
func (c *core) reapply(dialect, key string) (JournalEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleDueLocked()
	t, ok := c.transfers[transferKey{dialect, key}]
	switch {
	case !ok:
		return JournalEntry{}, fmt.Errorf("%w: the %s dialect has no transfer under that key", errNoTransfer, dialect)
	case t.Status != statusSucceeded:
		return JournalEntry{}, fmt.Errorf("%w: it is %s, not succeeded", errNotApplied, t.Status)
	}
	if why := c.refusalLocked(t.Req); why != "" {
		return JournalEntry{}, fmt.Errorf("%w: the bank would refuse it now (%s)", errNotApplied, why)
	}
	c.applyLocked(t)
	return c.journal.copyRange(c.journal.len()-1, c.journal.len())[0], nil
}

// forget drops the bank's record of a dialect's key, as a bank past its
// key retention does: the journal keeps the transfer, but the key sent
// again is a new transfer and its status call answers "never seen". It
// returns errNoTransfer for a key the bank does not know.
func (c *core) forget(dialect, key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleDueLocked()
	t, ok := c.transfers[transferKey{dialect, key}]
	if !ok {
		return fmt.Errorf("%w: the %s dialect has no transfer under that key", errNoTransfer, dialect)
	}
	if t.heapIndex >= 0 {
		heap.Remove(&c.pending, t.heapIndex)
	}
	delete(c.transfers, transferKey{dialect, key})
	return nil
}

// checkCurrencyLocked refuses, as an invalid request, a currency that does
// not match an account that exists.
func (c *core) checkCurrencyLocked(req transferRequest) error {
	for _, id := range []string{req.From, req.To} {
		if a, ok := c.accounts[id]; ok && a.Currency != req.Currency {
			return fmt.Errorf("%w: currency %s does not match the account's currency %s", errInvalid, req.Currency, a.Currency)
		}
	}
	return nil
}

func validateTransfer(req transferRequest) error {
	if err := validateText("idempotency key", req.Key, 1, 64); err != nil {
		return err
	}
	if err := validateAccountID("from_account", req.From); err != nil {
		return err
	}
	if err := validateAccountID("to_account", req.To); err != nil {
		return err
	}
	if req.From == req.To {
		return fmt.Errorf("%w: from_account and to_account must differ", errInvalid)
	}
	if req.Amount <= 0 {
		return fmt.Errorf("%w: amount must be a positive number of minor units", errInvalid)
	}
	if err := validateText("to_holder_name", req.Holder, 0, 100); err != nil {
		return err
	}
	if err := validateText("memo", req.Memo, 0, 140); err != nil {
		return err
	}
	return validateCurrency(req.Currency)
}

// pendingQueue is a min-heap of pending transfers by due time, then by
// arrival.
type pendingQueue []*transfer

func (q pendingQueue) Len() int { return len(q) }
func (q pendingQueue) Less(i, j int) bool {
	if q[i].dueAt.Equal(q[j].dueAt) {
		return q[i].seq < q[j].seq
	}
	return q[i].dueAt.Before(q[j].dueAt)
}
func (q pendingQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].heapIndex, q[j].heapIndex = i, j
}
func (q *pendingQueue) Push(x any) {
	t := x.(*transfer)
	t.heapIndex = len(*q)
	*q = append(*q, t)
}
func (q *pendingQueue) Pop() any {
	old := *q
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	t.heapIndex = -1
	return t
}
