package banksim

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// AccountState is whether an account may send and receive money.
type AccountState string

const (
	// StateActive accounts send and receive money.
	StateActive AccountState = "active"
	// StateFrozen accounts are suspended: transfers from or to them are
	// refused with account_frozen.
	StateFrozen AccountState = "frozen"
	// StateClosed accounts are closed: transfers from or to them are refused
	// with account_closed.
	StateClosed AccountState = "closed"
)

func (s AccountState) valid() bool {
	return s == StateActive || s == StateFrozen || s == StateClosed
}

// Account is one account of the sandbox bank as the sandbox endpoints show
// it.
type Account struct {
	ID         string       `json:"account_id"`
	HolderName string       `json:"holder_name"`
	Balance    int64        `json:"balance"`
	Currency   string       `json:"currency"`
	State      AccountState `json:"state"`
}

// Transaction is one line of an account's statement: a credit from outside
// or one side of a transfer.
type Transaction struct {
	ID             string    `json:"id"`
	Amount         int64     `json:"amount"`
	Direction      string    `json:"direction"` // "credit" or "debit"
	Counterparty   string    `json:"counterparty"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// JournalEntry is one transfer the bank applied.
type JournalEntry struct {
	Seq            int64     `json:"seq"`
	IdempotencyKey string    `json:"idempotency_key"`
	From           string    `json:"from"`
	To             string    `json:"to"`
	Amount         int64     `json:"amount"`
	Currency       string    `json:"currency"`
	Dialect        string    `json:"dialect"`
	AppliedAt      time.Time `json:"applied_at"`
}

// Errors of the core; handlers map them to HTTP answers.
var (
	errInvalid       = errors.New("invalid request")
	errAccountExists = errors.New("account already exists")
	errNoAccount     = errors.New("no such account")
	errKeyConflict   = errors.New("idempotency key already used with different content")
	errNoTransfer    = errors.New("no transfer with that key")
	errNotApplied    = errors.New("transfer cannot be applied again")
)

type account struct {
	Account
	txns chunked[Transaction]
}

// core is the bank itself: every balance, idempotency record and journal
// entry, behind one mutex held only for O(1) or O(batch) work.
type core struct {
	mu        sync.Mutex
	now       func() time.Time
	accounts  map[string]*account
	transfers map[transferKey]*transfer
	pending   pendingQueue
	journal   chunked[JournalEntry]
	total     int64 // sum of all balances; kept <= MaxInt64 so none overflows
	nextTx    int64
	nextTr    int64
	// sent counts the valid transfer requests of each key, replays
	// included, so a test can see a key sent twice that the bank
	// deduplicated.
	sent map[transferKey]int64
	// forgetRefusals forgets a refused key: the same key sent again is
	// processed anew (Faults.ForgetRefusals).
	forgetRefusals bool
}

func newCore(now func() time.Time) *core {
	c := &core{now: now}
	c.reset()
	return c
}

// reset forgets everything.
func (c *core) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.accounts = make(map[string]*account)
	c.transfers = make(map[transferKey]*transfer)
	c.pending = nil
	c.journal = chunked[JournalEntry]{}
	c.sent = make(map[transferKey]int64)
	c.total, c.nextTx, c.nextTr = 0, 0, 0
}

// setForgetRefusals switches whether a refused key is forgotten.
func (c *core) setForgetRefusals(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgetRefusals = on
}

// sentAgain returns the keys sent more than once ("dialect/key" → times).
func (c *core) sentAgain() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int64{}
	for k, n := range c.sent {
		if n > 1 {
			out[k.dialect+"/"+k.key] = n
		}
	}
	return out
}

// createAccount opens an account with an opening balance.
func (c *core) createAccount(a Account) (Account, error) {
	if a.State == "" {
		a.State = StateActive
	}
	if err := validateNewAccount(a); err != nil {
		return Account{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.accounts[a.ID]; ok {
		return Account{}, fmt.Errorf("%w: %q", errAccountExists, a.ID)
	}
	if a.Balance > math.MaxInt64-c.total {
		return Account{}, fmt.Errorf("%w: balance would overflow the bank's total", errInvalid)
	}
	c.total += a.Balance
	c.accounts[a.ID] = &account{Account: a}
	return a, nil
}

func validateNewAccount(a Account) error {
	if err := validateAccountID("account_id", a.ID); err != nil {
		return err
	}
	if err := validateText("holder_name", a.HolderName, 1, 100); err != nil {
		return err
	}
	if a.Balance < 0 {
		return fmt.Errorf("%w: balance must not be negative", errInvalid)
	}
	if !a.State.valid() {
		return fmt.Errorf("%w: state must be active, frozen or closed", errInvalid)
	}
	return validateCurrency(a.Currency)
}

// credit adds money that arrives from outside the bank.
func (c *core) credit(id string, amount int64, counterparty string) (Account, error) {
	if amount <= 0 {
		return Account{}, fmt.Errorf("%w: amount must be a positive number of minor units", errInvalid)
	}
	if err := validateText("counterparty", counterparty, 0, 100); err != nil {
		return Account{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleDueLocked()
	a, ok := c.accounts[id]
	if !ok {
		return Account{}, errNoAccount
	}
	if amount > math.MaxInt64-c.total {
		return Account{}, fmt.Errorf("%w: amount would overflow the bank's total", errInvalid)
	}
	c.total += amount
	a.Balance += amount
	c.appendTxLocked(a, amount, "credit", counterparty, "")
	return a.Account, nil
}

// setState freezes, closes, reopens or renames an account. An empty holder
// keeps the current holder name.
func (c *core) setState(id string, state AccountState, holder string) (Account, error) {
	if !state.valid() {
		return Account{}, fmt.Errorf("%w: state must be active, frozen or closed", errInvalid)
	}
	if err := validateText("holder_name", holder, 0, 100); err != nil {
		return Account{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleDueLocked()
	a, ok := c.accounts[id]
	if !ok {
		return Account{}, errNoAccount
	}
	a.State = state
	if holder != "" {
		a.HolderName = holder
	}
	return a.Account, nil
}

// account returns one account.
func (c *core) account(id string) (Account, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleDueLocked()
	a, ok := c.accounts[id]
	if !ok {
		return Account{}, errNoAccount
	}
	return a.Account, nil
}

// balances returns the accounts it knows, in the order asked and without
// repeats, and the IDs it does not know.
func (c *core) balances(ids []string) (found []Account, missing []string) {
	seen := make(map[string]bool, len(ids))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleDueLocked()
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if a, ok := c.accounts[id]; ok {
			found = append(found, a.Account)
		} else {
			missing = append(missing, id)
		}
	}
	return found, missing
}

// transactions returns up to limit statement lines of an account after the
// cursor (the number of lines already seen) and the cursor to resume from.
func (c *core) transactions(id string, after, limit int) (page []Transaction, next int, more bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleDueLocked()
	a, ok := c.accounts[id]
	if !ok {
		return nil, 0, false, errNoAccount
	}
	n := a.txns.len()
	after = min(after, n)
	end := min(after+limit, n)
	return a.txns.copyRange(after, end), end, end < n, nil
}

// journalPage returns up to limit journal entries with seq > after.
func (c *core) journalPage(after int64, limit int) (page []JournalEntry, more bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleDueLocked()
	n := c.journal.len()
	start := int(min(max(after, 0), int64(n)))
	end := min(start+limit, n)
	return c.journal.copyRange(start, end), end < n
}

// applied returns the number of transfers applied since the last reset.
func (c *core) applied() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(c.journal.len())
}

func (c *core) appendTxLocked(a *account, amount int64, dir, counterparty, key string) {
	c.nextTx++
	a.txns.append(Transaction{
		ID:             "tx_" + strconv.FormatInt(c.nextTx, 10),
		Amount:         amount,
		Direction:      dir,
		Counterparty:   counterparty,
		IdempotencyKey: key,
		CreatedAt:      c.now().UTC(),
	})
}

func validateAccountID(field, id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("%w: %s must be 1 to 64 characters", errInvalid, field)
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("%w: %s may hold only letters, digits, '-', '_' and '.'", errInvalid, field)
		}
	}
	return nil
}

func validateText(field, s string, minLen, maxLen int) error {
	n := utf8.RuneCountInString(s)
	if n < minLen || n > maxLen || !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s must be %d to %d characters of UTF-8", errInvalid, field, minLen, maxLen)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s must not contain control characters", errInvalid, field)
		}
	}
	return nil
}

func validateCurrency(code string) error {
	if len(code) != 3 || !isUpper(code[0]) || !isUpper(code[1]) || !isUpper(code[2]) {
		return fmt.Errorf("%w: currency must be three upper-case letters such as KRW", errInvalid)
	}
	return nil
}

func isUpper(b byte) bool { return b >= 'A' && b <= 'Z' }
