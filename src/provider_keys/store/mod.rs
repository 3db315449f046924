//! Credit accounts and their ledger, the key pool, and sealed keys.
pub mod credit_accounts;
pub mod pool;
pub mod seals;
