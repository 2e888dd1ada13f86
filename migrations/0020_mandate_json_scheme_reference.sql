-- A mandate in an event's payload is the mandate as the API shows it: the API's credential
-- shows a Card Payments v7 credential's scheme reference (sent on every charge, byte for byte);
-- the event's copy gains it too. Otherwise the same function as migration 0017.
CREATE OR REPLACE FUNCTION "rebill_mandate_json"(mid bigint) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (select jsonb_build_object(
    'id', m.id, 'customerRef', cu.ref, 'intent', m.intent, 'amount', m.amount, 'currency', m.currency,
    'entity', m.entity, 'narrative', m.narrative, 'gateway', m.gateway, 'status', m.status,
    'statusReason', m.status_reason,
    'interval', case when m.interval_unit is null then null else m.interval_count || ' ' || m.interval_unit end,
    'timezone', m.timezone, 'startAt', rebill_iso(m.start_at), 'anchorAt', rebill_iso(m.anchor_at),
    'endAt', rebill_iso(m.end_at), 'instalmentsTotal', m.instalments_total,
    'lastInstalmentAmount', m.last_instalment_amount, 'nextCycle', m.next_cycle,
    'nextDueAt', rebill_iso(m.next_due_at), 'cancelAtPeriodEnd', m.cancel_at_period_end,
    'settleMode', m.settle_mode, 'settlePercent', m.settle_percent, 'legacyId', m.legacy_id, 'creditBalance', m.credit_balance,
    'credential', jsonb_build_object(
      'id', cr.id, 'api', cr.api, 'instrumentType', cr.instrument_type, 'schemeReference', cr.scheme_reference,
      'status', cr.status, 'brand', cr.brand,
      'lastFour', cr.last_four,
      'expiry', case when cr.expiry_month is null or cr.expiry_year is null then null
                     else lpad(cr.expiry_month::text, 2, '0') || '/' || cr.expiry_year end,
      'currentLink', l.href, 'holdsCardData', cr.encrypted_pan is not null),
    'createdAt', rebill_iso(m.created_at))
  from mandates m join customers cu on cu.id = m.customer_id join credentials cr on cr.id = m.credential_id
  left join links l on l.id = cr.current_link_id
  where m.id = mid);
END
$$;
