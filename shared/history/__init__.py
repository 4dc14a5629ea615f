"""Historical daily bars: PostgreSQL for recent years, a Parquet lake for all of it."""
