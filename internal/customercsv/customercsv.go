// Package customercsv reads the CSV file of `settle customers import`: one
// customer a row, every field checked, every bad row reported with its line
// number; and the va-map file of `settle customers migrate` (ParseVAMap).
//
// Columns (a header row naming them is required; order is free):
//
//	external_ref, holder_name, provider, va_number, currency, payout_account,
//	payout_holder_name, payout_bank_code (may be empty), outstanding, hold,
//	fee_fixed, fee_bps
package customercsv

import (
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

// Parse reads every row. It returns the customers and, if any row is bad,
// every bad row: then the caller imports nothing. providers lists the
// provider names the configuration knows.
func Parse(r io.Reader, providers []string) ([]store.NewCustomer, []RowError) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, []RowError{{Line: 1, Msg: "no header row: the first line must name the columns " + strings.Join(Columns, ",")}}
	}
	idx, herr := columnIndex(header)
	if herr != nil {
		return nil, []RowError{{Line: 1, Msg: herr.Error()}}
	}
	var out []store.NewCustomer
	var bad []RowError
	refs, vas := map[string]int{}, map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			bad = append(bad, RowError{Line: perr.StartLine, Msg: "not CSV: " + perr.Err.Error()})
			if len(bad) > 1000 {
				break
			}
			continue
		}
		if err != nil {
			bad = append(bad, RowError{Line: 0, Msg: "read: " + err.Error()})
			break
		}
		line, _ := cr.FieldPos(0)
		if len(out)+len(bad) >= MaxRows {
			bad = append(bad, RowError{Line: line, Msg: fmt.Sprintf("more than %d rows: split the file", MaxRows)})
			break
		}
		c, msgs := parseRow(rec, idx, providers)
		if prev, dup := refs[c.ExternalRef]; dup && c.ExternalRef != "" {
			msgs = append(msgs, fmt.Sprintf("external_ref %q repeats line %d", c.ExternalRef, prev))
		}
		if prev, dup := vas[c.Provider+":"+c.VANumber]; dup && c.VANumber != "" {
			msgs = append(msgs, fmt.Sprintf("va_number repeats line %d", prev))
		}
		refs[c.ExternalRef], vas[c.Provider+":"+c.VANumber] = line, line
		if len(msgs) > 0 {
			bad = append(bad, RowError{Line: line, Msg: strings.Join(msgs, "; ")})
			continue
		}
		out = append(out, c)
	}
	if len(bad) == 0 && len(out) == 0 {
		bad = append(bad, RowError{Line: 2, Msg: "no customers after the header"})
	}
	return out, bad
}

func columnIndex(header []string) (map[string]int, error) {
	idx := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if !slices.Contains(Columns, h) {
			return nil, fmt.Errorf("unknown column %q: the columns are %s", h, strings.Join(Columns, ","))
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

func parseRow(rec []string, idx map[string]int, providers []string) (store.NewCustomer, []string) {
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
			msgs = append(msgs, fmt.Sprintf("%s %q may hold only letters, digits and . _ - (at most 64)", col, v))
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
	}
	if c.Provider != "" && !slices.Contains(providers, c.Provider) {
		msgs = append(msgs, fmt.Sprintf("provider %q is not configured (configured: %s)", c.Provider, strings.Join(providers, ", ")))
	}
	bps, err := strconv.ParseInt(get("fee_bps"), 10, 64)
	if err != nil || bps < 0 || bps > 10000 {
		msgs = append(msgs, fmt.Sprintf("fee_bps %q must be a whole number from 0 to 10000", get("fee_bps")))
	}
	c.Obligations.FeeBPS = bps
	return c, msgs
}
