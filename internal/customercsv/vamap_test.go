package customercsv

import (
	"strings"
	"testing"
)

func TestParseVAMap(t *testing.T) {
	t.Parallel()
	m, bad, err := ParseVAMap(strings.NewReader(" external_ref , va_number\nc-1,NVA0001\nc-2,NVA0002\n"))
	if err != nil || len(bad) != 0 || len(m) != 2 || m["c-1"] != "NVA0001" || m["c-2"] != "NVA0002" {
		t.Fatalf("good file: %v %v %v", m, bad, err)
	}
}

// A file without the header is refused as a whole; otherwise every bad row
// is reported with its line, and no map is returned.
func TestParseVAMapReportsBadHeaderAndEveryBadRow(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "ref,va\nc-1,NVA1\n", "external_ref,va_number,extra\n", "c-1,NVA0001\n"} {
		if _, _, err := ParseVAMap(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), "header external_ref,va_number") {
			t.Errorf("%q: %v, want the header asked for", in, err)
		}
	}
	in := "external_ref,va_number\n" +
		"c-1,NVA0001\n" + // line 2: good
		"c-2,NVA 2\n" + // line 3: not a number
		"c-3,NVA0001\n" + // line 4: number listed twice
		"c-1,NVA0005\n" + // line 5: reference listed twice
		"c-6,NVA6,x\n" + // line 6: three fields
		"c-7,\n" // line 7: empty number
	m, bad, err := ParseVAMap(strings.NewReader(in))
	if err != nil || m != nil {
		t.Fatalf("map %v, err %v: want no map and the bad rows", m, err)
	}
	want := map[int]string{
		3: "want external_ref,va_number with a number",
		4: "c-3 or its number is listed twice",
		5: "c-1 or its number is listed twice",
		6: "wrong number of fields",
		7: "want external_ref,va_number with a number",
	}
	if len(bad) != len(want) {
		t.Fatalf("bad rows %v, want lines 3 to 7", bad)
	}
	for _, b := range bad {
		if w, ok := want[b.Line]; !ok || !strings.Contains(b.Msg, w) {
			t.Errorf("line %d: %q, want %q", b.Line, b.Msg, w)
		}
	}
}
