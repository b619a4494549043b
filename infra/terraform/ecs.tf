resource "aws_ecs_cluster" "main" {
  name = var.prefix
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "main" {
  cluster_name = aws_ecs_cluster.main.name
  # FARGATE_SPOT too: a job may run its workers there (`--capacity spot|mixed|auto`, or the
  # daemon's default below) at about half the price, interrupted with two minutes' notice.
  # And the GPU instances' provider when var.gpu_workers asks for one (gpu.tf).
  capacity_providers = concat(["FARGATE", "FARGATE_SPOT"], aws_ecs_capacity_provider.gpu[*].name)
}

resource "aws_cloudwatch_log_group" "worker" {
  name              = "/ecs/${var.prefix}/worker"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_cloudwatch_log_group" "daemon" {
  name              = "/ecs/${var.prefix}/nonced"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_ecr_repository" "worker" {
  name                 = "${var.prefix}/nonce-worker"
  image_tag_mutability = "IMMUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.main.arn
  }
}

resource "aws_ecr_repository" "daemon" {
  name                 = "${var.prefix}/nonced"
  image_tag_mutability = "IMMUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.main.arn
  }
}

resource "aws_ecr_lifecycle_policy" "worker" {
  repository = aws_ecr_repository.worker.name
  policy     = local.keep_ten_images
}

resource "aws_ecr_lifecycle_policy" "daemon" {
  repository = aws_ecr_repository.daemon.name
  policy     = local.keep_ten_images
}

locals {
  keep_ten_images = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "keep the ten newest images"
      selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = 10 }
      action       = { type = "expire" }
    }]
  })
}

# Tasks only talk to AWS APIs over HTTPS; nothing connects to them.
resource "aws_security_group" "tasks" {
  name        = "${var.prefix}-tasks"
  description = "nonce-cloud tasks: HTTPS out to AWS APIs, nothing in"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to SQS, SNS, ECS, ECR, S3 and CloudWatch Logs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "nfs" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "NFS to the daemon's state file system"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.state.id
}

resource "aws_security_group" "state" {
  name        = "${var.prefix}-state"
  description = "nonce-cloud daemon state (EFS): NFS from the tasks only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "nfs_from_tasks" {
  security_group_id            = aws_security_group.state.id
  description                  = "NFS from nonce-cloud tasks"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.tasks.id
}
