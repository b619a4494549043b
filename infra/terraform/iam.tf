# Four roles: each task family has its own execution role (pull the image, write logs) and
# its own task role (what the program may do). Every policy names the prefix's ARNs.

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

# --- execution roles --------------------------------------------------------------------

resource "aws_iam_role" "worker_execution" {
  name               = "${var.prefix}-worker-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role" "daemon_execution" {
  name               = "${var.prefix}-nonced-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "worker_execution" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # GetAuthorizationToken has no resource-level permissions
  }
  statement {
    sid       = "PullWorkerImage"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = [aws_ecr_repository.worker.arn]
  }
  statement {
    sid       = "DecryptWorkerImage"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
  }
  statement {
    sid       = "WorkerLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.worker.arn}:*"]
  }
}

data "aws_iam_policy_document" "daemon_execution" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # GetAuthorizationToken has no resource-level permissions
  }
  statement {
    sid       = "PullDaemonImage"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = [aws_ecr_repository.daemon.arn]
  }
  statement {
    sid       = "DecryptDaemonImage"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
  }
  statement {
    sid       = "DaemonLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.daemon.arn}:*"]
  }
  statement {
    sid       = "ReadUsersSecret" # ECS injects it as NONCE_USERS (decrypted with the main key above)
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.users.arn]
  }
}

resource "aws_iam_role_policy" "worker_execution" {
  name   = "pull-and-log"
  role   = aws_iam_role.worker_execution.id
  policy = data.aws_iam_policy_document.worker_execution.json
}

resource "aws_iam_role_policy" "daemon_execution" {
  name   = "pull-and-log"
  role   = aws_iam_role.daemon_execution.id
  policy = data.aws_iam_policy_document.daemon_execution.json
}

# --- the worker: its own inbox, the events queue, the topic subscription ------------------

resource "aws_iam_role" "worker_task" {
  name               = "${var.prefix}-worker"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "worker_task" {
  statement {
    sid = "OwnInbox"
    actions = [
      "sqs:CreateQueue", # with its attributes (policy, retention) set in the same call
      "sqs:ReceiveMessage",
      "sqs:DeleteQueue",
      "sqs:TagQueue", # tags at creation, and the alive tag the daemon's sweep reads
    ]
    resources = [local.inbox_arns]
  }
  statement {
    sid       = "SendEvents"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events.arn]
  }
  statement {
    sid       = "SubscribeInbox"
    actions   = ["sns:Subscribe", "sns:Unsubscribe"]
    resources = [aws_sns_topic.control.arn]
    condition {
      test     = "StringEquals"
      variable = "sns:Protocol"
      values   = ["sqs"]
    }
  }
}

resource "aws_iam_role_policy" "worker_task" {
  name   = "inbox-and-events"
  role   = aws_iam_role.worker_task.id
  policy = data.aws_iam_policy_document.worker_task.json
}

# --- the daemon: events in, commands out, Fargate tasks, its state -----------------------

resource "aws_iam_role" "daemon_task" {
  name               = "${var.prefix}-nonced"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "daemon_task" {
  statement {
    sid = "ConsumeEvents"
    actions = [
      "sqs:GetQueueUrl",
      "sqs:GetQueueAttributes",
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
    ]
    resources = [aws_sqs_queue.events.arn, aws_sqs_queue.dead_letters.arn]
  }
  statement {
    sid       = "DeadLetterPoison"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]
  }
  statement {
    sid       = "CommandInboxesAndSweepDeadOnes"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:DeleteQueue", "sqs:ListQueueTags"]
    resources = [local.inbox_arns]
  }
  statement {
    sid       = "FindDeadInboxes"
    actions   = ["sqs:ListQueues"] # by name prefix, in this account and region
    resources = ["${local.arn}:sqs:${var.region}:${local.account}:*"]
  }
  statement {
    sid       = "Broadcast"
    actions   = ["sns:Publish", "sns:ListSubscriptionsByTopic", "sns:Unsubscribe"]
    resources = [aws_sns_topic.control.arn]
  }
  statement {
    sid       = "FindTopic"
    actions   = ["sns:ListTopics"]
    resources = ["*"] # ListTopics has no resource-level permissions
  }
  statement {
    sid       = "EncryptBroadcasts"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
  }
  statement {
    sid     = "RunWorkers"
    actions = ["ecs:RunTask"]
    resources = concat(
      ["${local.arn}:ecs:${var.region}:${local.account}:task-definition/${local.worker_family}:*"],
      local.gpu ? ["${local.arn}:ecs:${var.region}:${local.account}:task-definition/${local.worker_gpu_family}:*"] : [],
    )
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.main.arn]
    }
  }
  statement {
    sid       = "TagWorkersAtLaunch"
    actions   = ["ecs:TagResource"]
    resources = ["${local.arn}:ecs:${var.region}:${local.account}:task/${aws_ecs_cluster.main.name}/*"]
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }
  statement {
    sid       = "WatchAndStopWorkers"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = ["${local.arn}:ecs:${var.region}:${local.account}:task/${aws_ecs_cluster.main.name}/*"]
  }
  statement {
    sid       = "PassWorkerRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.worker_task.arn, aws_iam_role.worker_execution.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
  statement {
    sid       = "JournalOnEfs"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.state.arn]
    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [aws_efs_access_point.state.arn]
    }
  }
  statement {
    sid = "EcsExecForNoncectl"
    actions = [
      "ssmmessages:CreateControlChannel",
      "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel",
      "ssmmessages:OpenDataChannel",
    ]
    resources = ["*"] # ssmmessages has no resource-level permissions
  }
}

resource "aws_iam_role_policy" "daemon_task" {
  name   = "coordinate"
  role   = aws_iam_role.daemon_task.id
  policy = data.aws_iam_policy_document.daemon_task.json
}
