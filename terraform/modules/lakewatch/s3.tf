# Three buckets, each with the secure baseline of modules/bucket:
#   lake           events/, alerts/, errors/ (Firehose and s3-ingest), state/ (cursors, watermarks)
#   input          objects dropped by producers; each new object is ingested by s3-ingest
#   athena-results query results of the Athena workgroup

module "lake_bucket" {
  source = "./modules/bucket"

  name                              = "${var.name}-lake-${local.account_id}-${local.region}"
  kms_key_arn                       = aws_kms_key.this.arn
  expiration_days                   = var.lake_retention_days
  noncurrent_version_retention_days = var.noncurrent_version_retention_days
  access_logging_bucket             = var.access_logging_bucket
  force_destroy                     = var.force_destroy
  tags                              = local.tags
}

module "input_bucket" {
  source = "./modules/bucket"

  name                              = "${var.name}-input-${local.account_id}-${local.region}"
  kms_key_arn                       = aws_kms_key.this.arn
  expiration_days                   = var.input_retention_days
  noncurrent_version_retention_days = var.noncurrent_version_retention_days
  access_logging_bucket             = var.access_logging_bucket
  force_destroy                     = var.force_destroy
  tags                              = local.tags
}

module "athena_results_bucket" {
  source = "./modules/bucket"

  name                              = "${var.name}-athena-results-${local.account_id}-${local.region}"
  kms_key_arn                       = aws_kms_key.this.arn
  expiration_days                   = var.athena_results_retention_days
  noncurrent_version_retention_days = var.noncurrent_version_retention_days
  access_logging_bucket             = var.access_logging_bucket
  force_destroy                     = var.force_destroy
  tags                              = local.tags
}
