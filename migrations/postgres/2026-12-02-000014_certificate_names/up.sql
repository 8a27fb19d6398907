-- The subjectAltNames of each certificate as one searchable line (`dns:gw.example ip:10.0.0.1`),
-- for the certificate list's `san` filter. Written with the certificate's reservation; rows
-- stored before this table existed are filled once when the server next starts
-- (`store::certificate_names::fill_missing`). A table of its own rather than a column: the
-- certificates table is at diesel's 16-column limit.
CREATE TABLE certificate_names (
    ca_id TEXT NOT NULL,
    serial TEXT NOT NULL,
    names TEXT NOT NULL,
    PRIMARY KEY (ca_id, serial)
);
