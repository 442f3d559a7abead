-- Commission for merchant orders (issue 17 §5): an order's commission is snapshotted at
-- payment, before the order is routed to a merchant or assigned to a merchant's staff, so
-- a merchant's rule could not apply. The snapshot now records which merchant it was taken
-- for, and when the order's merchant becomes known (assignment; at the latest its
-- completion) and nothing has been settled from it yet, it is taken again for that
-- merchant — with the rules as they stood when it was first taken (rules_at), so a rule
-- made after payment still changes nothing. See docs/settlement.md.

-- When a rule was switched off (the rules in force at a past moment are those created
-- by then and not yet switched off then).
ALTER TABLE commission_rules ADD COLUMN deactivated_at timestamptz;
UPDATE commission_rules SET deactivated_at = updated_at WHERE NOT active;

ALTER TABLE order_commissions
    ADD COLUMN merchant_id    bigint REFERENCES users(id),  -- the merchant it was taken for
    ADD COLUMN rules_at       timestamptz,                  -- whose rules: the first snapshot's time
    ADD COLUMN resnapshot_at  timestamptz;                  -- last taken again (NULL: never)
UPDATE order_commissions SET rules_at = snapshot_at;
ALTER TABLE order_commissions ALTER COLUMN rules_at SET NOT NULL,
                              ALTER COLUMN rules_at SET DEFAULT now();
