#!/usr/bin/env bash
# fuzz.sh — run every Go fuzz target for a bounded time each.
#   scripts/fuzz.sh [FUZZTIME]     a duration (60s) or a count of inputs (20000x); default 3s.
#   make test uses a count: a duration can end in a spurious "context deadline exceeded"
#   with Go 1.26 (go.dev/issue/75804); make fuzz uses 60s.
# A crasher is saved under the package's testdata/fuzz/ and fails the run; commit it
# with the fix, and it becomes a regression test that `go test` runs every time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime="${1:-3s}"
failed=0
while IFS=: read -r file name; do
	pkg="./$(dirname "$file")"
	echo "fuzz $pkg $name ($fuzztime)"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/settle-fuzz.$$ 2>&1; then
		cat /tmp/settle-fuzz.$$
		failed=1
	fi
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed 's#^\./##; s#:func #:#')
rm -f /tmp/settle-fuzz.$$
exit "$failed"
