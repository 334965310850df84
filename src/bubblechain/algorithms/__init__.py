"""Training algorithms as map, reduce and update steps (see base.py for the contract)."""
