-- Issue 18 §4 and §5, finished: fines and bonuses are booked in the ledger, and the engine
-- dispatches an order routed to a merchant within the merchant's team, overflowing it to
-- the platform's workers when the staff cannot serve it. docs/quality.md, docs/ledger.md.

-- A discipline action's money: booked in the same transaction as the action (entry key
-- ledger_key); 'reversed' when an appeal overturned it (a reversing entry, never an edit);
-- 'void' when an action recorded before the ledger existed was overturned before it was
-- booked (no money ever moved). 'unbooked' rows left from before are booked by the job
-- quality:book_unbooked.
ALTER TABLE discipline_actions DROP CONSTRAINT discipline_actions_ledger_status_check;
ALTER TABLE discipline_actions
    ADD CONSTRAINT discipline_actions_ledger_status_check
        CHECK (ledger_status IN ('not_applicable', 'unbooked', 'booked', 'reversed', 'void')),
    ADD COLUMN ledger_key text;
CREATE INDEX discipline_actions_unbooked ON discipline_actions (id) WHERE ledger_status = 'unbooked';

-- When an order was routed to its merchant: the engine offers it to the merchant's staff
-- only, and overflows it to the platform once it waited this long without one of them.
ALTER TABLE orders ADD COLUMN merchant_routed_at timestamptz;
UPDATE orders SET merchant_routed_at = updated_at WHERE merchant_id IS NOT NULL;
