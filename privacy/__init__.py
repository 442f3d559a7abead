"""Privacy: number masking (隐私号, AXB bindings) so a customer and their worker call each
other through a temporary number valid during the job only (docs/privacy.md)."""
