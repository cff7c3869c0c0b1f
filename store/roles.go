package store

import (
	"errors"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
)

// The group roles the migrations create (migrations/00009_roles.sql,
// docs/security.md). They cannot log in: an operator creates LOGIN users
// that are members of them.
const (
	// DaemonRole may read and write what `settle serve` and the operator
	// commands that change state need, but only append to the ledger and
	// the audit log, and cannot change the schema.
	DaemonRole = "settle_daemon"
	// OperatorRole may only read.
	OperatorRole = "settle_operator"
)

// PermissionDenied reports whether err is PostgreSQL refusing the database
// user a privilege (insufficient_privilege, 42501): a command that writes
// run as a member of OperatorRole, or a migration run as a member of
// DaemonRole.
func PermissionDenied(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == pqerror.InsufficientPrivilege
}
