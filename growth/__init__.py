"""Growth: coupons and points (docs/growth.md)."""
