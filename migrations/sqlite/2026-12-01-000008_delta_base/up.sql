-- Delta CRLs list every change since the complete CRL of the last scheduled rebuild (their
-- base), while the complete CRL is also republished on every revocation. A complete CRL's row
-- names that base: its own number and thisUpdate after a scheduled rebuild, its predecessor's
-- base when republished from it. NULL on delta rows and on rows stored before this column.
ALTER TABLE published_crls ADD COLUMN delta_base_number BIGINT;
ALTER TABLE published_crls ADD COLUMN delta_base_this_update BIGINT;
