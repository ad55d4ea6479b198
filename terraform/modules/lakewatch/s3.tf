# Three buckets, each with the secure baseline of modules/bucket:
#   lake           events/, alerts/, errors/ (Firehose and s3-ingest), state/ (cursors, watermarks)
#   input          objects dropped by producers; each new object is ingested by s3-ingest
#   athena         query results of the Athena workgroup
# Bucket names are "<name>-<role>-<account>-<region>": with the longest name the `name` variable
# accepts (26), a 12-digit account and the longest region code (15, us-isof-south-1) the longest
# role may have 6 characters to stay within S3's 63.

locals {
  # Known at plan time (unlike the module's id), for settings that must show in a plan.
  lake_bucket_name = "${var.name}-lake-${local.account_id}-${local.region}"
}

module "lake_bucket" {
  source = "./modules/bucket"

  name                              = local.lake_bucket_name
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

  name                              = "${var.name}-athena-${local.account_id}-${local.region}"
  kms_key_arn                       = aws_kms_key.this.arn
  expiration_days                   = var.athena_results_retention_days
  noncurrent_version_retention_days = var.noncurrent_version_retention_days
  access_logging_bucket             = var.access_logging_bucket
  force_destroy                     = var.force_destroy
  tags                              = local.tags
}
