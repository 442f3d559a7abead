"""Payments: the provider interface, the WeChat Pay adapter and sandbox, order payments."""
