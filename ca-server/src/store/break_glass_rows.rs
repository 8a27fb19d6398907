//! The rows break-glass issuance reads and writes: the issuance (`break_glass`) and its
//! reviews (`break_glass_reviews`). The RA reaches them only through [`BreakGlassRows`].

use diesel::prelude::*;

use super::models::{BreakGlassReviewRow, BreakGlassRow};
use super::schema::*;
use super::DbConnection;

/// What break-glass issuance asks of the database.
pub trait BreakGlassRows {
    /// Records an issuance.
    fn insert_break_glass(&mut self, row: &BreakGlassRow) -> QueryResult<()>;
    /// One issuance.
    fn break_glass(&mut self, request_id: &str) -> QueryResult<Option<BreakGlassRow>>;
    /// The newest issuances (`status` filters), newest first.
    fn break_glass_list(
        &mut self,
        status: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<BreakGlassRow>>;
    /// Issuances still waiting for review whose deadline is at or before `now`.
    fn break_glass_overdue(&mut self, now: i64) -> QueryResult<Vec<BreakGlassRow>>;
    /// How many wait for review.
    fn break_glass_open(&mut self) -> QueryResult<i64>;
    /// Sets an issuance's status (`closed_at` when it is final).
    fn set_break_glass_status(
        &mut self,
        request_id: &str,
        status: &str,
        closed_at: Option<i64>,
    ) -> QueryResult<()>;
    /// Records a review; false when this reviewer already reviewed it.
    fn insert_break_glass_review(&mut self, row: &BreakGlassReviewRow) -> QueryResult<bool>;
    /// An issuance's reviews, oldest first.
    fn break_glass_reviews(&mut self, request_id: &str) -> QueryResult<Vec<BreakGlassReviewRow>>;
}

impl BreakGlassRows for DbConnection {
    fn insert_break_glass(&mut self, row: &BreakGlassRow) -> QueryResult<()> {
        diesel::insert_into(break_glass::table)
            .values(row)
            .execute(self)
            .map(drop)
    }

    fn break_glass(&mut self, request_id: &str) -> QueryResult<Option<BreakGlassRow>> {
        break_glass::table
            .filter(break_glass::request_id.eq(request_id))
            .select(BreakGlassRow::as_select())
            .first(self)
            .optional()
    }

    fn break_glass_list(
        &mut self,
        status: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<BreakGlassRow>> {
        let mut query = break_glass::table
            .order(break_glass::issued_at.desc())
            .limit(limit)
            .select(BreakGlassRow::as_select())
            .into_boxed();
        if let Some(status) = status {
            query = query.filter(break_glass::status.eq(status));
        }
        query.load(self)
    }

    fn break_glass_overdue(&mut self, now: i64) -> QueryResult<Vec<BreakGlassRow>> {
        break_glass::table
            .filter(break_glass::status.eq("awaiting-review"))
            .filter(break_glass::review_due.le(now))
            .select(BreakGlassRow::as_select())
            .load(self)
    }

    fn break_glass_open(&mut self) -> QueryResult<i64> {
        break_glass::table
            .filter(break_glass::status.eq_any(["awaiting-review", "overdue"]))
            .count()
            .get_result(self)
    }

    fn set_break_glass_status(
        &mut self,
        request_id: &str,
        status: &str,
        closed_at: Option<i64>,
    ) -> QueryResult<()> {
        diesel::update(break_glass::table.filter(break_glass::request_id.eq(request_id)))
            .set((
                break_glass::status.eq(status),
                break_glass::closed_at.eq(closed_at),
            ))
            .execute(self)
            .map(drop)
    }

    fn insert_break_glass_review(&mut self, row: &BreakGlassReviewRow) -> QueryResult<bool> {
        let exists = break_glass_reviews::table
            .filter(break_glass_reviews::request_id.eq(&row.request_id))
            .filter(break_glass_reviews::reviewer_id.eq(&row.reviewer_id))
            .count()
            .get_result::<i64>(self)?;
        if exists > 0 {
            return Ok(false);
        }
        diesel::insert_into(break_glass_reviews::table)
            .values(row)
            .execute(self)
            .map(|_| true)
    }

    fn break_glass_reviews(&mut self, request_id: &str) -> QueryResult<Vec<BreakGlassReviewRow>> {
        break_glass_reviews::table
            .filter(break_glass_reviews::request_id.eq(request_id))
            .order(break_glass_reviews::reviewed_at.asc())
            .select(BreakGlassReviewRow::as_select())
            .load(self)
    }
}
