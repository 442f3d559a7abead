-- Each crew member's share of a crew order's settlement (issue 17 §5/§6): a crew order
-- (crew_size >= 2) has one settlement row (its commission, due date, status), whose
-- payee is the lead's; its money is split at T+N between the members who finished it
-- (settlement.rules.split_fen), each share paid to the member's merchant or to the
-- member. These rows say who gets which share, so every member's (or their merchant's)
-- earnings and frozen balance show their own share and the lead's only the lead's.
-- Written when the settlement opens (the crew that finished, the amounts then) and
-- written again when it is settled (the crew and amounts paid, as the ledger entry
-- settle:order:<id> pays them). An order without rows here is shown under its
-- settlement row's payee, as before (one-worker orders; crew orders opened before this).
-- See docs/settlement.md "Crew orders".
CREATE TABLE settlement_shares (
    order_id       bigint NOT NULL REFERENCES settlements(order_id),
    part           integer NOT NULL CHECK (part >= 0),  -- the place in the split: 0 the lead, then by seat
    worker_id      bigint NOT NULL REFERENCES users(id),
    payee_kind     text NOT NULL CHECK (payee_kind IN ('worker', 'merchant')),
    payee_id       bigint NOT NULL REFERENCES users(id),
    gross_fen      bigint NOT NULL,  -- commission_fen + net_fen
    commission_fen bigint NOT NULL,  -- this share of the order's one commission
    net_fen        bigint NOT NULL,  -- what the member's wallet gets
    PRIMARY KEY (order_id, part),
    UNIQUE (order_id, worker_id)
);
CREATE INDEX settlement_shares_payee ON settlement_shares (payee_kind, payee_id);
