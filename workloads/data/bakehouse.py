"""A synthetic twin of Databricks' ``samples.bakehouse`` (same tables, columns and sizes).

Quantity depends on the franchise size, product, hour, weekday and payment method, plus noise, so a
sensible model learns it (holdout RMSE < 5, R2 > 0.5) and a distribution shift can break it.
Deterministic for a seed and a reference date; every timestamp lies in the 30 days before the
reference date (quality monitors only look 30 days back).

On Databricks the same loaders read the real ``samples.bakehouse`` tables instead.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from workloads.clock import as_utc

N_TRANSACTIONS = 3333
N_CUSTOMERS = 300
N_FRANCHISES = 48
N_SUPPLIERS = 27
UNIT_PRICE = 3
WINDOW_DAYS = 30

TABLES = ("sales_transactions", "sales_customers", "sales_franchises", "sales_suppliers")

PRODUCTS = {
    # product: base units per transaction
    "Golden Gate Ginger": 9.0,
    "Outback Oatmeal": 12.0,
    "Austin Almond Biscotti": 7.0,
    "Tokyo Tidbits": 15.0,
    "Pearly Pies": 10.0,
    "Orchard Oasis": 13.0,
}
PAYMENT_METHODS = ("visa", "mastercard", "amex")
FRANCHISE_SIZES = {"S": -4.0, "M": 0.0, "L": 4.0, "XL": 9.0}
GENDERS = ("female", "male")

# (city, district, country, continent, state, longitude, latitude)
LOCATIONS = [
    ("Seattle", "Capitol Hill", "US", "North America", "WA", -122.32, 47.61),
    ("San Francisco", "Mission", "US", "North America", "CA", -122.42, 37.77),
    ("Austin", "Downtown", "US", "North America", "TX", -97.74, 30.27),
    ("New York", "Brooklyn", "US", "North America", "NY", -73.95, 40.65),
    ("Chicago", "Loop", "US", "North America", "IL", -87.63, 41.88),
    ("Boston", "Back Bay", "US", "North America", "MA", -71.08, 42.35),
    ("Toronto", "Yorkville", "CA", "North America", "ON", -79.39, 43.67),
    ("Vancouver", "Gastown", "CA", "North America", "BC", -123.11, 49.28),
    ("London", "Camden", "GB", "Europe", "ENG", -0.14, 51.54),
    ("Paris", "Le Marais", "FR", "Europe", "IDF", 2.36, 48.86),
    ("Berlin", "Mitte", "DE", "Europe", "BE", 13.40, 52.52),
    ("Amsterdam", "Jordaan", "NL", "Europe", "NH", 4.88, 52.37),
    ("Tokyo", "Shibuya", "JP", "Asia", "13", 139.70, 35.66),
    ("Osaka", "Namba", "JP", "Asia", "27", 135.50, 34.67),
    ("Sydney", "Surry Hills", "AU", "Oceania", "NSW", 151.21, -33.89),
    ("Melbourne", "Fitzroy", "AU", "Oceania", "VIC", 144.98, -37.80),
]
NAME_WORDS = ("Crumbs", "Rise", "Oven", "Crust", "Flour", "Knead", "Batch", "Loaf")
FIRST_NAMES = ("Ada", "Ben", "Cleo", "Dev", "Ema", "Finn", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea", "Mo", "Noa")
LAST_NAMES = ("Baker", "Miller", "Stone", "Rivera", "Chen", "Sato", "Novak", "Dubois", "Kim", "Smith")
INGREDIENTS = ("flour", "sugar", "butter", "eggs", "ginger", "oats", "almonds", "cinnamon", "honey")


def default_reference_date() -> datetime:
    """Midnight UTC at the start of today: the default end of the 30-day data window."""
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def _reference(reference_date: datetime | str | None) -> pd.Timestamp:
    if reference_date is None:
        return pd.Timestamp(default_reference_date())
    return as_utc(reference_date)


def generate(seed: int = 42, reference_date: datetime | str | None = None) -> dict[str, pd.DataFrame]:
    """Generate the four bakehouse tables.

    Args:
        seed: Random seed; the same seed and reference date give identical tables.
        reference_date: End of the 30-day window the transactions fall in (default: today 00:00 UTC).

    Returns:
        Tables by name: sales_transactions, sales_customers, sales_franchises, sales_suppliers.
    """
    rng = np.random.default_rng(seed)
    ref = _reference(reference_date)

    suppliers = pd.DataFrame({
        "supplierID": np.arange(4_000_000, 4_000_000 + N_SUPPLIERS, dtype="int64"),
        "name": [f"{INGREDIENTS[i % len(INGREDIENTS)].title()} Source {i + 1}" for i in range(N_SUPPLIERS)],
        "ingredient": [INGREDIENTS[i % len(INGREDIENTS)] for i in range(N_SUPPLIERS)],
    })
    sup_loc = rng.integers(0, len(LOCATIONS), N_SUPPLIERS)
    suppliers["continent"] = [LOCATIONS[i][3] for i in sup_loc]
    suppliers["city"] = [LOCATIONS[i][0] for i in sup_loc]
    suppliers["district"] = [LOCATIONS[i][1] for i in sup_loc]
    suppliers["size"] = rng.choice(list(FRANCHISE_SIZES), N_SUPPLIERS)
    suppliers["longitude"] = [LOCATIONS[i][5] for i in sup_loc] + rng.normal(0, 0.05, N_SUPPLIERS)
    suppliers["latitude"] = [LOCATIONS[i][6] for i in sup_loc] + rng.normal(0, 0.05, N_SUPPLIERS)
    suppliers["approved"] = np.where(rng.random(N_SUPPLIERS) < 0.85, "Y", "N")

    fr_loc = np.arange(N_FRANCHISES) % len(LOCATIONS)
    franchises = pd.DataFrame({
        "franchiseID": np.arange(3_000_000, 3_000_000 + N_FRANCHISES, dtype="int64"),
        "name": [f"{NAME_WORDS[i % len(NAME_WORDS)]} & Co. {LOCATIONS[fr_loc[i]][0]} {i // len(LOCATIONS) + 1}"
                 for i in range(N_FRANCHISES)],
        "city": [LOCATIONS[i][0] for i in fr_loc],
        "district": [LOCATIONS[i][1] for i in fr_loc],
        "zipcode": [f"{rng.integers(10000, 99999)}" for _ in range(N_FRANCHISES)],
        "country": [LOCATIONS[i][2] for i in fr_loc],
        "size": rng.choice(list(FRANCHISE_SIZES), N_FRANCHISES, p=[0.3, 0.35, 0.25, 0.1]),
        "longitude": [LOCATIONS[i][5] for i in fr_loc] + rng.normal(0, 0.02, N_FRANCHISES),
        "latitude": [LOCATIONS[i][6] for i in fr_loc] + rng.normal(0, 0.02, N_FRANCHISES),
        "supplierID": suppliers["supplierID"].to_numpy()[rng.integers(0, N_SUPPLIERS, N_FRANCHISES)],
    })

    cu_loc = rng.integers(0, len(LOCATIONS), N_CUSTOMERS)
    first = rng.choice(FIRST_NAMES, N_CUSTOMERS)
    last = rng.choice(LAST_NAMES, N_CUSTOMERS)
    customer_ids = np.arange(2_000_000, 2_000_000 + N_CUSTOMERS, dtype="int64")
    customers = pd.DataFrame({
        "customerID": customer_ids,
        "first_name": first,
        "last_name": last,
        "email_address": [f"{f.lower()}.{la.lower()}{cid % 1000}@example.com" for f, la, cid in zip(first, last, customer_ids)],
        "phone_number": [f"+1-555-{rng.integers(1000, 9999)}" for _ in range(N_CUSTOMERS)],
        "address": [f"{rng.integers(1, 999)} {rng.choice(LAST_NAMES)} Street" for _ in range(N_CUSTOMERS)],
        "city": [LOCATIONS[i][0] for i in cu_loc],
        "state": [LOCATIONS[i][4] for i in cu_loc],
        "country": [LOCATIONS[i][2] for i in cu_loc],
        "continent": [LOCATIONS[i][3] for i in cu_loc],
        "postal_zip_code": rng.integers(10000, 99999, N_CUSTOMERS).astype("int64"),
        "gender": rng.choice(GENDERS, N_CUSTOMERS),
    })

    # Transactions: a customer buys at a franchise, mostly on their own continent.
    start = ref - pd.Timedelta(days=WINDOW_DAYS)
    seconds = rng.integers(0, WINDOW_DAYS * 86400 - 1, N_TRANSACTIONS)
    # Business hours: shift most timestamps into 7:00-20:00 local-ish time.
    hours = rng.choice(np.arange(7, 21), N_TRANSACTIONS)
    day = seconds // 86400
    stamps = start + pd.to_timedelta(day * 86400 + hours * 3600 + rng.integers(0, 3600, N_TRANSACTIONS), unit="s")
    stamps = stamps.where(stamps < ref, ref - pd.Timedelta(seconds=1))
    cust_idx = rng.integers(0, N_CUSTOMERS, N_TRANSACTIONS)
    fr_idx = rng.integers(0, N_FRANCHISES, N_TRANSACTIONS)
    products = rng.choice(list(PRODUCTS), N_TRANSACTIONS)
    payment = rng.choice(PAYMENT_METHODS, N_TRANSACTIONS, p=[0.5, 0.35, 0.15])
    frame = pd.DataFrame({"ts": stamps, "product": products, "paymentMethod": payment,
                          "size": franchises["size"].to_numpy()[fr_idx]})
    quantity = expected_quantity(frame) + rng.normal(0, 2.5, N_TRANSACTIONS)
    quantity = np.clip(np.rint(quantity), 1, None).astype("int64")

    order = np.argsort(stamps.to_numpy(), kind="stable")
    transactions = pd.DataFrame({
        "transactionID": np.arange(1_000_000, 1_000_000 + N_TRANSACTIONS, dtype="int64"),
        "customerID": customer_ids[cust_idx][order],
        "franchiseID": franchises["franchiseID"].to_numpy()[fr_idx][order],
        "dateTime": pd.DatetimeIndex(stamps)[order].astype("datetime64[us, UTC]"),
        "product": products[order],
        "quantity": quantity[order],
        "unitPrice": np.full(N_TRANSACTIONS, UNIT_PRICE, dtype="int64"),
        "totalPrice": (quantity * UNIT_PRICE)[order],
        "paymentMethod": payment[order],
        "cardNumber": rng.integers(10**15, 10**16 - 1, N_TRANSACTIONS, dtype="int64")[order],
    })
    return {
        "sales_transactions": transactions,
        "sales_customers": customers,
        "sales_franchises": franchises,
        "sales_suppliers": suppliers,
    }


def expected_quantity(frame: pd.DataFrame) -> np.ndarray:
    """The noise-free units of a transaction: what a good model should learn.

    Args:
        frame: Columns ``ts`` (timestamp), ``product``, ``paymentMethod`` and ``size`` (franchise size).
    """
    ts = pd.DatetimeIndex(frame["ts"])
    base = frame["product"].map(PRODUCTS).to_numpy(dtype=float)
    size = frame["size"].map(FRANCHISE_SIZES).to_numpy(dtype=float)
    hour = ts.hour.to_numpy()
    morning_rush = np.where((hour >= 7) & (hour <= 9), 5.0, 0.0)
    lunch = np.where((hour >= 12) & (hour <= 13), 2.5, 0.0)
    weekend = np.where(ts.day_of_week.to_numpy() >= 5, 3.5, 0.0)
    amex = np.where(frame["paymentMethod"].to_numpy() == "amex", 2.0, 0.0)
    return base + size + morning_rush + lunch + weekend + amex

