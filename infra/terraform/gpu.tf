# GPU workers (`noncectl search --capacity gpu`), behind var.gpu_workers.enabled. Fargate has no
# GPUs, so these are EC2 tasks: an Auto Scaling group of GPU instances on ECS's GPU-optimized
# AMI (NVIDIA driver and container toolkit, ECS agent with GPU support), scaled from zero by an
# ECS capacity provider as GPU tasks are asked for, one worker task an instance. The task runs
# the GPU worker image (infra/docker/nonce-worker-gpu.Dockerfile), which hashes on the GPU
# through Vulkan.

locals {
  gpu               = var.gpu_workers.enabled
  worker_gpu_family = "${var.prefix}-worker-gpu"
  # What an instance gives its one task: all but what the ECS agent and the OS keep.
  gpu_task_memory = var.gpu_workers.instance_memory_mib - 1024
}

data "aws_ssm_parameter" "ecs_gpu_ami" {
  count = local.gpu ? 1 : 0
  name  = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
}

# --- the instances ----------------------------------------------------------------------

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

# The ECS agent's role on each GPU instance (register, poll for tasks, pull images, write logs).
resource "aws_iam_role" "gpu_instance" {
  count              = local.gpu ? 1 : 0
  name               = "${var.prefix}-gpu-instance"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

# What the ECS agent does, on this cluster only (AWS's AmazonEC2ContainerServiceforEC2Role
# grants it on every cluster, and CreateCluster besides). Images and logs go through the
# task's execution role, so the instance needs no ECR or CloudWatch Logs rights.
data "aws_iam_policy_document" "gpu_instance" {
  statement {
    sid = "AgentOnThisCluster"
    actions = [
      "ecs:RegisterContainerInstance",
      "ecs:DeregisterContainerInstance",
      "ecs:Poll",
      "ecs:StartTelemetrySession",
      "ecs:UpdateContainerInstancesState",
      "ecs:SubmitAttachmentStateChanges",
      "ecs:SubmitContainerStateChange",
      "ecs:SubmitTaskStateChange",
    ]
    resources = [
      aws_ecs_cluster.main.arn,
      "${local.arn}:ecs:${var.region}:${local.account}:container-instance/${aws_ecs_cluster.main.name}/*",
    ]
  }
  statement {
    sid       = "AgentFindsItsEndpoint"
    actions   = ["ecs:DiscoverPollEndpoint"]
    resources = ["*"] # DiscoverPollEndpoint has no resource-level permissions
  }
}

resource "aws_iam_role_policy" "gpu_instance" {
  count  = local.gpu ? 1 : 0
  name   = "ecs-agent"
  role   = aws_iam_role.gpu_instance[0].id
  policy = data.aws_iam_policy_document.gpu_instance.json
}

resource "aws_iam_instance_profile" "gpu_instance" {
  count = local.gpu ? 1 : 0
  name  = "${var.prefix}-gpu-instance"
  role  = aws_iam_role.gpu_instance[0].name
}

resource "aws_launch_template" "gpu" {
  count         = local.gpu ? 1 : 0
  name          = "${var.prefix}-gpu"
  image_id      = data.aws_ssm_parameter.ecs_gpu_ami[0].value
  instance_type = var.gpu_workers.instance_type
  iam_instance_profile {
    arn = aws_iam_instance_profile.gpu_instance[0].arn
  }
  network_interfaces {
    # The task shares the instance's interface (bridge network): with a public IP it reaches
    # SQS without a NAT, as Fargate tasks do with assign_public_ip.
    associate_public_ip_address = var.assign_public_ip
    security_groups             = [aws_security_group.tasks.id]
  }
  # IMDSv2 only, one hop: the instance's own role stays out of the containers' reach.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size = 60 # the GPU AMI's own size, with room for the image
      encrypted   = true
    }
  }
  user_data = base64encode(<<-EOT
    #!/bin/bash
    cat >> /etc/ecs/ecs.config <<'CFG'
    ECS_CLUSTER=${aws_ecs_cluster.main.name}
    ECS_ENABLE_GPU_SUPPORT=true
    ECS_ENABLE_TASK_IAM_ROLE=true
    CFG
  EOT
  )
  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.prefix}-gpu-worker" }
  }
}

resource "aws_autoscaling_group" "gpu" {
  count               = local.gpu ? 1 : 0
  name                = "${var.prefix}-gpu"
  min_size            = 0
  max_size            = var.gpu_workers.max_instances
  vpc_zone_identifier = var.subnet_ids
  # Managed termination protection: ECS scales in only instances that run no task.
  protect_from_scale_in = true
  launch_template {
    id      = aws_launch_template.gpu[0].id
    version = "$Latest"
  }
  tag {
    key                 = "AmazonECSManaged"
    value               = "true"
    propagate_at_launch = true
  }
  # The capacity provider owns the desired count.
  lifecycle {
    ignore_changes = [desired_capacity]
  }
}

resource "aws_ecs_capacity_provider" "gpu" {
  count = local.gpu ? 1 : 0
  name  = "${var.prefix}-gpu"
  auto_scaling_group_provider {
    auto_scaling_group_arn         = aws_autoscaling_group.gpu[0].arn
    managed_termination_protection = "ENABLED"
    managed_scaling {
      status                    = "ENABLED"
      target_capacity           = 100 # no idle instance kept: each costs ~$1/h
      minimum_scaling_step_size = 1
      maximum_scaling_step_size = var.gpu_workers.max_instances
    }
  }
}

# --- the GPU worker task ----------------------------------------------------------------

resource "aws_ecs_task_definition" "worker_gpu" {
  count                    = local.gpu ? 1 : 0
  family                   = local.worker_gpu_family
  requires_compatibilities = ["EC2"]
  network_mode             = "bridge" # the instance's interface: RunTask takes no awsvpc settings
  execution_role_arn       = aws_iam_role.worker_execution.arn
  task_role_arn            = aws_iam_role.worker_task.arn
  container_definitions = jsonencode([{
    name                   = "nonce-worker" # the same container name as the Fargate worker's
    image                  = var.gpu_workers.image
    essential              = true
    memory                 = local.gpu_task_memory
    readonlyRootFilesystem = true
    user                   = "10001:10001"
    stopTimeout            = 10
    resourceRequirements   = [{ type = "GPU", value = "1" }]
    environment = [
      { name = "NONCE_TRANSPORT", value = "aws" },
      { name = "NONCE_AWS_PREFIX", value = var.prefix },
      { name = "NONCE_EVENTS_QUEUE_URL", value = aws_sqs_queue.events.url },
      { name = "NONCE_CONTROL_TOPIC_ARN", value = aws_sns_topic.control.arn },
      { name = "AWS_REGION", value = var.region },
      { name = "NONCE_LOG", value = "info" },
      # The GPU, named: a GPU instance whose adapter does not open fails loudly, not on the CPU.
      { name = "NONCE_KERNEL", value = "gpu" },
    ]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.worker.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "worker-gpu"
      }
    }
  }])
}
