# A raw_exec job showing HCL2 variables, locals, functions and the policy blocks.
# Set the greeting with `-var greeting=hi` or NOMAD_VAR_greeting.
variable "greeting" {
  type    = string
  default = "hello"
}

variable "port" {
  type    = number
  default = 8090
}

locals {
  name  = "hello"
  words = [upper(var.greeting), "from", local.name]
}

job "hello" {
  datacenters = ["dc1"]
  type        = "service"

  update {
    max_parallel     = 1
    min_healthy_time = "5s"
  }

  group "hello" {
    count = 1

    network {
      port "http" {
        static = var.port
      }
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    reschedule {
      delay          = "10s"
      delay_function = "constant"
      unlimited      = true
    }

    task "server" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", format("echo %s; exec python3 -m http.server %d --bind 127.0.0.1", join(" ", local.words), var.port)]
      }

      env {
        GREETING = var.greeting
        ADDR     = "${NOMAD_ADDR_http}"
      }

      constraint {
        attribute = "${attr.kernel.name}"
        value     = "linux"
      }

      kill_signal  = "SIGINT"
      kill_timeout = "10s"

      resources {
        cpu    = 50
        memory = 64
      }

      service {
        name = "hello"
        port = "http"
        tags = ["example"]

        check {
          type     = "tcp"
          interval = "10s"
          timeout  = "2s"
        }
      }
    }
  }
}
