ALTER TABLE published_crls DROP COLUMN delta_base_this_update;
ALTER TABLE published_crls DROP COLUMN delta_base_number;
