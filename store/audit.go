package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxActorLength bounds an actor's name, in characters (audit_log.actor).
const MaxActorLength = 128

// actorPunct is the punctuation an actor may hold besides letters and
// digits: enough for a login (kim.lee, svc_settle), an address
// (kim@ops.example), a Windows account (CORP\kim) or a prefixed ID
// (slack:T024BE7LG/U024BE7LH, the actor of a Slack click).
const actorPunct = "._-@+:/\\"

// CheckActor refuses an actor (--actor) that the audit log should not
// record: empty, longer than MaxActorLength characters, or holding
// anything but letters, digits and the characters . _ - @ + : / \ (no
// spaces, no control or invisible characters), or not starting with a
// letter or a digit. The actor is a claim; the database user and host
// beside it are what PostgreSQL saw.
func CheckActor(actor string) error {
	n := utf8.RuneCountInString(actor)
	switch {
	case n == 0:
		return fmt.Errorf("the actor is empty: give who runs the command, e.g. --actor kim.lee")
	case n > MaxActorLength || !utf8.ValidString(actor):
		return fmt.Errorf("actor %.40q...: at most %d characters of UTF-8 text", actor, MaxActorLength)
	}
	for i, r := range actor {
		ok := unicode.IsLetter(r) || unicode.IsDigit(r) || (i > 0 && (unicode.IsMark(r) || strings.ContainsRune(actorPunct, r)))
		if !ok {
			return fmt.Errorf("actor %q: use letters, digits and %s only (no spaces or control characters), "+
				"starting with a letter or a digit, e.g. --actor kim.lee or kim@ops.example", actor, strings.Join(strings.Split(actorPunct, ""), " "))
		}
	}
	return nil
}

// auditChainQuery is the audit_chain_intact invariant: it recomputes the
// audit log's hash chain (migrations/00019_audit_chain.sql) in seq order
// and returns the first break, naming its row, with how many more follow:
//   - a seq missing before a row: rows were removed;
//   - a row whose hash is not that of its content: it was changed;
//   - a row whose prev_hash is not the hash of the row before it: that row
//     was replaced, or this one written outside the chain;
//   - the chain's head (audit_chain) not at the last row: rows were
//     removed from the end, or written after it outside the chain.
//
// It reads the rows and the head in one statement, one snapshot, so rows
// appended meanwhile are either seen with the head that covers them or not
// at all.
const auditChainQuery = `
	WITH chain AS (
		SELECT a.id, a.seq, a.prev_hash, a.hash, audit_log_hash(a) AS recomputed,
		       lag(a.seq, 1, 0::bigint) OVER w AS prev_seq,
		       lag(a.hash, 1, decode(repeat('00', 32), 'hex')) OVER w AS prev_row_hash,
		       lag(a.id) OVER w AS prev_id
		  FROM audit_log a WINDOW w AS (ORDER BY a.seq)),
	breaks AS (
		SELECT seq AS at, 'audit_log row ' || id || ' (seq ' || seq || '): ' || CASE
		         WHEN seq = prev_seq + 2 THEN 'seq ' || (prev_seq + 1) || ' before it is missing: a row was removed'
		         WHEN seq <> prev_seq + 1 THEN 'seq ' || (prev_seq + 1) || ' to ' || (seq - 1) || ' before it are missing: rows were removed'
		         WHEN hash <> recomputed THEN 'its content does not match its hash: the row was changed after it was written'
		         ELSE 'its prev_hash is not the hash of the row before it' || coalesce(' (row ' || prev_id || ')', '')
		              || ': that row was replaced, or this one was written outside the chain'
		       END AS detail
		  FROM chain
		 WHERE seq <> prev_seq + 1 OR hash <> recomputed OR prev_hash <> prev_row_hash
		UNION ALL
		SELECT 9223372036854775807, 'audit log: ' || CASE
		         WHEN h.seq IS NULL THEN 'the chain head (audit_chain) is missing'
		         WHEN h.seq > coalesce(t.seq, 0) THEN 'the chain head is at seq ' || h.seq || ' but the last row is '
		              || coalesce('row ' || t.id || ' (seq ' || t.seq || ')', 'none') || ': the rows after it were removed'
		         WHEN h.seq < t.seq THEN 'the rows after seq ' || h.seq || ' (the chain head), up to row ' || t.id
		              || ' (seq ' || t.seq || '), were written outside the chain'
		         ELSE 'the last row, ' || t.id || ' (seq ' || t.seq || '), is not the one the chain head recorded: it was replaced'
		       END
		  FROM (SELECT 1) one
		  LEFT JOIN audit_chain h ON true
		  LEFT JOIN LATERAL (SELECT id, seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1) t ON true
		 WHERE h.seq IS NULL OR h.seq <> coalesce(t.seq, 0) OR h.hash <> coalesce(t.hash, decode(repeat('00', 32), 'hex')))
	SELECT 0::bigint AS settlement_id,
	       detail || CASE WHEN count(*) OVER () > 1 THEN ' (and ' || (count(*) OVER () - 1) || ' more breaks after it)' ELSE '' END AS detail
	  FROM breaks ORDER BY at LIMIT 1`

// Changes says compactly what an applied command changed: one
// "field: before → after" for each value that differs between the row's
// before and after ("status: FAILED → RUNNING", "steps[3].status: FAILED →
// READY"), "(none)" for a side without it. Nil when nothing is recorded as
// changed: a refused or no-op command has no after.
func (r AuditRow) Changes() []string {
	before, errB := decodeState(r.Before)
	after, errA := decodeState(r.After)
	if errB != nil || errA != nil {
		return []string{"before and after are not JSON: see --json"}
	}
	if after == nil {
		return nil
	}
	if before == nil {
		if _, ok := after.(map[string]any); ok {
			before = map[string]any{}
		}
	}
	var out []string
	diffState(&out, "", before, after, true, true)
	return out
}

func decodeState(raw json.RawMessage) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

// diffState appends a "path: a → b" for every leaf where a and b differ;
// hasA and hasB say whether each side has the path at all.
func diffState(out *[]string, path string, a, b any, hasA, hasB bool) {
	ma, aMap := a.(map[string]any)
	mb, bMap := b.(map[string]any)
	if aMap && bMap {
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range ma {
				if !yield(k) {
					return
				}
			}
			for k := range mb {
				if _, dup := ma[k]; !dup && !yield(k) {
					return
				}
			}
		})
		for _, k := range keys {
			va, okA := ma[k]
			vb, okB := mb[k]
			diffState(out, join(path, k), va, vb, okA, okB)
		}
		return
	}
	la, aList := a.([]any)
	lb, bList := b.([]any)
	if aList && bList {
		for i := range max(len(la), len(lb)) {
			var va, vb any
			if i < len(la) {
				va = la[i]
			}
			if i < len(lb) {
				vb = lb[i]
			}
			diffState(out, path+"["+strconv.Itoa(i)+"]", va, vb, i < len(la), i < len(lb))
		}
		return
	}
	sa, sb := shownValue(a, hasA), shownValue(b, hasB)
	if sa != sb {
		*out = append(*out, orName(path)+": "+sa+" → "+sb)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orName(path string) string {
	if path == "" {
		return "state"
	}
	return path
}

// shownValue is a leaf as Changes prints it: text unquoted (quoted when
// empty or when it holds spaces at its ends), anything else as compact
// JSON, "(none)" when the side lacks it.
func shownValue(v any, has bool) string {
	if !has {
		return "(none)"
	}
	if s, ok := v.(string); ok && s != "" && strings.TrimSpace(s) == s && !strings.ContainsAny(s, "\r\n;") {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
