# Worker -> coordinator events. Bodies that never decode are moved to the DLQ by the
# coordinator; the redrive policy catches anything that keeps failing anyway.
resource "aws_sqs_queue" "dead_letters" {
  name                      = local.dead_letters
  message_retention_seconds = 1209600 # 14 days, to look at what went wrong
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "events" {
  name                       = local.events_queue
  visibility_timeout_seconds = 30
  message_retention_seconds  = 86400 # events are worthless a day later
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letters.arn
    maxReceiveCount     = 5 # aws-transport/src/fabric.rs MAX_RECEIVES
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "dead_letters" {
  queue_url = aws_sqs_queue.dead_letters.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.events.arn]
  })
}

# Broadcasts (Stop, keep-alives). Each worker subscribes its own inbox queue with raw
# delivery and a filter on the `job` message attribute.
resource "aws_sns_topic" "control" {
  name              = local.control_topic
  kms_master_key_id = aws_kms_key.main.arn
}
