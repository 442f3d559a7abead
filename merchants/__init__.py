"""Merchants (商家): self-onboarding with a business licence, review, their back office."""
