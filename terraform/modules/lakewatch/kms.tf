# One customer-managed key encrypts everything at rest: buckets, Firehose, logs, SNS, SQS,
# Lambda environment variables and Athena results.

data "aws_iam_policy_document" "kms" {
  # checkov:skip=CKV_AWS_111:In a key policy, Resource "*" means this key only; writes are limited to this account and its services.
  # checkov:skip=CKV_AWS_356:In a key policy, Resource "*" means this key only.
  # checkov:skip=CKV_AWS_109:The account root must administer its own key, or the key becomes unmanageable.
  statement {
    sid    = "AccountAdministersTheKey"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
    actions = [
      "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
      "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource",
      "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
      "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
    ]
    resources = ["*"]
  }

  statement {
    sid    = "CloudWatchLogsEncryptsTheLogGroups"
    effect = "Allow"
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/*/${var.name}*"]
    }
  }

  statement {
    sid    = "ServicesUseTheKeyForThisDeployment"
    effect = "Allow"
    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com", "s3.amazonaws.com", "events.amazonaws.com", "cloudwatch.amazonaws.com"]
    }
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "lakewatch ${var.name}: encrypts the lake, its logs and its messages"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_key_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = local.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}
