// Package archtest holds no code: its test checks settle's import rules
// against `go list -deps -json` of the whole module, so that the layering
// is kept by a machine rather than by review. It runs in `make lint` and
// needs no service. The rules, each a table in archtest_test.go:
//
//   - pipeline, the domain, imports no settle package and only the standard
//     library, without its I/O packages (os, net, database/sql, …).
//   - Every settle package has a place in the layering table, which lists the
//     settle packages its non-test files may import: pipeline ← the adapters
//     (store, bank/…, notify) ← jobs and web ← cmd/settle, which wires them.
//     Nothing imports cmd/…; only cmd/settle imports internal/bench, the
//     payday benchmark behind `settle bench`.
//   - No package of the settle binary imports a test-support package
//     (internal/settletest, internal/testenv, internal/testcert,
//     bank/banktest, notify/notifytest), and the binary links none of them,
//     nor testing or net/http/httptest.
//   - Each third-party library has one owner package, the only one whose
//     non-test files import it; the few other importers are listed with the
//     reason they may.
//
// A broken rule is reported as file:line, the import and the rule.
package archtest
