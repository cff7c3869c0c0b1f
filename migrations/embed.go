// Package migrations holds settle's SQL schema migrations, embedded in the
// binary and applied with goose (`settle migrate up|down|status`).
package migrations

import "embed"

// FS holds the numbered *.sql migrations.
//
//go:embed *.sql
var FS embed.FS
