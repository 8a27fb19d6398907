//! Several INSERTs as one PostgreSQL statement: `WITH i0 AS (INSERT ...), i1 AS (INSERT ...)
//! INSERT ...`.
//!
//! A group commit adds rows to four tables per batch (requests, certificates, OCSP responses,
//! the audit chain). As separate statements each is a round trip to the server, parsed, planned
//! and answered on its own, and on PostgreSQL the last ones run under the audit chain's lock,
//! which every instance sharing the database waits for. Data-modifying `WITH` clauses all run to
//! completion, whether or not the main statement reads them, and the foreign keys between them
//! are checked at the end of the statement, so the rows of one batch may refer to each other.

use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::{Connection, QueryResult};

/// INSERT statements to run as one, in the order they were pushed.
#[derive(Default)]
pub struct ChainedInsert<'a> {
    inserts: Vec<Box<dyn QueryFragment<Pg> + 'a>>,
}

impl<'a> ChainedInsert<'a> {
    /// Adds an INSERT (e.g. `diesel::insert_into(table).values(rows)`).
    pub fn push(&mut self, insert: impl QueryFragment<Pg> + 'a) {
        self.inserts.push(Box::new(insert));
    }

    /// Runs every INSERT pushed, in one statement (none if none were pushed); returns the rows the
    /// last one inserted.
    pub fn execute(self, conn: &mut PgConnection) -> QueryResult<usize> {
        if self.inserts.is_empty() {
            return Ok(0);
        }
        conn.execute_returning_count(&self)
    }
}

impl QueryFragment<Pg> for ChainedInsert<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // The text depends on how many rows each INSERT carries: not worth a prepared statement.
        out.unsafe_to_cache_prepared();
        let Some((last, first)) = self.inserts.split_last() else {
            return Ok(());
        };
        for (i, insert) in first.iter().enumerate() {
            out.push_sql(if i == 0 { "WITH " } else { ", " });
            out.push_sql(&format!("i{i} AS ("));
            insert.walk_ast(out.reborrow())?;
            out.push_sql(")");
        }
        if !first.is_empty() {
            out.push_sql(" ");
        }
        last.walk_ast(out.reborrow())
    }
}

impl QueryId for ChainedInsert<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::settings;
    use diesel::ExpressionMethods;

    #[test]
    fn inserts_become_with_clauses_of_one_statement_with_their_binds_in_order() {
        let mut chained = ChainedInsert::default();
        chained.push(diesel::insert_into(settings::table).values(vec![
            (settings::name.eq("a"), settings::value.eq("1")),
            (settings::name.eq("b"), settings::value.eq("2")),
        ]));
        chained.push(
            diesel::insert_into(settings::table)
                .values((settings::name.eq("c"), settings::value.eq("3"))),
        );
        chained.push(
            diesel::insert_into(settings::table)
                .values((settings::name.eq("d"), settings::value.eq("4"))),
        );
        let sql = diesel::debug_query::<Pg, _>(&chained).to_string();
        assert!(
            sql.starts_with(
                "WITH i0 AS (INSERT INTO \"settings\" (\"name\", \"value\") VALUES ($1, $2), ($3, $4)), \
                 i1 AS (INSERT INTO \"settings\" (\"name\", \"value\") VALUES ($5, $6)) \
                 INSERT INTO \"settings\" (\"name\", \"value\") VALUES ($7, $8)"
            ),
            "{sql}"
        );
        assert!(
            sql.ends_with("binds: [\"a\", \"1\", \"b\", \"2\", \"c\", \"3\", \"d\", \"4\"]"),
            "{sql}"
        );
    }

    #[test]
    fn one_insert_is_sent_as_it_is() {
        let mut chained = ChainedInsert::default();
        chained.push(
            diesel::insert_into(settings::table)
                .values((settings::name.eq("a"), settings::value.eq("1"))),
        );
        let sql = diesel::debug_query::<Pg, _>(&chained).to_string();
        assert!(
            sql.starts_with("INSERT INTO \"settings\" (\"name\", \"value\") VALUES ($1, $2)"),
            "{sql}"
        );
    }
}
