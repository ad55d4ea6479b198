# Alarms for the ways events can go missing: a failing function, Firehose failing to deliver,
# records the transform could not process, and detection rules that fail.

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each = local.functions

  alarm_name          = "${var.name}-${each.key}-errors"
  alarm_description   = "lakewatch ${each.key} returned errors"
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.this[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "firehose_delivery" {
  alarm_name          = "${var.name}-firehose-delivery-to-s3"
  alarm_description   = "Firehose failed to deliver events to the lake bucket"
  namespace           = "AWS/Firehose"
  metric_name         = "DeliveryToS3.Success"
  dimensions          = { DeliveryStreamName = aws_kinesis_firehose_delivery_stream.events.name }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  tags                = local.tags
}

# The transform logs one JSON summary per invocation; its failed-record count becomes a metric.
resource "aws_cloudwatch_log_metric_filter" "transform_failed_records" {
  name           = "${var.name}-transform-processing-failed"
  log_group_name = aws_cloudwatch_log_group.function["firehose-transform"].name
  pattern        = "{ $.records_failed > 0 }"

  metric_transformation {
    name      = "TransformProcessingFailedRecords"
    namespace = "lakewatch/${var.name}"
    value     = "$.records_failed"
  }
}

resource "aws_cloudwatch_metric_alarm" "transform_failed_records" {
  alarm_name          = "${var.name}-transform-processing-failed"
  alarm_description   = "The Firehose transform answered ProcessingFailed for some records (see errors/firehose/ in the lake bucket)"
  namespace           = "lakewatch/${var.name}"
  metric_name         = aws_cloudwatch_log_metric_filter.transform_failed_records.metric_transformation[0].name
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_log_metric_filter" "detector_rule_failures" {
  count = var.enable_detector ? 1 : 0

  name           = "${var.name}-detector-rule-failures"
  log_group_name = aws_cloudwatch_log_group.function["detector"].name
  pattern        = "{ $.rule_failed IS TRUE }"

  metric_transformation {
    name      = "DetectorRuleFailures"
    namespace = "lakewatch/${var.name}"
    value     = "1"
  }
}

resource "aws_cloudwatch_metric_alarm" "detector_rule_failures" {
  count = var.enable_detector ? 1 : 0

  alarm_name          = "${var.name}-detector-rule-failures"
  alarm_description   = "A detection rule failed to run"
  namespace           = "lakewatch/${var.name}"
  metric_name         = aws_cloudwatch_log_metric_filter.detector_rule_failures[0].metric_transformation[0].name
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  tags                = local.tags
}
