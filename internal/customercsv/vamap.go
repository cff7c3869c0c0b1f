package customercsv

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// VAMapHeader is the header of the file of `settle customers migrate
// --va-map`: each customer's external reference and its virtual account
// number at the provider it moves to.
const VAMapHeader = "external_ref,va_number"

// ParseVAMap reads a va-map file: the VA numbers by external reference. A
// file without the header is an error; otherwise every bad row is
// returned (then the map is nil), its Line counting the header as 1 and
// each record after it as one line.
func ParseVAMap(r io.Reader) (map[string]string, []RowError, error) {
	cr := csv.NewReader(r)
	header, err := cr.Read()
	if err != nil || len(header) != 2 || strings.TrimSpace(header[0]) != "external_ref" || strings.TrimSpace(header[1]) != "va_number" {
		return nil, nil, errors.New("the first line must be the header " + VAMapHeader)
	}
	m, numbers := map[string]string{}, map[string]bool{}
	var bad []RowError
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		switch {
		case err != nil:
			bad = append(bad, RowError{Line: line, Msg: err.Error()})
		case len(rec) != 2 || !accountPattern.MatchString(rec[1]):
			bad = append(bad, RowError{Line: line, Msg: "want " + VAMapHeader + " with a number of 1 to 64 letters, digits, '.', '_' or '-'"})
		case m[rec[0]] != "" || numbers[rec[1]]:
			bad = append(bad, RowError{Line: line, Msg: fmt.Sprintf("%s or its number is listed twice", rec[0])})
		default:
			m[rec[0]], numbers[rec[1]] = rec[1], true
		}
	}
	if len(bad) > 0 {
		return nil, bad, nil
	}
	return m, nil, nil
}
