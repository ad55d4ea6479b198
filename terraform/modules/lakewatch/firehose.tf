# Producers send JSON (or raw lines) here. Each batch goes through the transform Lambda, which
# returns one result per record and the record's hour as partition keys; Firehose writes gzip
# NDJSON under events/year=…/month=…/day=…/hour=… of the lake bucket.

resource "aws_cloudwatch_log_group" "firehose" {
  name              = "/aws/kinesisfirehose/${var.name}-events"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_cloudwatch_log_stream" "firehose_delivery" {
  name           = "S3Delivery"
  log_group_name = aws_cloudwatch_log_group.firehose.name
}

resource "aws_kinesis_firehose_delivery_stream" "events" {
  name        = local.firehose_stream_name
  destination = "extended_s3"

  server_side_encryption {
    enabled  = true
    key_type = "CUSTOMER_MANAGED_CMK"
    key_arn  = aws_kms_key.this.arn
  }

  extended_s3_configuration {
    role_arn            = aws_iam_role.firehose.arn
    bucket_arn          = local.lake_arn
    prefix              = "${local.events_prefix}year=!{partitionKeyFromLambda:year}/month=!{partitionKeyFromLambda:month}/day=!{partitionKeyFromLambda:day}/hour=!{partitionKeyFromLambda:hour}/"
    error_output_prefix = "${local.errors_prefix}firehose/!{firehose:error-output-type}/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/"
    buffering_size      = var.firehose_buffering_size_mb
    buffering_interval  = var.firehose_buffering_interval_seconds
    compression_format  = "GZIP"
    file_extension      = ".json.gz"
    kms_key_arn         = aws_kms_key.this.arn

    dynamic_partitioning_configuration {
      enabled = true
    }

    processing_configuration {
      enabled = true
      processors {
        type = "Lambda"
        parameters {
          parameter_name  = "LambdaArn"
          parameter_value = aws_lambda_alias.live["firehose-transform"].arn
        }
        # Only values that differ from Firehose's defaults (1 MB, 60 s): the provider does not
        # store a parameter equal to its default, so writing one would show a change on every plan.
        dynamic "parameters" {
          for_each = {
            for name, value in {
              BufferSizeInMBs         = var.transform_buffering_size_mb == 1 ? null : tostring(var.transform_buffering_size_mb)
              BufferIntervalInSeconds = var.transform_buffering_interval_seconds == 60 ? null : tostring(var.transform_buffering_interval_seconds)
            } : name => value if value != null
          }
          content {
            parameter_name  = parameters.key
            parameter_value = parameters.value
          }
        }
      }
    }

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.firehose.name
      log_stream_name = aws_cloudwatch_log_stream.firehose_delivery.name
    }
  }

  tags = local.tags
}
