package banksim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxAnswer is the largest answer the Client reads.
const maxAnswer = 16 << 20

// ErrAccountExists is returned by Client.CreateAccount when the account
// already exists (HTTP 409).
var ErrAccountExists = errors.New("sandbox account already exists")

// APIError is an error answer of the sandbox bank.
type APIError struct {
	Op         string // e.g. "create account"
	StatusCode int
	Code       string // the "code" of the error body
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("banksim %s: HTTP %d %s: %s", e.Op, e.StatusCode, e.Code, e.Message)
}

// Is makes errors.Is(err, ErrAccountExists) true for a 409 on create.
func (e *APIError) Is(target error) bool {
	return target == ErrAccountExists && e.StatusCode == http.StatusConflict
}

// Client calls the sandbox-only endpoints of a sandbox bank. It is safe for
// concurrent use.
type Client struct {
	base     string
	auth     string
	http     *http.Client
	pageSize int
}

// NewClient returns a client for the sandbox bank at baseURL (such as
// "http://localhost:8081"). A nil httpClient means one with a 30 s timeout.
func NewClient(baseURL, token string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), auth: "Bearer " + token, http: httpClient, pageSize: journalMaxPage}
}

// CreateAccount opens an account; it returns an error matching
// ErrAccountExists if the ID is taken. An empty State means active.
func (c *Client) CreateAccount(ctx context.Context, a Account) (Account, error) {
	var out Account
	err := c.do(ctx, "create account", http.MethodPost, "/sandbox/accounts", a, &out)
	return out, err
}

// Credit adds money that arrives from outside the bank, such as a payroll
// deposit, and returns the account after it.
func (c *Client) Credit(ctx context.Context, id string, amount int64, counterparty string) (Account, error) {
	var out Account
	err := c.do(ctx, "credit", http.MethodPost, accountPath(id)+"/credit", creditRequest{Amount: amount, Counterparty: counterparty}, &out)
	return out, err
}

// SetState freezes, closes or reopens an account; a non-empty holderName
// also renames its holder.
func (c *Client) SetState(ctx context.Context, id string, state AccountState, holderName string) (Account, error) {
	var out Account
	err := c.do(ctx, "set state", http.MethodPost, accountPath(id)+"/state", stateRequest{State: state, HolderName: holderName}, &out)
	return out, err
}

// Account returns one account's balance, state and holder name.
func (c *Client) Account(ctx context.Context, id string) (Account, error) {
	var out Account
	err := c.do(ctx, "get account", http.MethodGet, accountPath(id), nil, &out)
	return out, err
}

// SetFaults replaces the fault injection; Faults{} clears it.
func (c *Client) SetFaults(ctx context.Context, f Faults) error {
	return c.do(ctx, "set faults", http.MethodPut, "/sandbox/faults", f, nil)
}

// Journal returns every applied transfer with a sequence number above
// after, following the pages by the rule of docs/bank-api.md: each page
// resumes after the seq of the previous page's last entry; the journal ends
// at a page with "has_more": false or at an empty page, so a bank that
// sends neither has_more nor next_after is read to its end. A page whose
// entries do not follow the cursor, or that says has_more with no entries,
// is an error: reading on would loop or cut the journal short.
func (c *Client) Journal(ctx context.Context, after int64) ([]JournalEntry, error) {
	var all []JournalEntry
	for {
		var page JournalPage
		path := "/sandbox/journal?after=" + strconv.FormatInt(after, 10) + "&limit=" + strconv.Itoa(c.pageSize)
		if err := c.do(ctx, "journal", http.MethodGet, path, nil, &page); err != nil {
			return nil, err
		}
		if len(page.Entries) == 0 {
			if page.HasMore != nil && *page.HasMore {
				return nil, fmt.Errorf("banksim journal: the page after seq %d says has_more but no entries; the bank's journal paging is broken", after)
			}
			return all, nil
		}
		for _, e := range page.Entries {
			if e.Seq <= after {
				return nil, fmt.Errorf("banksim journal: entry seq %d does not follow %d; the bank's journal must list entries by rising seq", e.Seq, after)
			}
			after = e.Seq
		}
		all = append(all, page.Entries...)
		if page.HasMore != nil && !*page.HasMore {
			return all, nil
		}
	}
}

// Reapply makes the bank apply the succeeded transfer of a dialect's key
// once more, under the same key, and returns the new journal entry: a
// duplicate for the journal check to find. It fails with an APIError of
// status 404 for a key the bank never saw and 409 for a transfer it cannot
// apply again.
func (c *Client) Reapply(ctx context.Context, dialect, key string) (JournalEntry, error) {
	var out JournalEntry
	err := c.do(ctx, "reapply", http.MethodPost, "/sandbox/transfers/reapply", reapplyRequest{Dialect: dialect, IdempotencyKey: key}, &out)
	return out, err
}

// Forget makes the bank forget a dialect's key, as a bank past its key
// retention does: the key's status call answers "never seen" and the key
// sent again is a new transfer. The journal keeps what was applied.
func (c *Client) Forget(ctx context.Context, dialect, key string) error {
	return c.do(ctx, "forget", http.MethodPost, "/sandbox/transfers/forget", reapplyRequest{Dialect: dialect, IdempotencyKey: key}, nil)
}

// Stats returns the sandbox's counters since the last reset.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var out Stats
	err := c.do(ctx, "stats", http.MethodGet, "/sandbox/stats", nil, &out)
	return out, err
}

// Reset forgets every account, transfer, journal entry, fault and counter.
func (c *Client) Reset(ctx context.Context) error {
	return c.do(ctx, "reset", http.MethodPost, "/sandbox/reset", nil, nil)
}

func accountPath(id string) string { return "/sandbox/accounts/" + url.PathEscape(id) }

// do sends one call and decodes a 2xx answer into out (when not nil).
func (c *Client) do(ctx context.Context, op, method, path string, in, out any) error {
	req, err := c.newRequest(ctx, method, path, in)
	if err != nil {
		return fmt.Errorf("banksim %s: %w", op, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("banksim %s: %w", op, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("banksim %s: read answer: %w", op, err)
	}
	if resp.StatusCode/100 != 2 {
		return answerError(op, resp.StatusCode, body)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("banksim %s: decode answer: %w", op, err)
	}
	return nil
}

func (c *Client) newRequest(ctx context.Context, method, path string, in any) (*http.Request, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", c.auth)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

func answerError(op string, status int, body []byte) error {
	e := &APIError{Op: op, StatusCode: status}
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
	} else {
		e.Message = http.StatusText(status)
	}
	return e
}
