-- Analytics (docs/analytics.md): a refresh also rebuilds the days of orders whose money moved
-- since the last one (a ledger entry naming the order: an after-sales refund and the coupon
-- subsidy it gives back, a refund the provider closed, …), which do not change the order's
-- own row. This index finds those entries by when they were posted.
CREATE INDEX ledger_entries_order_posted ON ledger_entries (posted_at) INCLUDE (order_id)
    WHERE order_id IS NOT NULL;
