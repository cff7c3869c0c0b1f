package pipeline

import "testing"

func TestGroupedAndCounted(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {-1234567, "-1,234,567"}, {1200000, "1,200,000"}} {
		if got := Grouped(tc.n); got != tc.want {
			t.Errorf("Grouped(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	for _, tc := range []struct {
		got, want string
	}{
		{Counted(1, "settlement", "settlements"), "1 settlement"},
		{Counted(0, "settlement", "settlements"), "0 settlements"},
		{Counted(int64(1200), "stuck step", "stuck steps"), "1,200 stuck steps"},
		{Counted(2, "time", "times"), "2 times"},
	} {
		if tc.got != tc.want {
			t.Errorf("Counted = %q, want %q", tc.got, tc.want)
		}
	}
}
