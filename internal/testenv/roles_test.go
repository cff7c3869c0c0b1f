package testenv

import (
	"database/sql"
	"os"
	"strings"
	"testing"
)

// A login role connects to the test's database as a member of its group,
// and is gone once its test ends, even with a connection left open.
func TestLoginRoleConnectsAndIsDropped(t *testing.T) {
	t.Parallel()
	admin, err := sql.Open("postgres", os.Getenv(DatabaseURLEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var name string
	t.Run("inner", func(t *testing.T) {
		group := RoleName(t, "group")
		AdminExec(t, "CREATE ROLE "+group+" NOLOGIN")
		db, err := sql.Open("postgres", LoginRole(t, PostgresURL(t), group))
		if err != nil {
			t.Fatal(err)
		}
		// Left open on purpose: the drop must terminate it.
		var member bool
		if err := db.QueryRow("SELECT current_user, pg_has_role(current_user, $1, 'MEMBER')", group).Scan(&name, &member); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, dbPrefix) || !member {
			t.Fatalf("connected as %q, member of %s: %v", name, group, member)
		}
	})
	var n int
	if err := admin.QueryRow("SELECT count(*) FROM pg_roles WHERE rolname = $1", name).Scan(&n); err != nil || n != 0 {
		t.Fatalf("role %s: %d left after its test ended (%v)", name, n, err)
	}
	if err := dropRole(os.Getenv(DatabaseURLEnv), "postgres"); err == nil {
		t.Fatal("dropRole accepted a role testenv did not create")
	}
}
