-- What each metered request cost in micro-dollars (10^-6 USD), from the price book when it
-- was recorded; NULL where the price of a token class it used is unknown.
ALTER TABLE usage_ledger ADD COLUMN cost_micros BIGINT;
