# The worker task: started by nonced's `ecs` launcher with RunTask. The environment here
# lets a task find the queues and topic; the launcher adds NONCE_JOB_ID (and the timings)
# as container overrides. Each task names itself from its metadata endpoint.
resource "aws_ecs_task_definition" "worker" {
  family                   = local.worker_family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.worker_cpu
  memory                   = var.worker_memory
  execution_role_arn       = aws_iam_role.worker_execution.arn
  task_role_arn            = aws_iam_role.worker_task.arn
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  container_definitions = jsonencode([{
    name                   = "nonce-worker" # nonced's ecs container default
    image                  = var.worker_image
    essential              = true
    memory                 = var.worker_memory
    readonlyRootFilesystem = true
    user                   = "10001:10001"
    stopTimeout            = 10 # StopTask's SIGTERM: the worker says Bye and deletes its inbox
    environment = [
      { name = "NONCE_TRANSPORT", value = "aws" },
      { name = "NONCE_AWS_PREFIX", value = var.prefix },
      { name = "NONCE_EVENTS_QUEUE_URL", value = aws_sqs_queue.events.url },
      { name = "NONCE_CONTROL_TOPIC_ARN", value = aws_sns_topic.control.arn },
      { name = "AWS_REGION", value = var.region },
      { name = "NONCE_LOG", value = "info" },
    ]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.worker.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "worker"
      }
    }
  }])
}
