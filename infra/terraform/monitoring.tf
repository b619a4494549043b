# What nonced prints as Embedded Metric Format lines (namespace nonce-cloud, dimension Prefix)
# becomes CloudWatch metrics through the awslogs driver: no PutMetricData, no extra IAM. A
# small dashboard shows them; alarms fire on stalled workers and on failing jobs.

locals {
  metric_dimensions = { Prefix = var.prefix }
}

resource "aws_cloudwatch_dashboard" "main" {
  dashboard_name = var.prefix
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title   = "Hash rate (nonces/s)", region = var.region, stat = "Average", period = 60
          metrics = [["nonce-cloud", "HashRate", "Prefix", var.prefix]]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title = "Workers", region = var.region, stat = "Average", period = 60
          metrics = [
            ["nonce-cloud", "WorkersLive", "Prefix", var.prefix],
            ["nonce-cloud", "WorkersStalled", "Prefix", var.prefix],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title = "Jobs", region = var.region, stat = "Sum", period = 300
          metrics = [
            ["nonce-cloud", "JobsRunning", "Prefix", var.prefix, { stat = "Maximum" }],
            ["nonce-cloud", "JobsFailed", "Prefix", var.prefix],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title = "Supervision", region = var.region, stat = "Sum", period = 300
          metrics = [
            ["nonce-cloud", "Stalls", "Prefix", var.prefix],
            ["nonce-cloud", "Reshards", "Prefix", var.prefix],
            ["nonce-cloud", "GhostEvents", "Prefix", var.prefix],
            ["nonce-cloud", "UndecodableEvents", "Prefix", var.prefix],
          ]
        }
      },
    ]
  })
}

resource "aws_cloudwatch_metric_alarm" "stalled_workers" {
  alarm_name          = "${var.prefix}-stalled-workers"
  alarm_description   = "Workers have been silent past their stall timeout for 5 minutes (the daemon re-shards their ranges; a lasting stall means tasks that hang)."
  namespace           = "nonce-cloud"
  metric_name         = "WorkersStalled"
  dimensions          = local.metric_dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "failing_jobs" {
  alarm_name          = "${var.prefix}-failing-jobs"
  alarm_description   = "A job ended in failure (every worker gone, launches refused)."
  namespace           = "nonce-cloud"
  metric_name         = "JobsFailed"
  dimensions          = local.metric_dimensions
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]
}
