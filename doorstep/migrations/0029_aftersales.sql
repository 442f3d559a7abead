-- After-sales, disputes, insurance and spot checks (issue 19 §2, §3). docs/aftersales.md.

-- A ticket: a customer's request about a completed order, within the after-sales window
-- ([settlement] after_sales_days). Open while open, in_progress or disputed.
CREATE TABLE aftersales_tickets (
    id                  bigserial PRIMARY KEY,
    order_id            bigint NOT NULL REFERENCES orders(id),
    customer_id         bigint NOT NULL REFERENCES users(id),
    worker_id           bigint REFERENCES users(id),
    city_id             text NOT NULL,
    merchant_id         bigint,
    kind                text NOT NULL
        CHECK (kind IN ('redo', 'refund', 'compensation', 'damage', 'complaint')),
    status              text NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'in_progress', 'disputed', 'resolved', 'rejected', 'withdrawn')),
    description         text NOT NULL,
    asked_fen           bigint CHECK (asked_fen > 0),
    escalation_level    smallint NOT NULL DEFAULT 0 CHECK (escalation_level BETWEEN 0 AND 2),
    first_response_due  timestamptz NOT NULL,
    resolution_due      timestamptz NOT NULL,
    first_response_at   timestamptz,
    closed_at           timestamptz,
    closed_by           bigint REFERENCES users(id),
    close_reason        text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);
-- One open ticket of a kind per order (a second is 409; a closed one may be followed).
CREATE UNIQUE INDEX aftersales_one_open ON aftersales_tickets (order_id, kind)
    WHERE status IN ('open', 'in_progress', 'disputed');
CREATE INDEX aftersales_queue ON aftersales_tickets (resolution_due)
    WHERE status IN ('open', 'in_progress', 'disputed');
CREATE INDEX aftersales_by_order ON aftersales_tickets (order_id);
CREATE INDEX aftersales_by_customer ON aftersales_tickets (customer_id, created_at DESC);

-- What happened on a ticket, in order: messages, statements (a dispute), the system's
-- steps (escalations, outcomes). Photos are aftersales_evidence files attached to
-- aftersales:<ticket id>.
CREATE TABLE aftersales_notes (
    id         bigserial PRIMARY KEY,
    ticket_id  bigint NOT NULL REFERENCES aftersales_tickets(id),
    author_id  bigint REFERENCES users(id),
    side       text NOT NULL CHECK (side IN ('customer', 'worker', 'staff', 'system')),
    kind       text NOT NULL CHECK (kind IN ('message', 'statement', 'escalation', 'outcome', 'status')),
    body       text NOT NULL,
    photo_ids  bigint[] NOT NULL DEFAULT '{}',
    at         timestamptz NOT NULL
);
CREATE INDEX aftersales_notes_ticket ON aftersales_notes (ticket_id, id);
-- Each side states its case once in a dispute.
CREATE UNIQUE INDEX aftersales_one_statement ON aftersales_notes (ticket_id, side)
    WHERE kind = 'statement';

-- The outcomes a ticket's resolution (or ruling) gave: one of each kind per ticket.
CREATE TABLE aftersales_outcomes (
    ticket_id      bigint NOT NULL REFERENCES aftersales_tickets(id),
    kind           text NOT NULL CHECK (kind IN ('refund', 'compensation', 'redo', 'claim', 'quality')),
    amount_fen     bigint CHECK (amount_fen > 0),
    out_refund_no  text,
    ledger_key     text,
    redo_order_id  bigint REFERENCES orders(id),
    detail         jsonb NOT NULL DEFAULT '{}',
    by_id          bigint REFERENCES users(id),
    at             timestamptz NOT NULL,
    PRIMARY KEY (ticket_id, kind)
);

-- A dispute's ruling: given once, by an admin (audited).
CREATE TABLE aftersales_rulings (
    ticket_id   bigint PRIMARY KEY REFERENCES aftersales_tickets(id),
    in_favour   text NOT NULL CHECK (in_favour IN ('customer', 'worker', 'split')),
    reason      text NOT NULL,
    ruled_by    bigint NOT NULL REFERENCES users(id),
    ruled_at    timestamptz NOT NULL
);

-- Settlement does not pay out an order while it has a hold (an open ticket).
CREATE TABLE settlement_holds (
    order_id    bigint NOT NULL REFERENCES orders(id),
    hold_key    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, hold_key)
);

-- Insurance (服务保险): the option of a service, the cover an order took at booking, claims.
CREATE TABLE service_insurance (
    service_code  text PRIMARY KEY REFERENCES services(code),
    premium_fen   bigint NOT NULL CHECK (premium_fen > 0),
    coverage_fen  bigint NOT NULL CHECK (coverage_fen > 0),
    active        boolean NOT NULL DEFAULT true,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE order_insurance (
    order_id      bigint PRIMARY KEY REFERENCES orders(id),
    premium_fen   bigint NOT NULL CHECK (premium_fen > 0),
    coverage_fen  bigint NOT NULL CHECK (coverage_fen > 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE insurance_claims (
    id             bigserial PRIMARY KEY,
    ticket_id      bigint NOT NULL UNIQUE REFERENCES aftersales_tickets(id),
    order_id       bigint NOT NULL REFERENCES orders(id),
    status         text NOT NULL DEFAULT 'claimed'
        CHECK (status IN ('claimed', 'assessed', 'paid', 'rejected')),
    claimed_fen    bigint CHECK (claimed_fen > 0),
    assessed_fen   bigint CHECK (assessed_fen > 0),
    coverage_fen   bigint NOT NULL,
    reason         text,
    assessed_by    bigint REFERENCES users(id),
    assessed_at    timestamptz,
    decided_by     bigint REFERENCES users(id),
    decided_at     timestamptz,
    created_at     timestamptz NOT NULL,
    CHECK (assessed_fen IS NULL OR assessed_fen <= coverage_fen),
    CHECK (status <> 'rejected' OR reason IS NOT NULL)
);

-- Spot checks (§3): a sample of a period's completed orders per worker, called back by
-- customer service with a questionnaire; the verdict feeds quality_events.
CREATE TABLE spot_checks (
    id            bigserial PRIMARY KEY,
    order_id      bigint NOT NULL UNIQUE REFERENCES orders(id),
    worker_id     bigint NOT NULL REFERENCES users(id),
    customer_id   bigint NOT NULL REFERENCES users(id),
    city_id       text NOT NULL,
    period_start  timestamptz NOT NULL,
    seed          bigint NOT NULL,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'unreachable')),
    answers       jsonb,
    passed        boolean,
    note          text NOT NULL DEFAULT '',
    done_by       bigint REFERENCES users(id),
    done_at       timestamptz,
    created_at    timestamptz NOT NULL,
    CHECK ((status = 'done') = (passed IS NOT NULL))
);
CREATE INDEX spot_checks_pending ON spot_checks (created_at) WHERE status = 'pending';
