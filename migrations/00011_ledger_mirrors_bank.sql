-- The ledger mirrors each bank account through operator actions (ADR 0005).
--
-- A settlement that was cancelled, or compensated, leaves its deposit in the
-- virtual account, at the bank and in the ledger alike. The next settlement
-- of that VA takes it over: it settles the whole balance the bank shows, but
-- its deposit journal posts only the money new to the ledger, the balance
-- minus what the ledger already holds in the VA (`carried`). A VA is only
-- settled while no settlement of its customer is open, so the ledger's VA
-- balance at that moment is exactly the money settle knows is there and is
-- not settling.
--
-- The database refuses the double count: when a deposit journal commits,
-- the ledger's balance of the settlement's VA must equal the settlement's
-- amount (everything in the VA, once). A deposit counted twice leaves it
-- above.

-- +goose Up
ALTER TABLE settlements ADD COLUMN carried bigint NOT NULL DEFAULT 0;
ALTER TABLE settlements ADD CONSTRAINT settlements_carried_within_amount CHECK (carried >= 0 AND carried <= amount);

-- +goose StatementBegin
CREATE FUNCTION ledger_deposit_counted_once() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s       record;
    account text;
    held    bigint;
BEGIN
    SELECT st.amount, st.carried, st.currency, st.provider || ':' || va.number AS account INTO s
      FROM settlements st JOIN virtual_accounts va ON va.id = st.va_id
     WHERE st.id = NEW.settlement_id;
    SELECT coalesce(sum(p.amount), 0) INTO held
      FROM postings p WHERE p.account = s.account AND p.currency = s.currency;
    IF held <> s.amount THEN
        RAISE EXCEPTION 'deposit journal % of settlement % leaves the ledger''s VA % at % %, but the settlement moves % (% of it carried over): a deposit is counted once',
            NEW.id, NEW.settlement_id, s.account, held, s.currency, s.amount, s.carried
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
-- Checked at commit, when the journal's postings are written.
CREATE CONSTRAINT TRIGGER journals_deposit_counted_once AFTER INSERT ON journals
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.kind = 'deposit') EXECUTE FUNCTION ledger_deposit_counted_once();

-- +goose Down
DROP TRIGGER journals_deposit_counted_once ON journals;
DROP FUNCTION ledger_deposit_counted_once();
ALTER TABLE settlements DROP CONSTRAINT settlements_carried_within_amount;
ALTER TABLE settlements DROP COLUMN carried;
