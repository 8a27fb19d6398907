//! diesel table definitions, shared by SQLite and PostgreSQL (see `migrations/`).
#![allow(missing_docs)]

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    cas (id) {
        id -> Text,
        parent_id -> Nullable<Text>,
        certificate_der -> Binary,
        key_pem -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        totp_secret_enc -> Binary,
        roles -> Text,
        disabled -> Bool,
        failed_logins -> Integer,
        locked_until -> Nullable<BigInt>,
        last_totp_step -> BigInt,
        created_at -> BigInt,
        step_up_failures -> Integer,
        step_up_locked_at -> Nullable<BigInt>,
        organization -> Nullable<Text>,
        email_domain -> Nullable<Text>,
        must_change_password -> Bool,
        credentials_set_at -> BigInt,
    }
}

diesel::table! {
    directory_accounts (user_id) {
        user_id -> Text,
        dn -> Nullable<Text>,
        roles -> Nullable<Text>,
        checked_at -> BigInt,
    }
}

diesel::table! {
    enrolments (user_id) {
        user_id -> Text,
        code_hash -> Text,
        expires_at -> BigInt,
        failures -> Integer,
    }
}

diesel::table! {
    account_changes (id) {
        id -> Text,
        kind -> Text,
        target -> Text,
        payload -> Text,
        requester_id -> Text,
        requester -> Text,
        status -> Text,
        approvals_required -> Integer,
        requester_half_hash -> Nullable<Text>,
        comment -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    account_change_decisions (change_id, approver_id) {
        change_id -> Text,
        approver_id -> Text,
        approver -> Text,
        verdict -> Text,
        comment -> Text,
        decided_at -> BigInt,
    }
}

diesel::table! {
    sessions (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        created_at -> BigInt,
        last_seen -> BigInt,
        expires_at -> BigInt,
        step_up_failures -> Integer,
    }
}

diesel::table! {
    requests (id) {
        id -> Text,
        profile_id -> Text,
        requester_id -> Text,
        csr_der -> Binary,
        justification -> Text,
        work_order -> Nullable<Text>,
        window_start -> Nullable<BigInt>,
        window_end -> Nullable<BigInt>,
        status -> Text,
        ca_id -> Nullable<Text>,
        certificate_serial -> Nullable<Text>,
        failure -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    decisions (request_id, approver_id) {
        request_id -> Text,
        approver_id -> Text,
        approver_roles -> Text,
        verdict -> Text,
        second_factor -> Bool,
        comment -> Text,
        decided_at -> BigInt,
    }
}

diesel::table! {
    certificate_names (ca_id, serial) {
        ca_id -> Text,
        serial -> Text,
        names -> Text,
    }
}

diesel::table! {
    certificates (ca_id, serial) {
        ca_id -> Text,
        serial -> Text,
        request_id -> Nullable<Text>,
        profile_id -> Text,
        subject -> Text,
        tbs_der -> Binary,
        der -> Nullable<Binary>,
        not_before -> BigInt,
        not_after -> BigInt,
        status -> Text,
        revoked_at -> Nullable<BigInt>,
        revocation_reason -> Nullable<Text>,
        invalidity_date -> Nullable<BigInt>,
        created_at -> BigInt,
        status_changed_ms -> BigInt,
        crl_partition -> Nullable<Integer>,
    }
}

diesel::table! {
    crl_sequences (ca_id) {
        ca_id -> Text,
        last_number -> BigInt,
    }
}

diesel::table! {
    published_crls (name) {
        name -> Text,
        ca_id -> Text,
        crl_partition -> Nullable<Integer>,
        base_number -> Nullable<BigInt>,
        crl_number -> BigInt,
        this_update -> BigInt,
        next_update -> BigInt,
        der_len -> BigInt,
        delta_base_number -> Nullable<BigInt>,
        delta_base_this_update -> Nullable<BigInt>,
    }
}

diesel::table! {
    published_crl_chunks (name, seq) {
        name -> Text,
        seq -> Integer,
        der -> Binary,
    }
}

diesel::table! {
    ocsp_responders (ca_id) {
        ca_id -> Text,
        certificate_der -> Binary,
        key_pem -> Text,
        not_after -> BigInt,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        at -> BigInt,
        actor -> Text,
        action -> Text,
        target -> Text,
        details -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    ocsp_responses (ca_id, serial) {
        ca_id -> Text,
        serial -> Text,
        der -> Binary,
        this_update -> BigInt,
        next_update -> BigInt,
        updated_ms -> BigInt,
        origin -> BigInt,
    }
}

diesel::table! {
    audit_checkpoints (seq) {
        seq -> BigInt,
        hash -> Text,
        at -> BigInt,
        signature -> Text,
    }
}

diesel::table! {
    acme_eab_keys (id) {
        id -> Text,
        profile_id -> Text,
        name_patterns -> Text,
        key_sealed -> Text,
        label -> Text,
        created_by -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        account_id -> Nullable<Text>,
    }
}

diesel::table! {
    acme_accounts (id) {
        id -> Text,
        profile_id -> Text,
        key_thumbprint -> Text,
        jwk -> Text,
        eab_id -> Text,
        status -> Text,
        contact -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    acme_orders (id) {
        id -> Text,
        account_id -> Text,
        status -> Text,
        identifiers -> Text,
        expires_at -> BigInt,
        created_at -> BigInt,
        request_id -> Nullable<Text>,
        error -> Nullable<Text>,
        replaces -> Nullable<Text>,
    }
}

diesel::table! {
    acme_authorizations (id) {
        id -> Text,
        order_id -> Text,
        identifier -> Text,
        status -> Text,
        token -> Text,
        expires_at -> BigInt,
        challenge_type -> Nullable<Text>,
        validated_at -> Nullable<BigInt>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    acme_nonces (nonce) {
        nonce -> Text,
        expires_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    account_changes,
    account_change_decisions,
    enrolments,
    directory_accounts,
    audit_checkpoints,
    settings,
    cas,
    users,
    sessions,
    requests,
    decisions,
    certificates,
    certificate_names,
    crl_sequences,
    published_crls,
    published_crl_chunks,
    ocsp_responders,
    audit_log,
    ocsp_responses,
    enrollment_challenges,
    scep_transactions,
    scep_ra,
    renewals,
    acme_eab_keys,
    acme_accounts,
    acme_orders,
    acme_authorizations,
    acme_nonces,
    notifications,
    user_contacts,
    break_glass,
    break_glass_reviews,
);

diesel::table! {
    break_glass (request_id) {
        request_id -> Text,
        profile_id -> Text,
        officer_id -> Text,
        emergency -> Text,
        issued_at -> BigInt,
        review_due -> BigInt,
        reviews_needed -> Integer,
        revoke_unreviewed -> Bool,
        status -> Text,
        closed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    break_glass_reviews (request_id, reviewer_id) {
        request_id -> Text,
        reviewer_id -> Text,
        verdict -> Text,
        comment -> Text,
        reviewed_at -> BigInt,
    }
}

diesel::table! {
    notifications (id) {
        id -> Text,
        event_key -> Text,
        event -> Text,
        channel -> Text,
        recipient -> Text,
        subject -> Text,
        body -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        claimed_until -> BigInt,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        sent_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    user_contacts (user_id) {
        user_id -> Text,
        email -> Text,
    }
}

diesel::table! {
    enrollment_challenges (id) {
        id -> Text,
        code_sha256 -> Text,
        profile_id -> Text,
        cn_pattern -> Nullable<Text>,
        san_pattern -> Nullable<Text>,
        created_by -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    scep_transactions (transaction_id, signer_sha256) {
        transaction_id -> Text,
        signer_sha256 -> Text,
        csr_key_sha256 -> Text,
        request_id -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    scep_ra (ca_id) {
        ca_id -> Text,
        certificate_der -> Binary,
        key_sealed -> Text,
        not_after -> BigInt,
    }
}

diesel::table! {
    renewals (request_id) {
        request_id -> Text,
        old_ca_id -> Text,
        old_serial -> Text,
        revoke_old_at -> Nullable<BigInt>,
        done -> Bool,
    }
}
