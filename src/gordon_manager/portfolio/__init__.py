"""The portfolio rule: what the bots' ledgers hold versus what gordon-executor records (drift)."""
