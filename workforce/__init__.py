"""Workforce: workers' profiles, skills, certificates, availability and merchant teams."""
