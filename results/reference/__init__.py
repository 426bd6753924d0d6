"""Published figures the leaderboard shows as reference rows (installed as package data)."""

from pathlib import Path

PAPER_TABLE2 = Path(__file__).resolve().parent / "paper_table2.yaml"
