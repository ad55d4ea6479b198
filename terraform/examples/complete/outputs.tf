output "firehose_stream_name" {
  description = "Send events here (aws firehose put-record-batch)."
  value       = module.lakewatch.firehose_stream_name
}

output "input_bucket" {
  description = "Drop files here to ingest them."
  value       = module.lakewatch.input_bucket
}

output "athena_workgroup" {
  description = "Query with Athena in this workgroup."
  value       = module.lakewatch.athena_workgroup
}

output "glue_database" {
  description = "Database of the events and alerts tables."
  value       = module.lakewatch.glue_database
}

output "lake_bucket" {
  description = "Bucket of the lake: events/, alerts/, errors/ and state/."
  value       = module.lakewatch.lake_bucket
}
