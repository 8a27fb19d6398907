//! The rows ACME reads and writes: External Account Binding keys, accounts, orders, their
//! authorizations and replay nonces. The ACME service reaches the database only through
//! [`AcmeRows`].

use diesel::prelude::*;

use super::models::{AcmeAccountRow, AcmeAuthorizationRow, AcmeOrderRow, EabKeyRow};
use super::schema::*;
use super::DbConnection;

/// What ACME asks of the database.
pub trait AcmeRows {
    /// Stores a new EAB key.
    fn insert_eab(&mut self, row: &EabKeyRow) -> QueryResult<()>;
    /// One EAB key.
    fn eab(&mut self, id: &str) -> QueryResult<Option<EabKeyRow>>;
    /// The newest EAB keys (`profile` filters), with their minters' names.
    fn eabs(&mut self, profile: Option<&str>, limit: i64) -> QueryResult<Vec<(EabKeyRow, String)>>;
    /// Binds an unbound, unrevoked, unexpired key to an account; false when it was not free.
    fn bind_eab(&mut self, id: &str, account_id: &str, now: i64) -> QueryResult<bool>;
    /// Revokes a key now; false when it was already revoked or unknown.
    fn revoke_eab(&mut self, id: &str, now: i64) -> QueryResult<bool>;

    /// Stores a new account.
    fn insert_account(&mut self, row: &AcmeAccountRow) -> QueryResult<()>;
    /// One account.
    fn acme_account(&mut self, id: &str) -> QueryResult<Option<AcmeAccountRow>>;
    /// The account of a key (RFC 7638 thumbprint) in a profile's directory.
    fn account_by_key(
        &mut self,
        profile_id: &str,
        thumbprint: &str,
    ) -> QueryResult<Option<AcmeAccountRow>>;
    /// Sets an account's status.
    fn set_account_status(&mut self, id: &str, status: &str) -> QueryResult<()>;
    /// Deactivates every account bound to an EAB key.
    fn deactivate_accounts_of_eab(&mut self, eab_id: &str) -> QueryResult<usize>;
    /// Replaces an account's key.
    fn set_account_key(&mut self, id: &str, thumbprint: &str, jwk: &str) -> QueryResult<()>;
    /// Replaces an account's contact list (JSON).
    fn set_account_contact(&mut self, id: &str, contact: &str) -> QueryResult<()>;

    /// Stores an order and its authorizations.
    fn insert_order(
        &mut self,
        order: &AcmeOrderRow,
        authorizations: &[AcmeAuthorizationRow],
    ) -> QueryResult<()>;
    /// One order.
    fn acme_order(&mut self, id: &str) -> QueryResult<Option<AcmeOrderRow>>;
    /// An account's order ids, newest first.
    fn account_orders(&mut self, account_id: &str, limit: i64) -> QueryResult<Vec<String>>;
    /// Moves an order from `from` to `to`; false when it was not in `from`.
    fn move_order(
        &mut self,
        id: &str,
        from: &str,
        to: &str,
        error: Option<&str>,
    ) -> QueryResult<bool>;
    /// Marks a processing order valid with the request its finalize stored (in that
    /// request's own transaction).
    /// Marks a processing order valid with the request its finalize stored (in that
    /// request's own transaction); false when it was not processing.
    fn order_issued(&mut self, id: &str, request_id: &str) -> QueryResult<bool>;
    /// The order whose finalize stored `request_id`, with its account.
    fn order_of_request(
        &mut self,
        request_id: &str,
    ) -> QueryResult<Option<(AcmeOrderRow, AcmeAccountRow)>>;

    /// A live (not invalid) order that replaces the certificate `cert_id` (RFC 9773).
    fn order_replacing(&mut self, cert_id: &str) -> QueryResult<Option<String>>;
    /// An order's authorizations.
    fn order_authorizations(&mut self, order_id: &str) -> QueryResult<Vec<AcmeAuthorizationRow>>;
    /// One authorization with its order.
    fn acme_authorization(
        &mut self,
        id: &str,
    ) -> QueryResult<Option<(AcmeAuthorizationRow, AcmeOrderRow)>>;
    /// Moves a pending authorization to `status` (processing, valid, invalid, deactivated);
    /// false when it was not in `from`.
    fn settle_authorization(
        &mut self,
        id: &str,
        from: &str,
        row: &AcmeAuthorizationRow,
    ) -> QueryResult<bool>;

    /// Stores a fresh nonce.
    fn insert_nonce(&mut self, nonce: &str, expires_at: i64) -> QueryResult<()>;
    /// Uses a nonce up: true when it existed and had not expired (every instance sees it gone).
    fn take_nonce(&mut self, nonce: &str, now: i64) -> QueryResult<bool>;
    /// Forgets expired nonces.
    fn purge_nonces(&mut self, now: i64) -> QueryResult<usize>;
}

impl AcmeRows for DbConnection {
    fn insert_eab(&mut self, row: &EabKeyRow) -> QueryResult<()> {
        diesel::insert_into(acme_eab_keys::table)
            .values(row)
            .execute(self)
            .map(drop)
    }

    fn eab(&mut self, id: &str) -> QueryResult<Option<EabKeyRow>> {
        acme_eab_keys::table
            .find(id)
            .select(EabKeyRow::as_select())
            .first(self)
            .optional()
    }

    fn eabs(&mut self, profile: Option<&str>, limit: i64) -> QueryResult<Vec<(EabKeyRow, String)>> {
        let mut query = acme_eab_keys::table
            .inner_join(users::table.on(users::id.eq(acme_eab_keys::created_by)))
            .select((EabKeyRow::as_select(), users::username))
            .order(acme_eab_keys::created_at.desc())
            .limit(limit)
            .into_boxed();
        if let Some(p) = profile {
            query = query.filter(acme_eab_keys::profile_id.eq(p.to_string()));
        }
        query.load(self)
    }

    fn bind_eab(&mut self, id: &str, account_id: &str, now: i64) -> QueryResult<bool> {
        let changed = diesel::update(
            acme_eab_keys::table
                .find(id)
                .filter(acme_eab_keys::account_id.is_null())
                .filter(acme_eab_keys::revoked_at.is_null())
                .filter(acme_eab_keys::expires_at.gt(now)),
        )
        .set(acme_eab_keys::account_id.eq(Some(account_id)))
        .execute(self)?;
        Ok(changed == 1)
    }

    fn revoke_eab(&mut self, id: &str, now: i64) -> QueryResult<bool> {
        let changed = diesel::update(
            acme_eab_keys::table
                .find(id)
                .filter(acme_eab_keys::revoked_at.is_null()),
        )
        .set(acme_eab_keys::revoked_at.eq(Some(now)))
        .execute(self)?;
        Ok(changed == 1)
    }

    fn insert_account(&mut self, row: &AcmeAccountRow) -> QueryResult<()> {
        diesel::insert_into(acme_accounts::table)
            .values(row)
            .execute(self)
            .map(drop)
    }

    fn acme_account(&mut self, id: &str) -> QueryResult<Option<AcmeAccountRow>> {
        acme_accounts::table
            .find(id)
            .select(AcmeAccountRow::as_select())
            .first(self)
            .optional()
    }

    fn account_by_key(
        &mut self,
        profile_id: &str,
        thumbprint: &str,
    ) -> QueryResult<Option<AcmeAccountRow>> {
        acme_accounts::table
            .filter(acme_accounts::profile_id.eq(profile_id))
            .filter(acme_accounts::key_thumbprint.eq(thumbprint))
            .select(AcmeAccountRow::as_select())
            .first(self)
            .optional()
    }

    fn set_account_status(&mut self, id: &str, status: &str) -> QueryResult<()> {
        diesel::update(acme_accounts::table.find(id))
            .set(acme_accounts::status.eq(status))
            .execute(self)
            .map(drop)
    }

    fn deactivate_accounts_of_eab(&mut self, eab_id: &str) -> QueryResult<usize> {
        diesel::update(acme_accounts::table.filter(acme_accounts::eab_id.eq(eab_id)))
            .set(acme_accounts::status.eq("deactivated"))
            .execute(self)
    }

    fn set_account_key(&mut self, id: &str, thumbprint: &str, jwk: &str) -> QueryResult<()> {
        diesel::update(acme_accounts::table.find(id))
            .set((
                acme_accounts::key_thumbprint.eq(thumbprint),
                acme_accounts::jwk.eq(jwk),
            ))
            .execute(self)
            .map(drop)
    }

    fn set_account_contact(&mut self, id: &str, contact: &str) -> QueryResult<()> {
        diesel::update(acme_accounts::table.find(id))
            .set(acme_accounts::contact.eq(contact))
            .execute(self)
            .map(drop)
    }

    fn insert_order(
        &mut self,
        order: &AcmeOrderRow,
        authorizations: &[AcmeAuthorizationRow],
    ) -> QueryResult<()> {
        diesel::insert_into(acme_orders::table)
            .values(order)
            .execute(self)?;
        for row in authorizations {
            diesel::insert_into(acme_authorizations::table)
                .values(row)
                .execute(self)?;
        }
        Ok(())
    }

    fn acme_order(&mut self, id: &str) -> QueryResult<Option<AcmeOrderRow>> {
        acme_orders::table
            .find(id)
            .select(AcmeOrderRow::as_select())
            .first(self)
            .optional()
    }

    fn account_orders(&mut self, account_id: &str, limit: i64) -> QueryResult<Vec<String>> {
        acme_orders::table
            .filter(acme_orders::account_id.eq(account_id))
            .order(acme_orders::created_at.desc())
            .limit(limit)
            .select(acme_orders::id)
            .load(self)
    }

    fn move_order(
        &mut self,
        id: &str,
        from: &str,
        to: &str,
        error: Option<&str>,
    ) -> QueryResult<bool> {
        let changed = diesel::update(
            acme_orders::table
                .find(id)
                .filter(acme_orders::status.eq(from)),
        )
        .set((acme_orders::status.eq(to), acme_orders::error.eq(error)))
        .execute(self)?;
        Ok(changed == 1)
    }

    fn order_issued(&mut self, id: &str, request_id: &str) -> QueryResult<bool> {
        let changed = diesel::update(
            acme_orders::table
                .find(id)
                .filter(acme_orders::status.eq("processing")),
        )
        .set((
            acme_orders::status.eq("valid"),
            acme_orders::request_id.eq(Some(request_id)),
        ))
        .execute(self)?;
        Ok(changed == 1)
    }

    fn order_of_request(
        &mut self,
        request_id: &str,
    ) -> QueryResult<Option<(AcmeOrderRow, AcmeAccountRow)>> {
        acme_orders::table
            .inner_join(acme_accounts::table.on(acme_accounts::id.eq(acme_orders::account_id)))
            .filter(acme_orders::request_id.eq(request_id))
            .select((AcmeOrderRow::as_select(), AcmeAccountRow::as_select()))
            .first(self)
            .optional()
    }

    fn order_replacing(&mut self, cert_id: &str) -> QueryResult<Option<String>> {
        acme_orders::table
            .filter(acme_orders::replaces.eq(cert_id))
            .filter(acme_orders::status.ne("invalid"))
            .select(acme_orders::id)
            .first(self)
            .optional()
    }

    fn order_authorizations(&mut self, order_id: &str) -> QueryResult<Vec<AcmeAuthorizationRow>> {
        acme_authorizations::table
            .filter(acme_authorizations::order_id.eq(order_id))
            .order(acme_authorizations::id.asc())
            .select(AcmeAuthorizationRow::as_select())
            .load(self)
    }

    fn acme_authorization(
        &mut self,
        id: &str,
    ) -> QueryResult<Option<(AcmeAuthorizationRow, AcmeOrderRow)>> {
        acme_authorizations::table
            .inner_join(acme_orders::table.on(acme_orders::id.eq(acme_authorizations::order_id)))
            .filter(acme_authorizations::id.eq(id))
            .select((AcmeAuthorizationRow::as_select(), AcmeOrderRow::as_select()))
            .first(self)
            .optional()
    }

    fn settle_authorization(
        &mut self,
        id: &str,
        from: &str,
        row: &AcmeAuthorizationRow,
    ) -> QueryResult<bool> {
        let changed = diesel::update(
            acme_authorizations::table
                .find(id)
                .filter(acme_authorizations::status.eq(from)),
        )
        .set((
            acme_authorizations::status.eq(&row.status),
            acme_authorizations::challenge_type.eq(&row.challenge_type),
            acme_authorizations::validated_at.eq(row.validated_at),
            acme_authorizations::error.eq(&row.error),
        ))
        .execute(self)?;
        Ok(changed == 1)
    }

    fn insert_nonce(&mut self, nonce: &str, expires_at: i64) -> QueryResult<()> {
        diesel::insert_into(acme_nonces::table)
            .values((
                acme_nonces::nonce.eq(nonce),
                acme_nonces::expires_at.eq(expires_at),
            ))
            .execute(self)
            .map(drop)
    }

    fn take_nonce(&mut self, nonce: &str, now: i64) -> QueryResult<bool> {
        let gone = diesel::delete(
            acme_nonces::table
                .filter(acme_nonces::nonce.eq(nonce))
                .filter(acme_nonces::expires_at.gt(now)),
        )
        .execute(self)?;
        Ok(gone == 1)
    }

    fn purge_nonces(&mut self, now: i64) -> QueryResult<usize> {
        diesel::delete(acme_nonces::table.filter(acme_nonces::expires_at.le(now))).execute(self)
    }
}
