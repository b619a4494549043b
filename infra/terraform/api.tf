# Remote control: users reach nonced's JSON-RPC (HTTPS POST /rpc, WebSocket /ws) with a
# bearer token and no AWS credentials, through an Application Load Balancer that ends TLS
# with the certificate given in api_certificate_arn (no certificate: no load balancer, and
# the daemon is reached with `aws ecs execute-command` only). The daemon serves plain HTTP on
# api_port to the load balancer's security group and nobody else.

locals {
  api_enabled = var.api_certificate_arn != null
  api_subnets = coalesce(var.api_subnet_ids, var.subnet_ids)
}

resource "aws_security_group" "api" {
  count       = local.api_enabled ? 1 : 0
  name        = "${var.prefix}-api"
  description = "nonce-cloud API load balancer: HTTPS in from the allowed networks, HTTP to nonced"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "api_https" {
  for_each          = local.api_enabled ? toset(var.api_allowed_cidrs) : toset([])
  security_group_id = aws_security_group.api[0].id
  description       = "HTTPS from users"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "api_to_daemon" {
  count                        = local.api_enabled ? 1 : 0
  security_group_id            = aws_security_group.api[0].id
  description                  = "To nonced's listener"
  ip_protocol                  = "tcp"
  from_port                    = var.api_port
  to_port                      = var.api_port
  referenced_security_group_id = aws_security_group.daemon_api[0].id
}

# The daemon's own group: its listener port, from the load balancer only.
resource "aws_security_group" "daemon_api" {
  count       = local.api_enabled ? 1 : 0
  name        = "${var.prefix}-nonced-api"
  description = "nonced's listener: from the API load balancer only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "daemon_from_api" {
  count                        = local.api_enabled ? 1 : 0
  security_group_id            = aws_security_group.daemon_api[0].id
  description                  = "From the API load balancer"
  ip_protocol                  = "tcp"
  from_port                    = var.api_port
  to_port                      = var.api_port
  referenced_security_group_id = aws_security_group.api[0].id
}

resource "aws_lb" "api" {
  #checkov:skip=CKV_AWS_91:Access logs need an S3 bucket and its policy per region; nonced logs every failed authentication itself
  #checkov:skip=CKV2_AWS_28:WAF is optional in front of a token-authenticated, rate-limited API; add one per account policy
  count                      = local.api_enabled ? 1 : 0
  name                       = "${var.prefix}-api"
  internal                   = var.api_internal
  load_balancer_type         = "application"
  security_groups            = [aws_security_group.api[0].id]
  subnets                    = local.api_subnets
  drop_invalid_header_fields = true
  enable_deletion_protection = var.api_deletion_protection
  # A WebSocket subscriber hears from the daemon at least every idle_timeout_s / 3 (pings).
  idle_timeout = 120
}

resource "aws_lb_target_group" "daemon" {
  #checkov:skip=CKV_AWS_378:TLS ends at the load balancer; the hop to nonced stays inside the VPC, admitted from the load balancer's group only
  count                = local.api_enabled ? 1 : 0
  name                 = "${var.prefix}-nonced"
  port                 = var.api_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30
  health_check {
    path                = "/healthz"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  count             = local.api_enabled ? 1 : 0
  load_balancer_arn = aws_lb.api[0].arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.api_certificate_arn
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.daemon[0].arn
  }
}

# The users: `[[users]]` tables (name, role, token_sha256; `nonced token new NAME` makes
# them) in a KMS-encrypted secret. ECS hands it to nonced as NONCE_USERS when the task starts,
# so the token hashes are in neither the task definition nor the Terraform state (the
# version below is an empty placeholder; set the real one with put-secret-value).
resource "aws_secretsmanager_secret" "users" {
  #checkov:skip=CKV2_AWS_57:Tokens are rotated by issuing new ones (nonced token new) and updating this secret; there is nothing for a rotation Lambda to do
  name                    = "${var.prefix}/nonced-users"
  description             = "nonced's users: [[users]] tables with token hashes (NONCE_USERS)"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "users" {
  secret_id     = aws_secretsmanager_secret.users.id
  secret_string = "users = []\n"
  lifecycle {
    ignore_changes = [secret_string]
  }
}
