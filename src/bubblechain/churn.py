"""A seeded, realistic customer-churn table for the demo and the benchmarks.

Each row is a telecom customer; `churned` follows a logistic model of tenure,
contract, charges, support calls and payment behaviour, with label noise, so
that a linear classifier reaches a plausible ~80% accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FEATURES = [
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "contract_months",
    "support_calls",
    "late_payments",
    "data_gb",
    "num_services",
    "age",
    "has_partner",
    "paperless_billing",
    "autopay",
]
TARGET = "churned"


def churn_table(rows: int, seed: int = 7, start_id: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 16.0, rows).clip(1, 96).round()
    contract = rng.choice([1, 12, 24], size=rows, p=[0.55, 0.25, 0.20]).astype(np.float64)
    services = rng.integers(1, 8, rows).astype(np.float64)
    monthly = (18 + 9.5 * services + rng.normal(0, 6, rows)).clip(15, 130).round(2)
    total = (monthly * tenure * rng.uniform(0.9, 1.05, rows)).round(2)
    calls = rng.poisson(1.2, rows).astype(np.float64)
    late = rng.poisson(0.4 + 0.3 * (contract == 1), rows).astype(np.float64)
    data_gb = rng.lognormal(2.2, 0.8, rows).round(1)
    age = rng.integers(18, 90, rows).astype(np.float64)
    partner = rng.integers(0, 2, rows).astype(np.float64)
    paperless = (rng.random(rows) < 0.6).astype(np.float64)
    autopay = (rng.random(rows) < 0.45).astype(np.float64)
    logit = (
        -0.9
        - 0.045 * tenure
        - 0.09 * contract
        + 0.028 * monthly
        + 0.42 * calls
        + 0.55 * late
        - 0.3 * partner
        + 0.25 * paperless
        - 0.5 * autopay
        - 0.004 * (age - 45)
        - 0.05 * services
    )
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    cols = dict(
        zip(
            FEATURES,
            [
                tenure,
                monthly,
                total,
                contract,
                calls,
                late,
                data_gb,
                services,
                age,
                partner,
                paperless,
                autopay,
            ],
            strict=True,
        )
    )
    return pa.table({"customer_id": np.arange(start_id, start_id + rows), **cols, TARGET: churned})


def write_churn(path: Path, rows: int = 1_000_000, seed: int = 7, chunk: int = 250_000) -> Path:
    """Write the table as Parquet in id order, a chunk at a time."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    try:
        for i, start in enumerate(range(0, rows, chunk)):
            t = churn_table(min(chunk, rows - start), seed=seed + i, start_id=start)
            if writer is None:
                writer = pq.ParquetWriter(path, t.schema)
            writer.write_table(t)
    finally:
        if writer is not None:
            writer.close()
    return path
