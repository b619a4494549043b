locals {
  account = data.aws_caller_identity.current.account_id
  arn     = "arn:${data.aws_partition.current.partition}"
  # What the binaries derive from the prefix (aws-transport/src/names.rs).
  events_queue  = "${var.prefix}-events"
  dead_letters  = "${var.prefix}-events-dlq"
  control_topic = "${var.prefix}-control"
  inbox_arns    = "${local.arn}:sqs:${var.region}:${local.account}:${var.prefix}-inbox-*"
  worker_family = "${var.prefix}-worker"
  daemon_family = "${var.prefix}-nonced"
}

# One customer-managed key for the topic, the logs, the images and the daemon's state.
resource "aws_kms_key" "main" {
  description             = "${var.prefix}: SNS control topic, CloudWatch logs, ECR, EFS"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "main" {
  name          = "alias/${var.prefix}"
  target_key_id = aws_kms_key.main.key_id
}

data "aws_iam_policy_document" "kms" {
  # In a key policy, "*" as the resource means this key and nothing else.
  #checkov:skip=CKV_AWS_111:A key policy's "*" resource is the key itself, not all resources
  #checkov:skip=CKV_AWS_356:A key policy's "*" resource is the key itself, not all resources
  #checkov:skip=CKV_AWS_109:The account root administers its own key (the AWS default key policy)
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"] # a key policy's resource is the key itself
    principals {
      type        = "AWS"
      identifiers = ["${local.arn}:iam::${local.account}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["${local.arn}:logs:${var.region}:${local.account}:log-group:/ecs/${var.prefix}/*"]
    }
  }
  statement {
    sid       = "SnsDeliversToInboxes"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com"]
    }
  }
}
