-- rebill_iso was declared IMMUTABLE around to_char, which is only STABLE: PostgreSQL does not
-- inline a SQL function whose body is more volatile than its label, so every call ran as a
-- function call of its own (three per charge event, 60,003 calls in a 20,000-charge run, seen
-- in pg_stat_statements as their own statement). Labelled STABLE, it is inlined into the
-- event views that call it; its result is the same.
CREATE OR REPLACE FUNCTION "rebill_iso"(t timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
  select to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;
