"""The sync engine: pure diff, the plan value, safety guards, and apply."""
