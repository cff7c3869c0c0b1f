-- NOTIFY runs after its settlement is SETTLED (docs/adr/0006-notify-after-settled.md).
--
-- A settlement is SETTLED once its last step that moves money is DONE; its
-- NOTIFY step runs after that and never fails it. Before this, a NOTIFY the
-- lender's app did not take kept its settlement RUNNING, and one out of
-- attempts made it FAILED after PAYOUT, blocking the customer (ADR 0004).
-- This migration brings such settlements where the code now puts them:
--
-- 1. RUNNING settlements whose money steps are all DONE are SETTLED, their
--    VA no longer held from polling.
-- 2. FAILED settlements whose money steps are all DONE (only NOTIFY failed)
--    are SETTLED, their NOTIFY READY again with its attempts reset (its
--    retry window counts from now), and their settlement_failed problems
--    resolved.
--
-- The index lets the status page and metrics count the notifications that
-- gave up without reading every step.

-- +goose Up
CREATE INDEX steps_notify_dead ON steps (settlement_id) WHERE kind = 'NOTIFY' AND status = 'DEAD';

WITH settled AS (
    UPDATE settlements s SET status = 'SETTLED', finished_at = now(), updated_at = now()
     WHERE s.status = 'RUNNING'
       AND NOT EXISTS (SELECT 1 FROM steps st WHERE st.settlement_id = s.id AND st.kind <> 'NOTIFY' AND st.status <> 'DONE')
    RETURNING s.va_id)
UPDATE virtual_accounts va SET held_until = NULL FROM settled WHERE va.id = settled.va_id;

WITH settled AS (
    UPDATE settlements s SET status = 'SETTLED', failure_reason = '', finished_at = now(), updated_at = now()
     WHERE s.status = 'FAILED'
       AND NOT EXISTS (SELECT 1 FROM steps st WHERE st.settlement_id = s.id AND st.kind <> 'NOTIFY' AND st.status <> 'DONE')
    RETURNING s.id, s.va_id),
retried AS (
    UPDATE steps st SET status = 'READY', attempts = 0, next_run_at = now(), lease_until = NULL, updated_at = now(),
           last_error = 'settlement SETTLED by migration 00011: its money had moved; the event is sent again'
      FROM settled WHERE st.settlement_id = settled.id AND st.kind = 'NOTIFY' AND st.status IN ('FAILED', 'DEAD')),
released AS (
    UPDATE virtual_accounts va SET held_until = NULL FROM settled WHERE va.id = settled.va_id)
INSERT INTO alerts (problem_key, kind, severity, settlement_id, summary, detail)
SELECT a.problem_key, 'resolved', 'info', a.settlement_id, 'Resolved: ' || a.summary,
       'settlement ' || a.settlement_id || ' is SETTLED: its money had moved, only its notification failed; NOTIFY retries on its own'
  FROM settled
  JOIN LATERAL (SELECT DISTINCT ON (problem_key) problem_key, kind, summary, settlement_id FROM alerts
                 WHERE settlement_id = settled.id ORDER BY problem_key, id DESC) a ON true
 WHERE a.kind = 'settlement_failed';

-- +goose Down
-- The settlements settled above stay SETTLED: failing them again would block
-- customers whose money moved.
DROP INDEX steps_notify_dead;
