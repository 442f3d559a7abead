"""Commission, settlement, wallets, withdrawals, payouts and reconciliation (docs/settlement.md)."""
