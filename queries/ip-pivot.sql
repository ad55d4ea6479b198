-- Every event that mentions an IP address (details._ipaddresses, collected at ingest), newest first.
-- param ip: the IPv4 or IPv6 address to look for, e.g. 7.1.14.12
-- param from = 0000-00-00T00: first hour partition to read, YYYY-MM-DDTHH (UTC)
-- param to = 9999-99-99T99: last hour partition to read, YYYY-MM-DDTHH (UTC)
SELECT utctimestamp,
       source,
       category,
       summary,
       hostname,
       details
FROM events
WHERE json_array_contains(json_extract(details, '$._ipaddresses'), '${ip}')
  AND year || '-' || month || '-' || day || 'T' || hour BETWEEN '${from}' AND '${to}'
ORDER BY utctimestamp DESC
