output "events_queue_url" {
  description = "Worker -> coordinator events (NONCE_EVENTS_QUEUE_URL)."
  value       = aws_sqs_queue.events.url
}

output "dead_letter_queue_url" {
  description = "Undecodable and failing events end here."
  value       = aws_sqs_queue.dead_letters.url
}

output "control_topic_arn" {
  description = "The broadcast topic (NONCE_CONTROL_TOPIC_ARN)."
  value       = aws_sns_topic.control.arn
}

output "cluster" {
  description = "ECS cluster of the daemon and the workers."
  value       = aws_ecs_cluster.main.name
}

output "worker_task_definition" {
  description = "Family of the worker task definition."
  value       = aws_ecs_task_definition.worker.family
}

output "worker_gpu_task_definition" {
  description = "Family of the GPU worker task definition (null without var.gpu_workers)."
  value       = local.gpu ? aws_ecs_task_definition.worker_gpu[0].family : null
}

output "gpu_capacity_provider" {
  description = "The GPU instances' ECS capacity provider (null without var.gpu_workers)."
  value       = local.gpu ? aws_ecs_capacity_provider.gpu[0].name : null
}

output "worker_repository_url" {
  description = "Push the nonce-worker image here."
  value       = aws_ecr_repository.worker.repository_url
}

output "daemon_repository_url" {
  description = "Push the nonced image here."
  value       = aws_ecr_repository.daemon.repository_url
}

output "nonced_config" {
  description = "A nonced.toml for a daemon run outside ECS (systemd) against this deployment."
  value       = <<-EOT
    transport = "aws"
    launcher  = "ecs"
    [aws]
    prefix = "${var.prefix}"
    [ecs]
    cluster         = "${aws_ecs_cluster.main.name}"
    task_definition = "${aws_ecs_task_definition.worker.family}"
    subnets         = ${jsonencode(var.subnet_ids)}
    security_groups = ["${aws_security_group.tasks.id}"]
    assign_public_ip = ${var.assign_public_ip}
    capacity         = "${var.worker_capacity}"
    task_quota       = "${var.launch_quotas.tasks}"
    call_quota       = "${var.launch_quotas.run_task_calls}"
    %{~if local.gpu}
    gpu_task_definition   = "${local.worker_gpu_family}"
    gpu_capacity_provider = "${aws_ecs_capacity_provider.gpu[0].name}"
    %{~endif}
    [quotas]
    max_workers_per_job = ${var.max_workers_per_job}
    max_concurrent_jobs = ${var.max_concurrent_jobs}
    max_fleet           = ${var.max_fleet}
    [user_quotas]
    max_workers_per_job      = ${var.user_quotas.max_workers_per_job}
    max_concurrent_jobs      = ${var.user_quotas.max_concurrent_jobs}
    max_vcpu_seconds_per_day = ${var.user_quotas.max_vcpu_seconds_per_day}
  EOT
}

output "api_endpoint" {
  description = "What users give noncectl --endpoint (with their --token-file); null without api_certificate_arn."
  value       = local.api_enabled ? "https://${coalesce(var.api_domain_name, aws_lb.api[0].dns_name)}" : null
}

output "users_secret_arn" {
  description = "Put the [[users]] tables (token hashes) here: aws secretsmanager put-secret-value --secret-id ARN --secret-string file://users.toml"
  value       = aws_secretsmanager_secret.users.arn
}
