variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "prefix" {
  description = "Name prefix of every resource; nonced and nonce-worker derive queue and topic names from it (NONCE_AWS_PREFIX)."
  type        = string
  default     = "nonce-cloud"
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.prefix))
    error_message = "Use 1 to 40 letters, digits, '-' or '_' (SQS names are at most 80 characters)."
  }
}

variable "vpc_id" {
  description = "VPC the tasks run in."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets for the daemon and the workers. Private subnets need a NAT gateway or VPC endpoints for SQS, SNS, ECS, ECR, S3 and CloudWatch Logs."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give tasks public IPs (public subnets without NAT). Keep false in production."
  type        = bool
  default     = false
}

variable "worker_image" {
  description = "nonce-worker image (ECR URI with tag); see docs/DEPLOY.md."
  type        = string
}

variable "daemon_image" {
  description = "nonced image (ECR URI with tag)."
  type        = string
}

variable "worker_cpu" {
  description = "Fargate CPU units per worker task (1024 = 1 vCPU); the worker hashes on every vCPU."
  type        = number
  default     = 1024
}

variable "worker_memory" {
  description = "Fargate memory (MiB) per worker task."
  type        = number
  default     = 2048
}

variable "daemon_cpu" {
  description = "Fargate CPU units of the daemon."
  type        = number
  default     = 512
}

variable "daemon_memory" {
  description = "Fargate memory (MiB) of the daemon."
  type        = number
  default     = 1024
}

variable "max_workers_per_job" {
  description = "Quota: workers one job may ask for."
  type        = number
  default     = 64
}

variable "max_concurrent_jobs" {
  description = "Quota: jobs running at once."
  type        = number
  default     = 4
}

variable "max_fleet" {
  description = "Quota: workers across all running jobs (keep under the account's Fargate vCPU quota divided by the worker's vCPUs)."
  type        = number
  default     = 256
}

variable "user_quotas" {
  description = "What each user (not admins) may use: workers per job, jobs at once, and worker vCPU-seconds per UTC day (the daemon's [user_quotas]; 86400 is one vCPU around the clock, ~$0.97 of Fargate vCPU time a day)."
  type = object({
    max_workers_per_job      = number
    max_concurrent_jobs      = number
    max_vcpu_seconds_per_day = number
  })
  default = {
    max_workers_per_job      = 16
    max_concurrent_jobs      = 2
    max_vcpu_seconds_per_day = 86400
  }
  validation {
    condition     = var.user_quotas.max_workers_per_job >= 1 && var.user_quotas.max_concurrent_jobs >= 1 && var.user_quotas.max_vcpu_seconds_per_day >= 1
    error_message = "Each user quota must be at least 1."
  }
}

variable "worker_capacity" {
  description = "Fargate capacity of jobs that do not choose: fargate (on-demand), spot (Fargate Spot, about half the price, interrupted with two minutes' notice; a worker's SIGTERM sends its progress), mixed (every other worker on Spot), or auto (the planner's cheapest that keeps a --confidence promise)."
  type        = string
  default     = "fargate"
  validation {
    condition     = contains(["fargate", "spot", "mixed", "auto"], var.worker_capacity)
    error_message = "worker_capacity must be fargate, spot, mixed or auto."
  }
}

variable "launch_quotas" {
  description = "The account's Fargate launch quotas as BURST:RATE (per second), which the ecs launcher paces RunTask to: tasks launched (AWS's default 100:20) and RunTask calls (20:20). Raise them only after AWS raised the account's."
  type = object({
    tasks          = string
    run_task_calls = string
  })
  default = {
    tasks          = "100:20"
    run_task_calls = "20:20"
  }
  validation {
    condition     = can(regex("^[0-9.]+:[0-9.]+$", var.launch_quotas.tasks)) && can(regex("^[0-9.]+:[0-9.]+$", var.launch_quotas.run_task_calls))
    error_message = "Each launch quota is BURST:RATE, e.g. 100:20."
  }
}

variable "daemon_desired_count" {
  description = "nonced tasks in the ECS service: 1, or 0 when a nonced under systemd elsewhere coordinates this deployment (two coordinators would each drop the other's events as ghosts)."
  type        = number
  default     = 1
  validation {
    condition     = contains([0, 1], var.daemon_desired_count)
    error_message = "daemon_desired_count is 0 or 1: one coordinator consumes the events queue."
  }
}

variable "log_retention_days" {
  description = "CloudWatch log retention."
  type        = number
  default     = 365
}

variable "api_certificate_arn" {
  description = "ACM certificate ARN for the API load balancer's HTTPS listener. Null: no load balancer (the daemon is then reached with ecs execute-command only)."
  type        = string
  default     = null
}

variable "api_allowed_cidrs" {
  description = "Networks that may reach the API's HTTPS listener (users' laptops, offices, a VPN)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "api_internal" {
  description = "An internal (VPC-only) load balancer instead of an internet-facing one."
  type        = bool
  default     = false
}

variable "api_subnet_ids" {
  description = "Subnets of the load balancer (two or more, in different zones; public ones when internet-facing). Null: subnet_ids."
  type        = list(string)
  default     = null
}

variable "api_port" {
  description = "Port of nonced's listener behind the load balancer."
  type        = number
  default     = 8443
}

variable "api_deletion_protection" {
  description = "Protect the API load balancer from deletion (set false to destroy the stack)."
  type        = bool
  default     = true
}

variable "api_domain_name" {
  description = "The name users use (the certificate's), for the endpoint output; null: the load balancer's DNS name."
  type        = string
  default     = null
}

variable "alarm_topic_arn" {
  description = "SNS topic the alarms notify (stalled workers, failing jobs); null: alarms only show in the console."
  type        = string
  default     = null
}

variable "gpu_workers" {
  description = "GPU workers (--capacity gpu): an Auto Scaling group of GPU instances on ECS's GPU-optimized AMI that an ECS capacity provider scales from zero, one worker a GPU instance. Off by default: GPU instances cost ~$1/h each (g5.xlarge, $1.006/h on demand in us-east-1) and start in minutes, and new accounts have a G-instance vCPU quota of 0 until AWS raises it. image: the GPU worker image (infra/docker/nonce-worker-gpu.Dockerfile); instance_memory_mib: the instance type's memory (the task gets all but 1 GiB)."
  type = object({
    enabled             = bool
    image               = string
    instance_type       = string
    instance_memory_mib = number
    max_instances       = number
  })
  default = {
    enabled             = false
    image               = ""
    instance_type       = "g5.xlarge"
    instance_memory_mib = 16384
    max_instances       = 4
  }
  validation {
    condition     = !var.gpu_workers.enabled || var.gpu_workers.image != ""
    error_message = "gpu_workers.image must name the GPU worker image when gpu_workers.enabled is true."
  }
  validation {
    condition     = var.gpu_workers.max_instances >= 1 && var.gpu_workers.instance_memory_mib >= 2048
    error_message = "gpu_workers.max_instances must be at least 1 and instance_memory_mib at least 2048."
  }
}
