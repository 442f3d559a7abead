"""Domain events: a transactional outbox and the relay that delivers it to consumers.

A state change that others react to appends an event in the same PostgreSQL
transaction (``events.store.append``); the relay (``events.relay``) gives each committed
event a place in one total order and hands it to every consumer registered for its
type, at least once, in order per aggregate, with retries and a dead-letter state. A
consumer's database effect commits in the same transaction as its cursor, so a
redelivery after a crash changes nothing. See docs/events.md.
"""
