-- erase.sql: deletes every warehouse row of the customers erased so far. Scheduled daily
-- (infra/bigquery.tf) and safe to run by hand at any time (bq query < erase.sql after filling in
-- the table names). An erasure row (status 'erased') lists all the customer's profile ids and
-- carries no personal data itself: it stays, so a later run still finds late rows.
-- Rows streamed in the last minutes may not be deletable yet (BigQuery refuses DML on them);
-- the next run deletes them, and the views leave erased customers out meanwhile.
DELETE FROM ${touchpoints}
WHERE profile_id IN (
  SELECT erased_id
  FROM ${profile_updates} AS u
  CROSS JOIN UNNEST(u.profile_ids) AS erased_id
  WHERE u.status = 'erased'
);
DELETE FROM ${profile_updates}
WHERE status != 'erased'
  AND profile_id IN (
    SELECT erased_id
    FROM ${profile_updates} AS u
    CROSS JOIN UNNEST(u.profile_ids) AS erased_id
    WHERE u.status = 'erased'
  );
