"""After-sales, disputes, insurance claims and spot checks (issue 19 §2, §3)."""
