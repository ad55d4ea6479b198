output "lake_bucket" {
  description = "Bucket holding events/, alerts/, errors/, state/ and the detection extract, extract/."
  value       = module.lake_bucket.id
}

output "input_bucket" {
  description = "Bucket whose new objects are ingested by s3-ingest."
  value       = module.input_bucket.id
}

output "athena_results_bucket" {
  description = "Bucket of the Athena workgroup's query results."
  value       = module.athena_results_bucket.id
}

output "firehose_stream_name" {
  description = "Firehose delivery stream producers send events to."
  value       = aws_kinesis_firehose_delivery_stream.events.name
}

output "firehose_stream_arn" {
  description = "ARN of the Firehose delivery stream (grant producers firehose:PutRecordBatch on it)."
  value       = aws_kinesis_firehose_delivery_stream.events.arn
}

output "glue_database" {
  description = "Glue database with the events and alerts tables."
  value       = aws_glue_catalog_database.this.name
}

output "extract_table" {
  description = "Glue table of the detection extract (events under the hour of their own time), which the detector's rules query."
  value       = aws_glue_catalog_table.this["events_extract"].name
}

output "athena_workgroup" {
  description = "Athena workgroup to query the lake with."
  value       = aws_athena_workgroup.this.name
}

output "alerts_topic_arn" {
  description = "SNS topic the detector publishes alerts to."
  value       = aws_sns_topic.alerts.arn
}

output "function_names" {
  description = "Lambda function names by job."
  value       = { for job, function in aws_lambda_function.this : job => function.function_name }
}

output "dead_letter_queue_url" {
  description = "Queue receiving events the asynchronous functions failed on."
  value       = aws_sqs_queue.dead_letters.url
}

output "kms_key_arn" {
  description = "Customer-managed key encrypting the deployment."
  value       = aws_kms_key.this.arn
}
