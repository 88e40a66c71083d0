# The mqguard AMI: Amazon Linux 2023 or RHEL 9 with IBM MQ, the mqguard RPM, and the
# kernel parameters and limits IBM documents for MQ. mqguard is installed, not enabled:
# each instance's user data writes its configuration, then enables and starts it (deploy/cloudformation).
#
#   packer init deploy/ami
#   packer build -var base=al2023 -var region=eu-west-1 \
#     -var mq_source=s3://my-bucket/IBM_MQ_9.4.0.0_LINUX_X86-64.tar.gz \
#     -var mqguard_rpm=build/rpmbuild/RPMS/noarch/mqguard-0.1.0-1.noarch.rpm \
#     -var mq_accept_license=true deploy/ami
#
# IBM MQ is licensed software: the kit never downloads it. mq_source is an S3 URL (fetched
# on the build instance with its instance profile) or a local path (uploaded by Packer).

packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.2.0"
    }
  }
}

variable "base" {
  type        = string
  default     = "al2023"
  description = "al2023 (Amazon Linux 2023) or rhel9"
  validation {
    condition     = contains(["al2023", "rhel9"], var.base)
    error_message = "The base must be al2023 or rhel9."
  }
}

variable "region" {
  type = string
}

variable "instance_type" {
  type    = string
  default = "m6i.large"
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Build in this subnet (empty: the default VPC)."
}

variable "iam_instance_profile" {
  type        = string
  default     = ""
  description = "Instance profile of the build instance; needs s3:GetObject on mq_source when it is an S3 URL."
}

variable "mq_source" {
  type        = string
  description = "The IBM MQ server tarball: s3://bucket/key or a local path."
}

variable "mq_accept_license" {
  type        = bool
  default     = false
  description = "You accept IBM MQ's license (mqlicense.sh -accept); the build refuses otherwise."
  validation {
    condition     = var.mq_accept_license
    error_message = "Read IBM MQ's license and set mq_accept_license = true to accept it."
  }
}

variable "mqguard_rpm" {
  type        = string
  description = "The mqguard RPM (make rpm)."
}

variable "mqm_uid" {
  type        = number
  default     = 936
  description = "UID of the mqm user: the SAME in every AMI that mounts the file system (IBM: essential for shared data), below 1000."
  validation {
    condition     = var.mqm_uid >= 200 && var.mqm_uid < 1000
    error_message = "The mqm_uid must be a system UID from 200 to 999, which logind never treats as a regular user."
  }
}

variable "mqm_gid" {
  type        = number
  default     = 936
  description = "GID of the mqm group: the same in every AMI, below 1000."
  validation {
    condition     = var.mqm_gid >= 200 && var.mqm_gid < 1000
    error_message = "The mqm_gid must be a system GID from 200 to 999."
  }
}

variable "cloudwatch_agent" {
  type        = bool
  default     = false
  description = "Install the CloudWatch agent with monitoring/cloudwatch's configuration (the stack's CloudWatchAgent=true starts it)."
}

variable "efs_utils_version" {
  type        = string
  default     = "v2.4.1"
  description = "RHEL 9 only: the aws/efs-utils release whose RPM the build makes (RHEL's repositories have none)."
  validation {
    condition     = can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+$", var.efs_utils_version))
    error_message = "The efs_utils_version is a release tag such as v2.4.1."
  }
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key for the AMI's encrypted volume (empty: the AWS-managed EBS key)."
}

locals {
  timestamp = formatdate("YYYYMMDDhhmmss", timestamp())
  source_filters = {
    al2023 = { name = "al2023-ami-2023.*-x86_64", owner = "137112412989" }
    rhel9  = { name = "RHEL-9.*_HVM-*-x86_64-*-Hourly2-GP3", owner = "309956199498" }
  }
  ssh_user = { al2023 = "ec2-user", rhel9 = "ec2-user" }
  # the base image's root device (the stack's ImageBase parameter maps the same names)
  root_device = { al2023 = "/dev/xvda", rhel9 = "/dev/sda1" }
}

source "amazon-ebs" "mq" {
  region               = var.region
  instance_type        = var.instance_type
  subnet_id            = var.subnet_id
  iam_instance_profile = var.iam_instance_profile
  ssh_username         = local.ssh_user[var.base]
  ami_name             = "mqguard-${var.base}-${local.timestamp}"
  encrypt_boot         = true
  kms_key_id           = var.kms_key_id

  source_ami_filter {
    filters = {
      name                = local.source_filters[var.base].name
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = [local.source_filters[var.base].owner]
    most_recent = true
  }

  # IMDSv2 only on the build instance too, and on instances launched from the AMI by default.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  imds_support = "v2.0"

  launch_block_device_mappings {
    device_name           = local.root_device[var.base]
    volume_size           = 30
    volume_type           = "gp3"
    encrypted             = true
    delete_on_termination = true
  }

  tags = {
    Name     = "mqguard-${var.base}"
    mqguard  = "true"
    base_ami = "{{ .SourceAMIName }}"
  }
}

build {
  sources = ["source.amazon-ebs.mq"]

  provisioner "file" {
    source      = var.mqguard_rpm
    destination = "/tmp/mqguard.rpm"
  }

  # A local MQ tarball is uploaded; an S3 one is fetched on the instance (below).
  provisioner "file" {
    source      = substr(var.mq_source, 0, 5) == "s3://" ? "/dev/null" : var.mq_source
    destination = "/tmp/mq-local.tar.gz"
  }

  # the IMDS owner-match firewall (45-imds-firewall.sh installs it), the CloudWatch agent's start
  provisioner "file" {
    source      = "${path.root}/files/"
    destination = "/tmp/mqguard-ami-files"
  }

  # the CloudWatch agent's configuration as the repository ships it (42-cloudwatch-agent.sh)
  provisioner "file" {
    source      = "${path.root}/../../monitoring/cloudwatch/"
    destination = "/tmp/mqguard-cloudwatch"
  }

  provisioner "shell" {
    environment_vars = [
      "MQ_SOURCE=${var.mq_source}",
      "BASE=${var.base}",
      "MQM_UID=${var.mqm_uid}",
      "MQM_GID=${var.mqm_gid}",
      "AWS_REGION=${var.region}",
      "EFS_UTILS_VERSION=${var.efs_utils_version}",
      "CLOUDWATCH_AGENT=${var.cloudwatch_agent}",
      # the agents' users that reach instance metadata: the CloudWatch agent's run_as_user
      "IMDS_USERS=${var.cloudwatch_agent ? "cwagent" : ""}",
    ]
    execute_command = "sudo -E sh -eux '{{ .Path }}'"
    scripts = [
      "${path.root}/scripts/10-packages.sh",
      "${path.root}/scripts/15-mqm-user.sh",
      "${path.root}/scripts/20-install-mq.sh",
      "${path.root}/scripts/30-install-mqguard.sh",
      "${path.root}/scripts/40-mq-kernel-and-limits.sh",
      "${path.root}/scripts/42-cloudwatch-agent.sh",
      "${path.root}/scripts/45-imds-firewall.sh",
      "${path.root}/scripts/90-preflight.sh",
    ]
  }

  # The source AMI is the newest that matches the filter at build time: record which one it was,
  # and the new AMI's id, so an image can be traced and rebuilt from the same base.
  post-processor "manifest" {
    output     = "build/ami-manifest.json"
    strip_path = true
    custom_data = {
      base       = var.base
      source_ami = "${build.SourceAMI}"
    }
  }
}
