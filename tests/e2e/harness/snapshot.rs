//! Proving that a refused request changed nothing: snapshot the rows it could have touched,
//! send it, and assert every one of them is as it was.
//!
//! ```ignore
//! let before = world.snapshot(&Rows::of_user(&user_id, &["usage_records", "meter_counters"]));
//! world.authed("POST", "/api/usage/report", &token).json(&bad).assert_error(400, "validation_failed");
//! before.assert_unchanged(world);
//! ```
//!
//! Rows are read whole (`SELECT *`), so a changed column is caught as surely as an added or
//! deleted row. Values are quoted here, so callers never interpolate SQL by hand.

use serde_json::Value;

use super::World;

/// Which rows of which tables: `(table, condition)` pairs.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    reads: Vec<(String, String)>,
}

/// The tables keyed by a metered subject (`subject_kind`, `subject_id`) instead of `user_id`.
const METER_TABLES: &[&str] = &["meter_counters", "usage_reservations", "usage_records"];

/// `value` as an SQL string literal.
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

impl Rows {
    /// Nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every row of `tables` belonging to the user `user_id` (Tollgate's `usr_...` id): by
    /// `user_id`, or in the meter tables (keyed by subject since 0009) as the subject of kind
    /// `user` with that id.
    pub fn of_user(user_id: &str, tables: &[&str]) -> Self {
        tables.iter().fold(Self::new(), |rows, table| {
            if METER_TABLES.contains(table) {
                rows.where_eq(table, "subject_kind", "user")
                    .and_eq("subject_id", user_id)
            } else {
                rows.where_eq(table, "user_id", user_id)
            }
        })
    }

    /// Every row of `table` whose `column` is `value`.
    pub fn where_eq(mut self, table: &str, column: &str, value: &str) -> Self {
        self.reads
            .push((table.to_owned(), format!("{column} = {}", quoted(value))));
        self
    }

    fn sql(&self) -> String {
        self.reads
            .iter()
            .map(|(table, condition)| {
                format!("SELECT * FROM {table} WHERE {condition} ORDER BY rowid")
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The rows as they were when the snapshot was taken.
#[derive(Debug)]
pub struct Snapshot {
    rows: Rows,
    before: Vec<Vec<Value>>,
}

impl World {
    /// Reads `rows` now, in one `wrangler d1 execute`.
    pub fn snapshot(&self, rows: &Rows) -> Snapshot {
        assert!(
            !rows.reads.is_empty(),
            "a snapshot of no rows proves nothing"
        );
        Snapshot {
            rows: rows.clone(),
            before: self.d1_query_all(&rows.sql()),
        }
    }
}

impl Snapshot {
    /// Panics, naming the table and showing both versions, if any row was added, removed
    /// or changed since the snapshot.
    pub fn assert_unchanged(&self, world: &World) {
        let after = world.d1_query_all(&self.rows.sql());
        for (((table, condition), before), after) in
            self.rows.reads.iter().zip(&self.before).zip(&after)
        {
            assert!(
                before == after,
                "{table} WHERE {condition} changed:\nbefore: {before:#?}\nafter: {after:#?}"
            );
        }
    }
}

/// More ways to name rows, and reading or counting them, for tests that check a positive
/// fact ("one record, not two") without building SQL by hand.
impl Rows {
    /// Every row of `table`: only for a world of its own, where no other test writes.
    pub fn all(mut self, table: &str) -> Self {
        self.reads.push((table.to_owned(), "TRUE".to_owned()));
        self
    }

    /// Every row of `table` whose `column` starts with `prefix` (case-sensitively; `%` and
    /// `_` are plain characters here, unlike in `LIKE`).
    pub fn where_prefix(mut self, table: &str, column: &str, prefix: &str) -> Self {
        let length = prefix.chars().count();
        self.reads.push((
            table.to_owned(),
            format!("substr({column}, 1, {length}) = {}", quoted(prefix)),
        ));
        self
    }

    /// Narrows the rows named last to those whose `column` is also `value`.
    pub fn and_eq(self, column: &str, value: &str) -> Self {
        self.narrow(format!("{column} = {}", quoted(value)))
    }

    /// Narrows the rows named last to those whose `column` is NULL.
    pub fn and_null(self, column: &str) -> Self {
        self.narrow(format!("{column} IS NULL"))
    }

    fn narrow(mut self, condition: String) -> Self {
        let (_, last) = self
            .reads
            .last_mut()
            .expect("name some rows before narrowing them");
        *last = format!("({last}) AND {condition}");
        self
    }
}

impl World {
    /// The rows `rows` names now, whole, every read's in turn.
    pub fn rows(&self, rows: &Rows) -> Vec<Value> {
        assert!(!rows.reads.is_empty(), "no rows named");
        self.d1_query_all(&rows.sql())
            .into_iter()
            .flatten()
            .collect()
    }

    /// How many rows `rows` names now.
    pub fn count(&self, rows: &Rows) -> usize {
        self.rows(rows).len()
    }
}
