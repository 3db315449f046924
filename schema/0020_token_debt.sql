-- 0020: a user's token debt. A refund or dispute that cannot take back tokens already spent
-- records the rest as its `shortfall`, and that is owed: every entry now carries the debt
-- after it (`debt_after`, like `balance_after`), and a credit repays the debt first, in the
-- same statement, recording how much of its amount went to the debt in `repaid`. So
-- balance_after = previous balance_after + amount - repaid, and debt_after = previous
-- debt_after + shortfall - repaid; neither ever goes below zero.

ALTER TABLE token_ledger ADD COLUMN debt_after INTEGER NOT NULL DEFAULT 0 CHECK (debt_after >= 0);
ALTER TABLE token_ledger ADD COLUMN repaid INTEGER NOT NULL DEFAULT 0 CHECK (repaid >= 0);

-- Shortfalls recorded before this migration are owed too: nothing repaid them yet.
UPDATE token_ledger SET debt_after = (
  SELECT COALESCE(SUM(earlier.shortfall), 0) FROM token_ledger AS earlier
  WHERE earlier.user_id = token_ledger.user_id AND earlier.id <= token_ledger.id
);
