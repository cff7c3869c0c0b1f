// Package customercsv reads the CSV file of `settle customers import`: one
// customer a row, every field checked, and every bad row reported with its
// line number, in one pass that also checks each row against the customers
// registered already (Read); and the va-map file of `settle customers
// migrate` (ParseVAMap).
//
// Columns (a header row naming them is required; order is free; no other
// column, and every row has exactly one field per column):
//
//	external_ref, holder_name, provider, va_number, currency, payout_account,
//	payout_holder_name, payout_bank_code (may be empty), outstanding, hold,
//	fee_fixed, fee_bps
//
// configs/customers.sample.csv is a file that imports.
package customercsv

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// Columns are the header names, in the order a template shows them.
var Columns = []string{"external_ref", "holder_name", "provider", "va_number", "currency", "payout_account",
	"payout_holder_name", "payout_bank_code", "outstanding", "hold", "fee_fixed", "fee_bps"}

// MaxRows bounds one file.
const MaxRows = 1_000_000

// RowError is one bad row.
type RowError struct {
	Line int
	Msg  string
}

func (e RowError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

var (
	refPattern     = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
	accountPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// Options are what each row is checked against: the configuration's
// providers and the one currency the installation settles.
type Options struct {
	Providers []string // provider names (providers[].name)
	Currency  string   // the installation's currency (currency), e.g. KRW
}

// File is a customer file, checked.
type File struct {
	Customers []store.NewCustomer // the good rows' customers, in file order
	Lines     []int               // the line of each of Customers
	Bad       []RowError          // every bad row, in line order; import nothing unless empty
}

// Read parses the file and, in the same pass, checks every row against the
// customers registered in db (store.DB.CustomerConflicts): an external
// reference or a virtual account taken is reported with the row's line,
// beside everything else wrong with it. It reads the database only; a
// failure to read it is the error.
func Read(ctx context.Context, r io.Reader, o Options, db *store.DB) (File, error) {
	rows := parse(r, o)
	var cs []store.NewCustomer
	var at []int
	for i, row := range rows {
		if row.parsed {
			cs, at = append(cs, row.c), append(at, i)
		}
	}
	if len(cs) > 0 {
		conflicts, err := db.CustomerConflicts(ctx, cs)
		if err != nil {
			return File{}, err
		}
		for _, c := range conflicts {
			rows[at[c.Index]].msgs = append(rows[at[c.Index]].msgs, c.Msg)
		}
	}
	return collect(rows), nil
}

// Parse checks the file on its own, without the database: Read without
// the check against the customers registered already.
func Parse(r io.Reader, o Options) File {
	return collect(parse(r, o))
}

// row is one line of the file as parse read it: its customer, when its
// fields could be read (parsed), and what is wrong with it.
type row struct {
	line   int
	c      store.NewCustomer
	parsed bool
	msgs   []string
}

func collect(rows []row) File {
	var f File
	for _, r := range rows {
		if len(r.msgs) > 0 {
			f.Bad = append(f.Bad, RowError{Line: r.line, Msg: strings.Join(r.msgs, "; ")})
			continue
		}
		f.Customers, f.Lines = append(f.Customers, r.c), append(f.Lines, r.line)
	}
	return f
}

func bad(line int, format string, a ...any) []row {
	return []row{{line: line, msgs: []string{fmt.Sprintf(format, a...)}}}
}

// parse reads every row.
func parse(r io.Reader, o Options) []row {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return bad(1, "no header row: the first line must name the columns %s", strings.Join(Columns, ","))
	}
	idx, herr := columnIndex(header)
	if herr != nil {
		return bad(1, "%s", herr.Error())
	}
	var rows []row
	failed := 0
	refs, vas := map[string]int{}, map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			rows = append(rows, bad(perr.StartLine, "not CSV: %s", perr.Err)...)
			if failed++; failed > 1000 {
				break
			}
			continue
		}
		if err != nil {
			rows = append(rows, bad(0, "read: %s", err)...)
			break
		}
		line, _ := cr.FieldPos(0)
		if len(rows) >= MaxRows {
			rows = append(rows, bad(line, "more than %d rows: split the file", MaxRows)...)
			break
		}
		if len(rec) != len(header) {
			rows = append(rows, bad(line, "%d fields, but the header has %d columns (%s): remove the extra fields, "+
				"or quote a field that holds a comma", len(rec), len(header), strings.Join(Columns, ","))...)
			continue
		}
		c, msgs := parseRow(rec, idx, o)
		if prev, dup := refs[c.ExternalRef]; dup && c.ExternalRef != "" {
			msgs = append(msgs, fmt.Sprintf("external_ref %q repeats line %d", c.ExternalRef, prev))
		}
		if prev, dup := vas[c.Provider+":"+c.VANumber]; dup && c.VANumber != "" {
			msgs = append(msgs, fmt.Sprintf("va_number repeats line %d", prev))
		}
		if _, dup := refs[c.ExternalRef]; !dup {
			refs[c.ExternalRef] = line
		}
		if _, dup := vas[c.Provider+":"+c.VANumber]; !dup {
			vas[c.Provider+":"+c.VANumber] = line
		}
		rows = append(rows, row{line: line, c: c, parsed: true, msgs: msgs})
	}
	if len(rows) == 0 {
		return bad(2, "no customers after the header")
	}
	return rows
}

func columnIndex(header []string) (map[string]int, error) {
	idx := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if !slices.Contains(Columns, h) {
			return nil, fmt.Errorf("unknown column %q: the header must name exactly the columns %s", h, strings.Join(Columns, ","))
		}
		if _, dup := idx[h]; dup {
			return nil, fmt.Errorf("column %q appears twice", h)
		}
		idx[h] = i
	}
	for _, c := range Columns {
		if _, ok := idx[c]; !ok {
			return nil, fmt.Errorf("missing column %q: the columns are %s", c, strings.Join(Columns, ","))
		}
	}
	return idx, nil
}

func parseRow(rec []string, idx map[string]int, o Options) (store.NewCustomer, []string) {
	var msgs []string
	get := func(col string) string {
		if i := idx[col]; i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	text := func(col string, pattern *regexp.Regexp, maxLen int) string {
		v := get(col)
		switch {
		case v == "" && col != "payout_bank_code":
			msgs = append(msgs, col+" is empty")
		case pattern != nil && v != "" && !pattern.MatchString(v):
			shown := strconv.Quote(v)
			if pattern == accountPattern { // an account number: its last four only
				shown = pipeline.AccountNumber(v).Masked()
			}
			msgs = append(msgs, fmt.Sprintf("%s %s may hold only letters, digits and . _ - (at most 64)", col, shown))
		case !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxLen || strings.ContainsAny(v, "\r\n\t"):
			msgs = append(msgs, fmt.Sprintf("%s must be at most %d characters of text on one line", col, maxLen))
		}
		return v
	}
	amount := func(col string) int64 {
		v, err := pipeline.ParseAmount(get(col))
		if err != nil {
			msgs = append(msgs, col+": "+err.Error())
		}
		return v
	}
	c := store.NewCustomer{
		ExternalRef: text("external_ref", refPattern, 64),
		HolderName:  text("holder_name", nil, 128),
		Provider:    text("provider", nil, 32),
		VANumber:    text("va_number", accountPattern, 64),
		Currency:    get("currency"),
		Payout: pipeline.Payee{Account: text("payout_account", accountPattern, 64),
			Holder: text("payout_holder_name", nil, 128)},
		PayoutBank: text("payout_bank_code", nil, 16),
		Obligations: pipeline.Obligations{Outstanding: amount("outstanding"), Hold: amount("hold"),
			FeeFixed: amount("fee_fixed")},
	}
	if err := pipeline.ValidateCurrency(c.Currency); err != nil {
		msgs = append(msgs, "currency: "+err.Error())
	} else if c.Currency != o.Currency {
		msgs = append(msgs, fmt.Sprintf("currency %s: this installation settles %s only (currency in the configuration)", c.Currency, o.Currency))
	}
	if c.Provider != "" && !slices.Contains(o.Providers, c.Provider) {
		msgs = append(msgs, fmt.Sprintf("provider %q is not configured (configured: %s)", c.Provider, strings.Join(o.Providers, ", ")))
	}
	bps, err := strconv.ParseInt(get("fee_bps"), 10, 64)
	if err != nil || bps < 0 || bps > 10000 {
		msgs = append(msgs, fmt.Sprintf("fee_bps %q must be a whole number from 0 to 10000", get("fee_bps")))
	}
	c.Obligations.FeeBPS = bps
	return c, msgs
}
