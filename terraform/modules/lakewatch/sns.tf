resource "aws_sns_topic" "alerts" {
  name              = "${var.name}-alerts"
  kms_master_key_id = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "alerts" {
  # Keyed by what identifies a subscription, not its position: removing one entry must not
  # re-create the ones after it (e-mail recipients would have to confirm again).
  for_each = { for subscription in var.alert_subscriptions : "${subscription.protocol}:${subscription.endpoint}" => subscription }

  topic_arn             = aws_sns_topic.alerts.arn
  protocol              = each.value.protocol
  endpoint              = each.value.endpoint
  subscription_role_arn = each.value.subscription_role_arn
}
