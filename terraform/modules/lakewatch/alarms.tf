# Alarms for the ways events can go missing: a failing function, Firehose failing to deliver,
# records the transform could not process, and detection rules that fail. One alarm resource,
# one entry per alarm.

locals {
  metrics_namespace = "lakewatch/${var.name}"

  alarms = merge(
    {
      for job, function in aws_lambda_function.this : "${job}-errors" => {
        description = "lakewatch ${job} returned errors"
        namespace   = "AWS/Lambda"
        metric      = "Errors"
        dimensions  = { FunctionName = function.function_name }
        statistic   = "Sum"
        comparison  = "GreaterThanThreshold"
        threshold   = 0
      }
    },
    {
      firehose-delivery-to-s3 = {
        description = "Firehose failed to deliver events to the lake bucket"
        namespace   = "AWS/Firehose"
        metric      = "DeliveryToS3.Success"
        dimensions  = { DeliveryStreamName = aws_kinesis_firehose_delivery_stream.events.name }
        statistic   = "Minimum"
        comparison  = "LessThanThreshold"
        threshold   = 1
      }
      transform-processing-failed = {
        description = "The Firehose transform answered ProcessingFailed for some records (see errors/firehose/ in the lake bucket)"
        namespace   = local.metrics_namespace
        metric      = aws_cloudwatch_log_metric_filter.transform_failed_records.metric_transformation[0].name
        dimensions  = {}
        statistic   = "Sum"
        comparison  = "GreaterThanThreshold"
        threshold   = 0
      }
    },
    var.enable_detector ? {
      detector-rule-failures = {
        description = "A detection rule failed to run"
        namespace   = local.metrics_namespace
        metric      = aws_cloudwatch_log_metric_filter.detector_rule_failures[0].metric_transformation[0].name
        dimensions  = {}
        statistic   = "Sum"
        comparison  = "GreaterThanThreshold"
        threshold   = 0
      }
      detector-delivery-failures = {
        description = "The detector gave up delivering an alert to a destination (see the detector's \"deliveries given up\" log lines and its outbox in the state prefix)"
        namespace   = local.metrics_namespace
        metric      = aws_cloudwatch_log_metric_filter.detector_delivery_failures[0].metric_transformation[0].name
        dimensions  = {}
        statistic   = "Sum"
        comparison  = "GreaterThanThreshold"
        threshold   = 0
      }
    } : {},
  )
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = 300
  evaluation_periods  = 1
  threshold           = each.value.threshold
  comparison_operator = each.value.comparison
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
    namespace = local.metrics_namespace
    value     = "$.records_failed"
  }
}

# The detector logs one JSON line per rule; a failed rule carries rule_failed = true.
resource "aws_cloudwatch_log_metric_filter" "detector_rule_failures" {
  count = var.enable_detector ? 1 : 0

  name           = "${var.name}-detector-rule-failures"
  log_group_name = aws_cloudwatch_log_group.function["detector"].name
  pattern        = "{ $.rule_failed IS TRUE }"

  metric_transformation {
    name      = "DetectorRuleFailures"
    namespace = local.metrics_namespace
    value     = "1"
  }
}

# After each run the detector logs one JSON line per destination; one that gave deliveries up
# carries delivery_failed = true and given_up = N.
resource "aws_cloudwatch_log_metric_filter" "detector_delivery_failures" {
  count = var.enable_detector ? 1 : 0

  name           = "${var.name}-detector-delivery-failures"
  log_group_name = aws_cloudwatch_log_group.function["detector"].name
  pattern        = "{ $.delivery_failed IS TRUE }"

  metric_transformation {
    name      = "DetectorDeliveriesGivenUp"
    namespace = local.metrics_namespace
    value     = "$.given_up"
  }
}
