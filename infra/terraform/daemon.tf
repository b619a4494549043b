# The coordinator: nonced as a one-task ECS service. Its journal lives on EFS, so a task
# that dies is replaced by one that resumes every running job and adopts its workers.

resource "aws_efs_file_system" "state" {
  creation_token = "${var.prefix}-state"
  encrypted      = true
  kms_key_id     = aws_kms_key.main.arn
}

resource "aws_efs_backup_policy" "state" {
  file_system_id = aws_efs_file_system.state.id
  backup_policy {
    status = "ENABLED"
  }
}

resource "aws_efs_mount_target" "state" {
  for_each        = toset(var.subnet_ids)
  file_system_id  = aws_efs_file_system.state.id
  subnet_id       = each.value
  security_groups = [aws_security_group.state.id]
}

resource "aws_efs_access_point" "state" {
  file_system_id = aws_efs_file_system.state.id
  posix_user {
    uid = 10001
    gid = 10001
  }
  root_directory {
    path = "/nonced"
    creation_info {
      owner_uid   = 10001
      owner_gid   = 10001
      permissions = "0700"
    }
  }
}

resource "aws_ecs_task_definition" "daemon" {
  family                   = local.daemon_family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.daemon_cpu
  memory                   = var.daemon_memory
  execution_role_arn       = aws_iam_role.daemon_execution.arn
  task_role_arn            = aws_iam_role.daemon_task.arn
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  volume {
    name = "state"
    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.state.id
      transit_encryption = "ENABLED"
      authorization_config {
        access_point_id = aws_efs_access_point.state.id
        iam             = "ENABLED"
      }
    }
  }
  volume {
    name = "run" # task-local scratch for the control socket (the root filesystem is read-only)
  }
  container_definitions = jsonencode([{
    name                   = "nonced"
    image                  = var.daemon_image
    essential              = true
    memory                 = var.daemon_memory
    readonlyRootFilesystem = true
    user                   = "10001:10001"
    stopTimeout            = 30
    mountPoints = [
      { sourceVolume = "state", containerPath = "/var/lib/nonced", readOnly = false },
      { sourceVolume = "run", containerPath = "/run/nonced", readOnly = false },
    ]
    environment = [
      { name = "NONCE_TRANSPORT", value = "aws" },
      { name = "NONCE_LAUNCHER", value = "ecs" },
      { name = "NONCE_AWS_PREFIX", value = var.prefix },
      { name = "NONCE_ECS_CLUSTER", value = aws_ecs_cluster.main.name },
      { name = "NONCE_ECS_TASK_DEFINITION", value = aws_ecs_task_definition.worker.family },
      { name = "NONCE_ECS_SUBNETS", value = join(",", var.subnet_ids) },
      { name = "NONCE_ECS_SECURITY_GROUPS", value = aws_security_group.tasks.id },
      { name = "NONCE_ECS_PUBLIC_IP", value = tostring(var.assign_public_ip) },
      { name = "NONCE_ECS_CAPACITY", value = var.worker_capacity },
      { name = "NONCE_ECS_TASK_QUOTA", value = var.launch_quotas.tasks },
      { name = "NONCE_ECS_CALL_QUOTA", value = var.launch_quotas.run_task_calls },
      # GPU capacity (gpu.tf): empty when var.gpu_workers is off.
      { name = "NONCE_ECS_GPU_TASK_DEFINITION", value = local.gpu ? local.worker_gpu_family : "" },
      { name = "NONCE_ECS_GPU_CAPACITY_PROVIDER", value = local.gpu ? aws_ecs_capacity_provider.gpu[0].name : "" },
      { name = "NONCE_SOCKET", value = "/run/nonced/nonced.sock" },
      { name = "NONCE_STATE_DIR", value = "/var/lib/nonced" },
      { name = "NONCE_MAX_WORKERS_PER_JOB", value = tostring(var.max_workers_per_job) },
      { name = "NONCE_MAX_CONCURRENT_JOBS", value = tostring(var.max_concurrent_jobs) },
      { name = "NONCE_MAX_FLEET", value = tostring(var.max_fleet) },
      { name = "NONCE_USER_MAX_WORKERS_PER_JOB", value = tostring(var.user_quotas.max_workers_per_job) },
      { name = "NONCE_USER_MAX_CONCURRENT_JOBS", value = tostring(var.user_quotas.max_concurrent_jobs) },
      { name = "NONCE_USER_MAX_VCPU_SECONDS_PER_DAY", value = tostring(var.user_quotas.max_vcpu_seconds_per_day) },
      { name = "AWS_REGION", value = var.region },
      { name = "NONCE_LOG", value = "info" },
      # The listener behind the API load balancer, which ends TLS and appends X-Forwarded-For.
      { name = "NONCE_HTTP_LISTEN", value = local.api_enabled ? "0.0.0.0:${var.api_port}" : "" },
      { name = "NONCE_HTTP_PLAIN", value = tostring(local.api_enabled) },
      { name = "NONCE_HTTP_FORWARDED_FOR", value = tostring(local.api_enabled) },
      # Metrics as CloudWatch Embedded Metric Format log lines (monitoring.tf): no API calls.
      { name = "NONCE_METRICS_EMF", value = "true" },
    ]
    # Users and their token hashes, read by ECS from Secrets Manager at start (NONCE_USERS).
    secrets = [
      { name = "NONCE_USERS", valueFrom = aws_secretsmanager_secret.users.arn },
    ]
    portMappings = local.api_enabled ? [{ containerPort = var.api_port, protocol = "tcp" }] : []
    healthCheck = {
      command     = ["CMD", "/nonced", "--health-check"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 10
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.daemon.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "nonced"
      }
    }
  }])
}

resource "aws_ecs_service" "daemon" {
  name                   = "nonced"
  cluster                = aws_ecs_cluster.main.id
  task_definition        = aws_ecs_task_definition.daemon.arn
  desired_count          = var.daemon_desired_count
  launch_type            = "FARGATE"
  platform_version       = "LATEST"
  enable_execute_command = true # `aws ecs execute-command ... noncectl` reaches the socket
  # Exactly one coordinator: two would each drop the other's events as ghosts.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = concat([aws_security_group.tasks.id], aws_security_group.daemon_api[*].id)
    assign_public_ip = var.assign_public_ip
  }
  dynamic "load_balancer" {
    for_each = aws_lb_target_group.daemon
    content {
      target_group_arn = load_balancer.value.arn
      container_name   = "nonced"
      container_port   = var.api_port
    }
  }
  health_check_grace_period_seconds = local.api_enabled ? 60 : null
  depends_on                        = [aws_efs_mount_target.state, aws_lb_listener.https]
}
