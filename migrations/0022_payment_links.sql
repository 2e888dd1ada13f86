ALTER TABLE "attempts" ADD COLUMN "links" jsonb;--> statement-breakpoint
ALTER TABLE "payment_actions" ADD COLUMN "links" jsonb;--> statement-breakpoint
-- An answer's links move onto the answer's own row: the authorization's onto its attempt as
-- [relation, href] pairs in the order given, an action's onto the action as an object. The
-- `links` table keeps the recurring chain (the rows with a credential). Per charge this writes
-- one links row and its three index entries where it wrote eight and twenty-four.
UPDATE "attempts" a SET "links" = l.links
  FROM (SELECT attempt_id, jsonb_agg(jsonb_build_array(rel, href) ORDER BY id) AS links
          FROM "links" WHERE attempt_id IS NOT NULL AND action_id IS NULL GROUP BY attempt_id) l
 WHERE a.id = l.attempt_id;--> statement-breakpoint
UPDATE "payment_actions" pa SET "links" = l.links
  FROM (SELECT action_id, jsonb_object_agg(rel, href ORDER BY id) AS links
          FROM "links" WHERE action_id IS NOT NULL GROUP BY action_id) l
 WHERE pa.id = l.action_id;--> statement-breakpoint
DELETE FROM "links" WHERE credential_id IS NULL AND (attempt_id IS NOT NULL OR action_id IS NOT NULL);--> statement-breakpoint
-- Every link a payment's answers gave, oldest first within each answer: the authorization's
-- (action_id null), then each action's. The newest of a relation is the last row of it in
-- (action_id nulls first, action_id, n) order.
CREATE VIEW "payment_links" AS
  SELECT a.charge_id, a.id AS attempt_id, NULL::bigint AS action_id, l.n, l.value ->> 0 AS rel, l.value ->> 1 AS href
    FROM "attempts" a CROSS JOIN LATERAL jsonb_array_elements(a.links) WITH ORDINALITY AS l(value, n)
   WHERE a.links IS NOT NULL
  UNION ALL
  SELECT pa.charge_id, pa.attempt_id, pa.id, l.n, l.key, l.value
    FROM "payment_actions" pa CROSS JOIN LATERAL jsonb_each_text(pa.links) WITH ORDINALITY AS l(key, value, n)
   WHERE pa.links IS NOT NULL;
