-- Storage audit: API calls per bucket, busiest first.
-- param from = 0000-00-00T00: first hour partition to read, YYYY-MM-DDTHH (UTC)
-- param to = 9999-99-99T99: last hour partition to read, YYYY-MM-DDTHH (UTC)
SELECT json_extract_scalar(details, '$.api.bucket') AS bucket,
       count(*) AS calls
FROM events
WHERE source = 's3-audit'
  AND year || '-' || month || '-' || day || 'T' || hour BETWEEN '${from}' AND '${to}'
GROUP BY 1
ORDER BY calls DESC, bucket
