-- Every move of a charge to `stopped` has its event, `charge.stopped`, as a move to `failed`
-- has `charge.failed`: after a refusal (beside `charge.refused`), and when the gateway turned
-- the request itself away (a 404 on a recurring link), which reached no issuer and so told
-- nobody before. Otherwise the same function as migration 0010.
CREATE OR REPLACE FUNCTION "rebill_event_from_audit"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  t text;
  extra text;
  mid bigint;
  d jsonb;
  att text;
BEGIN
  IF NEW.entity_type = 'charge' THEN
    IF NEW.from_state IS NOT DISTINCT FROM NEW.to_state OR NEW.to_state IN ('pending', 'attempting', 'skipped') THEN
      RETURN NULL;
    END IF;
    IF NEW.from_state IN ('attempting', 'unknown')
       AND NEW.to_state IN ('retry_scheduled', 'needs_new_credential', 'stopped', 'failed', 'cancelled') THEN
      SELECT a.state INTO att FROM attempts a WHERE a.charge_id = NEW.entity_id ORDER BY a.attempt_no DESC LIMIT 1;
      IF att IS DISTINCT FROM 'refused' THEN
        -- Never reached the issuer (not sent, our credentials, throttled): back to waiting, no news.
        IF NEW.to_state NOT IN ('stopped', 'failed', 'cancelled') THEN RETURN NULL; END IF;
      ELSE
        t := 'charge.refused';
      END IF;
    END IF;
    extra := CASE NEW.to_state
      WHEN 'authorized' THEN 'charge.authorized'
      WHEN 'settling' THEN CASE WHEN NEW.from_state IN ('attempting', 'unknown') THEN 'charge.authorized' END
      WHEN 'settled' THEN 'charge.settled'
      WHEN 'settle_failed' THEN 'charge.settlement_failed'
      WHEN 'refunded' THEN 'charge.refunded'
      WHEN 'partially_refunded' THEN 'charge.partially_refunded'
      WHEN 'cancelled' THEN 'charge.cancelled'
      WHEN 'unknown' THEN 'charge.outcome_unknown'
      WHEN 'stopped' THEN 'charge.stopped'
      WHEN 'failed' THEN 'charge.failed'
      WHEN 'retry_scheduled' THEN 'charge.retry_scheduled'
    END;
    -- A move that tells nobody anything (authorized -> settling) stops here, before the
    -- charge is read and made into JSON.
    IF t IS NULL AND extra IS NULL THEN RETURN NULL; END IF;
    SELECT c.mandate_id INTO mid FROM charges c WHERE c.id = NEW.entity_id;
    d := rebill_charge_json(NEW.entity_id) || jsonb_build_object('previous', jsonb_build_object('state', NEW.from_state));
  ELSIF NEW.entity_type = 'mandate' THEN
    extra := CASE
      WHEN NEW.from_state IS NULL THEN 'mandate.created'
      WHEN NEW.from_state = NEW.to_state THEN 'mandate.updated'
      WHEN NEW.to_state = 'paused' THEN 'mandate.paused'
      WHEN NEW.to_state = 'active' THEN 'mandate.resumed'
      WHEN NEW.to_state = 'cancelled' THEN 'mandate.cancelled'
      WHEN NEW.to_state = 'completed' THEN 'mandate.completed'
      WHEN NEW.to_state = 'stopped' THEN 'mandate.stopped'
      WHEN NEW.to_state = 'needs_new_credential' THEN 'mandate.needs_new_credential'
    END;
    mid := NEW.entity_id;
    d := rebill_mandate_json(NEW.entity_id)
      || jsonb_build_object('previous', jsonb_build_object('status', NEW.from_state), 'reason', NEW.reason)
      || CASE WHEN NEW.detail IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('changes', NEW.detail) END;
  ELSIF NEW.entity_type = 'credential' AND NEW.to_state = 'blocked' THEN
    -- A refusal blocked the card: every mandate on it waits for new card details.
    INSERT INTO events (type, mandate_id, customer_ref, data)
    SELECT 'credential.updated', m.id, cu.ref,
           jsonb_build_object('credential', rebill_mandate_json(m.id)->'credential', 'mandateId', m.id,
                              'reason', NEW.reason, 'previous', jsonb_build_object('status', NEW.from_state))
      FROM mandates m JOIN customers cu ON cu.id = m.customer_id
     WHERE m.credential_id = NEW.entity_id AND m.status NOT IN ('cancelled', 'completed');
    RETURN NULL;
  ELSE
    RETURN NULL;
  END IF;
  IF t IS NULL AND extra IS NULL THEN RETURN NULL; END IF;
  IF t IS NOT NULL THEN
    INSERT INTO events (type, mandate_id, customer_ref, data)
    SELECT t, mid, cu.ref, d FROM mandates m JOIN customers cu ON cu.id = m.customer_id WHERE m.id = mid;
  END IF;
  IF extra IS NOT NULL AND extra IS DISTINCT FROM t THEN
    INSERT INTO events (type, mandate_id, customer_ref, data)
    SELECT extra, mid, cu.ref, d FROM mandates m JOIN customers cu ON cu.id = m.customer_id WHERE m.id = mid;
  END IF;
  RETURN NULL;
END
$$;
