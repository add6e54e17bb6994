"""Curation: validation rules, reason codes, duplicates, analysis and stable splits."""
