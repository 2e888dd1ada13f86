-- The mandate and charge lists find a customer ref by prefix (`customerRef=ada` finds ada-1):
-- a LIKE 'ada%' is served by a text_pattern_ops index, which the unique index (default
-- collation) cannot do.
CREATE INDEX "customers_ref_prefix_idx" ON "customers" USING btree ("ref" text_pattern_ops);
