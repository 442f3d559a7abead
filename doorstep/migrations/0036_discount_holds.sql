-- Growth (docs/growth.md): an applied discount is held by one trade (``trade_id``, the trade
-- made for its payable amount), and only that trade's closing releases it; a discount no
-- trade holds is released at ``hold_until`` (15 min after it was applied or its trade was
-- replaced); ``honoured`` says why the platform paid a discount a late capture could not
-- take from the customer again (the coupon or points used elsewhere since).
ALTER TABLE order_discounts
    ADD COLUMN trade_id    bigint REFERENCES payments(id),
    ADD COLUMN hold_until  timestamptz,
    ADD COLUMN honoured    text;

UPDATE order_discounts d SET trade_id = (
    SELECT max(p.id) FROM payments p
    WHERE p.order_id = d.order_id AND p.amount_fen = d.payable_fen
      AND p.status IN ('pending', 'failed') AND p.purpose IN ('prepay', 'final')
) WHERE d.status = 'applied';

-- Applied before this migration with no trade: released by the next sweep (growth:holds).
UPDATE order_discounts SET hold_until = now() WHERE status = 'applied' AND trade_id IS NULL;

CREATE INDEX order_discounts_hold ON order_discounts (hold_until)
    WHERE status = 'applied' AND trade_id IS NULL;
