"""What finance reads: the audit report of one account, the monthly recovery report, the forecast,
CSV/JSON exports, and the PDF made from HTML."""
